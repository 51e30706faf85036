"""The Hub data path, offline: each real Hub repo's layout rebuilt here from a handful of rows (Parquet per config
and split, `<config>/<split>-00000-of-00001.parquet`, with the real features, and a README.md whose YAML
`configs:` lists them), then read through the code a Hub run uses, with `task.hub_id` pointing at the copy as a
user points it at their own mirror or fork."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import yaml
from datasets import ClassLabel, Features, Value
from helpers import CONF_DIR, compose_config, run_cli
from helpers.tiny_models import tiny_checkpoint
from hydra.utils import instantiate
from omegaconf import OmegaConf

from xrobust.data.hub_source import HubSource
from xrobust.data.task import HUB_ID, TaskSpec
from xrobust.errors import XrobustError
from xrobust.train import run

# Different sizes per split, so a count says which split was read.
SPLIT_ROWS = {"train": 12, "validation": 5, "test": 7}
NLI_LABELS = ClassLabel(names=["entailment", "neutral", "contradiction"])
PAIR = {"premise": Value("string"), "hypothesis": Value("string"), "label": NLI_LABELS}
COPA_TEXT = {name: Value("string") for name in ("premise", "choice1", "choice2", "question")}
LANGUAGES = {
    name: list(OmegaConf.load(Path(CONF_DIR) / "task" / f"{name}.yaml").languages)
    for name in ("xnli", "pawsx", "xcopa", "americasnli")
}

# repo id -> (configs, splits, features of each config), as each repo ships them on the Hub today.
REPOS = {
    "facebook/xnli": (LANGUAGES["xnli"], ["train", "validation", "test"], Features(PAIR)),
    "google-research-datasets/paws-x": (
        LANGUAGES["pawsx"],
        ["train", "validation", "test"],
        Features(
            {
                "id": Value("int32"),
                "sentence1": Value("string"),
                "sentence2": Value("string"),
                "label": ClassLabel(names=["0", "1"]),
            }
        ),
    ),
    "cambridgeltl/xcopa": (
        LANGUAGES["xcopa"],
        ["validation", "test"],
        Features({**COPA_TEXT, "label": Value("int32"), "idx": Value("int32"), "changed": Value("bool")}),
    ),
    "aps/super_glue": (
        ["copa"],
        ["train", "validation", "test"],
        Features({**COPA_TEXT, "idx": Value("int32"), "label": ClassLabel(names=["choice1", "choice2"])}),
    ),
    "nala-cub/americas_nli": (LANGUAGES["americasnli"] + ["all_languages"], ["validation", "test"], Features(PAIR)),
}
# task -> (hub_id mirror, source_hub.id mirror or None)
TASK_MIRRORS = {
    "xnli": ("facebook/xnli", None),
    "pawsx": ("google-research-datasets/paws-x", None),
    "xcopa": ("cambridgeltl/xcopa", "aps/super_glue"),
    "americasnli": ("nala-cub/americas_nli", "facebook/xnli"),
}


def make_row(repo: str, config: str, split: str, i: int) -> dict:
    text = f"{config} {split} {i}"
    if repo == "google-research-datasets/paws-x":
        return {"id": i, "sentence1": f"s1 {text}", "sentence2": f"s2 {text}", "label": i % 2}
    if repo in ("cambridgeltl/xcopa", "aps/super_glue"):
        row = {
            "premise": f"premise {text}",
            "choice1": f"one {text}",
            "choice2": f"two {text}",
            "question": ("cause", "effect")[i % 2],
            "idx": i,
        }
        # SuperGLUE's test split is unlabelled (-1), as on the Hub.
        label = -1 if repo == "aps/super_glue" and split == "test" else i % 2
        return row | {"label": label} | ({"changed": False} if repo == "cambridgeltl/xcopa" else {})
    row = {"premise": f"premise {text}", "hypothesis": f"hypothesis {text}", "label": i % 3}
    return row | ({"language": "aym"} if config == "all_languages" else {})


def write_mirror(root: Path, repo: str, features: Features | None = None) -> Path:
    """The repo's Hub layout under root/<namespace>/<name>: Parquet files and a README.md listing the configs."""
    configs, splits, default = REPOS[repo]
    folder = root / repo
    card = []
    for config in configs:
        feats = features or default
        if config == "all_languages":
            feats = Features({"language": Value("string"), **feats})
        for split in splits:
            rows = [make_row(repo, config, split, i) for i in range(SPLIT_ROWS[split])]
            path = folder / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_list(rows, features=feats).to_parquet(str(path))
        data_files = [{"split": split, "path": f"{config}/{split}-*"} for split in splits]
        card.append({"config_name": config, "data_files": data_files})
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump({'configs': card}, sort_keys=False)}---\n")
    return folder


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    return {repo: write_mirror(root, repo) for repo in REPOS}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-xlmr"))


