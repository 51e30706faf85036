"""The data layer reads the XTREME layout and refuses bad input with file:line, never dropping rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import compose_config

from xrobust.data.sources import HubSource, LocalFolderSource, PackagedSampleSource, make_source
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError


@pytest.fixture
def nli_task(tmp_path) -> TaskSpec:
    return TaskSpec.from_config(compose_config(["task=xnli"], output_dir=tmp_path).task)


def write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_local_folder_reads_rows_labels_and_aliases(tmp_path, nli_task):
    write(tmp_path, "dev-de.tsv", "Ein Hund bellt.\tEin Tier macht Lärm.\tentailment\nA\tB\tcontradictory\n")
    rows = LocalFolderSource(nli_task, tmp_path).load("dev", "de")
    assert rows["premise"] == ["Ein Hund bellt.", "A"]
    assert rows["label"] == [0, 2]
    assert rows["lang"] == ["de", "de"] and rows["id"] == [0, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tb\tentailment\na\tb\tmaybe\n", r"dev-de\.tsv:2: unknown label 'maybe' \(allowed: entailment"),
        ("a\tb\tentailment\na\tb\n", r"dev-de\.tsv:2: row has no label column"),
        ("a\tb\tc\tentailment\n", r"dev-de\.tsv:1: expected 3 tab-separated fields"),
        ("a\t \tneutral\n", r"dev-de\.tsv:1: empty hypothesis"),
        (b"a\tb\tneutral\n\xff\xfe\tb\tneutral\n", r"dev-de\.tsv:2: not valid UTF-8"),
        ("", r"dev-de\.tsv: empty file"),
        ("a\tb\tneutral\n\n", r"dev-de\.tsv:2: empty line"),
    ],
)
def test_bad_rows_are_refused_with_file_and_line(tmp_path, nli_task, content, message):
    write(tmp_path, "dev-de.tsv", content)
    with pytest.raises(XrobustError, match=message):
        LocalFolderSource(nli_task, tmp_path).load("dev", "de")


def test_missing_folder_and_file_name_the_path_and_layout(tmp_path, nli_task):
    with pytest.raises(XrobustError, match=r"does-not-exist does not exist \(expected the XTREME layout"):
        LocalFolderSource(nli_task, tmp_path / "does-not-exist")
    with pytest.raises(XrobustError, match=r"missing data file .*dev-fr\.tsv \(expected the XTREME layout"):
        LocalFolderSource(nli_task, tmp_path).load("dev", "fr")


def test_unknown_language_for_the_task_is_refused(tmp_path, nli_task):
    write(tmp_path, "dev-xx.tsv", "a\tb\tneutral\n")
    with pytest.raises(XrobustError, match=r"language 'xx' is not part of task 'xnli'"):
        LocalFolderSource(nli_task, tmp_path).load("dev", "xx")


def test_source_choice_follows_config(tmp_path, nli_task):
    sample = TaskSpec.from_config(compose_config([], output_dir=tmp_path).task)
    assert isinstance(make_source(sample, None), PackagedSampleSource)
    assert isinstance(make_source(nli_task, None), HubSource)
    assert isinstance(make_source(nli_task, str(tmp_path)), LocalFolderSource)


def test_packaged_sample_is_parallel_balanced_and_disjoint(tmp_path):
    task = TaskSpec.from_config(compose_config([], output_dir=tmp_path).task)
    source = PackagedSampleSource(task)
    train = source.load("train", "en")
    dev = source.load("dev", "en")
    assert len(train) >= 300 and len(dev) >= 60
    tests = {lang: source.load("test", lang) for lang in task.languages}
    assert len(tests) >= 6
    english = tests["en"]
    assert len(english) >= 60
    for lang, rows in tests.items():
        assert rows["label"] == english["label"], lang
    for split in (train, dev, english):
        counts = [split["label"].count(i) for i in range(3)]
        assert max(counts) - min(counts) <= 1
    trained = set(train["premise"])
    assert trained.isdisjoint(dev["premise"]) and trained.isdisjoint(english["premise"])
    assert set(dev["premise"]).isdisjoint(english["premise"])
    scripts = {lang: rows["premise"][0] for lang, rows in tests.items()}
    assert any("\u0400" <= ch <= "\u04ff" for ch in scripts["ru"])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in scripts["zh"])
    assert any("\u0600" <= ch <= "\u06ff" for ch in scripts["ar"])