def mirror_overrides(task: str, mirrors: dict[str, Path]) -> list[str]:
    hub, source = TASK_MIRRORS[task]
    overrides = [f"task={task}", f"task.hub_id='{mirrors[hub]}'"]
    return overrides + ([f"task.source_hub.id='{mirrors[source]}'"] if source else [])


def two_steps(task: str, mirrors, tiny_model: Path, tmp_path: Path) -> list[str]:
    return [
        *mirror_overrides(task, mirrors),
        f"model.pretrained='{tiny_model}'",
        "model.embedded=null",
        f"paths.cache_dir='{tmp_path / 'cache'}'",
        "logger=none",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.batch_size=4",
        "data.max_length=32",
    ]


def test_every_configured_hub_id_is_namespace_slash_name():
    """The Hub refuses ids without a namespace (`americas_nli` died with HfUriError)."""
    ids = {}
    for path in sorted((Path(CONF_DIR) / "task").glob("*.yaml")):
        task = OmegaConf.load(path)
        if task.get("hub_id"):
            ids[f"{path.stem}.hub_id"] = task.hub_id
        if task.get("source_hub"):
            ids[f"{path.stem}.source_hub.id"] = task.source_hub.id
    assert len(ids) == 7
    assert {key: hub_id for key, hub_id in ids.items() if not HUB_ID.fullmatch(hub_id)} == {}
    assert ids["americasnli.hub_id"] == "nala-cub/americas_nli"


def test_an_id_without_namespace_is_refused_at_start_up(tmp_path):
    cfg = compose_config(["task=americasnli", "task.hub_id=americas_nli"], output_dir=tmp_path)
    with pytest.raises(XrobustError, match=r"task.hub_id='americas_nli' is neither a Hub dataset id \(namespace/name"):
        TaskSpec.from_config(cfg.task)


@pytest.mark.parametrize("task", list(TASK_MIRRORS))
def test_two_training_steps_through_the_hub_mirror(task, mirrors, tiny_model, tmp_path):
    """setup() reads every split a run needs from the mirror (that split's file only), then 2 steps train and
    every language is tested; results.json says which files, revision and fingerprint each split came from."""
    results = run(compose_config(two_steps(task, mirrors, tiny_model, tmp_path), output_dir=tmp_path / "run"))
    assert results["model_selection"]["steps_run"] == 2
    languages = LANGUAGES[task]
    assert results["n_examples"] == dict.fromkeys(languages, SPLIT_ROWS["test"])
    hub, source = TASK_MIRRORS[task]
    english = {"train": "train", "dev": "validation"}
    expected = {
        f"{split}-en": (source or hub, "copa" if source == "aps/super_glue" else "en", name)
        for split, name in english.items()
    }
    expected |= {f"test-{lang}": (hub, lang, "test") for lang in languages}
    provenance = results["data_provenance"]
    assert set(provenance) == set(expected)
    for key, (repo, config, split) in expected.items():
        record = provenance[key]
        assert (record["dataset"], record["config"], record["split"]) == (str(mirrors[repo]), config, split)
        assert record["data_files"] == f"{config}/{split}-*.parquet"
        assert record["num_rows"] == SPLIT_ROWS[split]
        assert record["revision"] is None  # a local copy has no Hub revision; the commit is the Hub's
        assert record["resolved_revision"] and record["fingerprint"]
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["data_provenance"] == provenance


def test_setup_reads_the_rows_labels_and_question_of_a_multiple_choice_task(mirrors, tiny_model, tmp_path):
    cfg = compose_config(two_steps("xcopa", mirrors, tiny_model, tmp_path), output_dir=tmp_path)
    task = TaskSpec.from_config(cfg.task)
    datamodule = instantiate(cfg.data, _partial_=True)(task=task, tokenizer_path=str(tiny_model))
    datamodule.setup()
    train = datamodule.train_rows
    assert train["premise"] == [f"premise copa train {i}" for i in range(SPLIT_ROWS["train"])]
    assert train["label"] == [i % 2 for i in range(SPLIT_ROWS["train"])]
    assert train["question"][:2] == ["cause", "effect"] and set(train["lang"]) == {"en"}
    test_sw = datamodule.raw_test_sets["sw"]
    assert test_sw["choice2"][3] == "two sw test 3" and test_sw["id"] == list(range(SPLIT_ROWS["test"]))
    assert datamodule.selection_source == "dev-en"
    assert list(datamodule.test_sets) == LANGUAGES["xcopa"]
    assert len(glob.glob(str(tmp_path / "cache" / "datasets" / "**" / "*.arrow"), recursive=True)) == 2 + 11


def prepared(cache: Path) -> tuple[list[str], int]:
    """The Arrow files datasets prepared in `cache`, and their rows."""
    files = sorted(glob.glob(str(cache / "**" / "*.arrow"), recursive=True))
    rows = sum(datasets.Dataset.from_file(path).num_rows for path in files)
    return [Path(path).name for path in files], rows


def test_only_the_split_asked_for_is_prepared(mirrors, tmp_path):
    """`load_dataset(..., split="test")` alone prepares the config's every split (XNLI's train for each test
    language); HubSource prepares the test split only."""
    xnli = mirrors["facebook/xnli"]
    datasets.load_dataset(str(xnli), "de", split="test", cache_dir=str(tmp_path / "whole"))
    assert prepared(tmp_path / "whole") == (["xnli-test.arrow", "xnli-train.arrow", "xnli-validation.arrow"], 24)
    task = TaskSpec.from_config(compose_config(["task=xnli", f"task.hub_id='{xnli}'"], output_dir=tmp_path).task)
    rows = HubSource(task, str(tmp_path / "split")).load("test", "de")
    assert prepared(tmp_path / "split") == (["xnli-test.arrow"], SPLIT_ROWS["test"])
    assert rows["premise"][0] == "premise de test 0"


def test_labels_in_another_order_are_refused(tmp_path):
    shuffled = Features({**PAIR, "label": ClassLabel(names=["contradiction", "entailment", "neutral"])})
    xnli = write_mirror(tmp_path, "facebook/xnli", features=shuffled)
    task = TaskSpec.from_config(compose_config(["task=xnli", f"task.hub_id='{xnli}'"], output_dir=tmp_path).task)
    with pytest.raises(XrobustError, match=r"xnli/de: its labels \['contradiction', 'entailment', 'neutral'\] do"):
        HubSource(task, str(tmp_path / "cache")).load("test", "de")


def test_a_local_copy_without_the_split_files_gets_one_line(mirrors, tmp_path):
    overrides = ["task=xnli", f"task.hub_id='{mirrors['facebook/xnli']}'", "task.hub_data_files='{config}/{split}.tsv'"]
    task = TaskSpec.from_config(compose_config(overrides, output_dir=tmp_path).task)
    with pytest.raises(XrobustError, match=r"could not read the local copy .*xnli \(config de, split test, files"):
        HubSource(task, str(tmp_path / "cache")).load("test", "de")


def test_offline_hub_failure_names_the_repo_revision_and_fix(tmp_path, monkeypatch):
    """The pinned revision reaches datasets; with HF_HUB_OFFLINE the failure is one line saying what to do."""
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest: the whole suite, this process included
    asked = []
    real = datasets.load_dataset_builder

    def recording(*args, **kwargs):
        asked.append((args, kwargs["revision"], kwargs["data_files"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset_builder", recording)
    task = TaskSpec.from_config(compose_config(["task=americasnli"], output_dir=tmp_path).task)
    with pytest.raises(XrobustError) as caught:
        HubSource(task, str(tmp_path / "cache")).load("test", "quy")
    assert asked == [(("nala-cub/americas_nli", "quy"), task.revision, {"test": "quy/test-*.parquet"})]
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"could not load dataset nala-cub/americas_nli@{task.revision} (config quy, split test")
    assert "HF_HUB_OFFLINE is set: unset it" in message and "data.local_dir=" in message


def test_cli_hub_failure_is_one_line_and_exit_2(tiny_model, tmp_path):
    result = run_cli(
        [
            "task=xnli",
            f"model.pretrained='{tiny_model}'",
            "model.embedded=null",
            "logger=none",
            f"hydra.run.dir='{tmp_path}'",
            f"paths.cache_dir='{tmp_path / 'cache'}'",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("xrobust: error: could not load dataset facebook/xnli (config en, split train")
    assert "unset HF_HUB_OFFLINE" in last
