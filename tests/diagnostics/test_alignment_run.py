"""The alignment read-out in a job: a debug=fast run of the embedded me5-small writes results.json's
`diagnostics.alignment` and alignment.tsv; on ../shared's parallel XNLI its retrieval is far above chance, and at
chance once the target items are shuffled."""

from __future__ import annotations

import csv
import json
import random
import shutil

from helpers import FAST, compose_config
from helpers.small_runs import LANGUAGES, small_sample

from xrobust.diagnostics.hooks import before_training
from xrobust.run.stages import build_job
from xrobust.train import run

XNLI_ITEMS = 100


def test_a_fast_run_writes_the_alignment_read_out(me5_dir, tmp_path):
    (tmp_path / "data").mkdir()
    data = small_sample(tmp_path / "data")
    overrides = [
        *FAST,
        f"data.local_dir={data}",
        "trainer.max_steps=1",
        "eval.alignment.enabled=true",
        "eval.alignment.layers=[0,12]",
        "eval.diagnostics_items=5",
    ]
    out = tmp_path / "run"
    results = run(compose_config(overrides, output_dir=out))
    alignment = results["diagnostics"]["alignment"]
    targets = [lang for lang in LANGUAGES if lang != "en"]
    assert alignment["layers"] == [0, 12] and alignment["items"] == dict.fromkeys(targets, 5)
    assert alignment["seconds"] >= 0
    for stage in ("pretrained", "tested"):
        assert list(alignment[stage]) == targets
        for layers in alignment[stage].values():
            assert list(layers) == ["0", "12"]
            for numbers in layers.values():
                assert 0 <= numbers["retrieval"] <= 100 and -1 <= numbers["cosine_pairs"] <= 1
                assert -1 <= numbers["cosine_random"] <= 1 and 0 <= numbers["cka"] <= 1 + 1e-9
    with open(out / "alignment.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0]) == ["stage", "layer", "language", "id", "retrieved_id", "hit"]
    assert len(rows) == 2 * 2 * len(targets) * 5 and {row["hit"] for row in rows} <= {"0", "1"}
    assert json.loads((out / "results.json").read_text())["diagnostics"]["alignment"] == alignment


def shuffled_copy(source, folder, language: str, seed: int = 0):
    """The XNLI folder with `language`'s dev items in a shuffled order: line i is no longer item i's translation."""
    folder.mkdir()
    for path in source.iterdir():
        shutil.copy(path, folder / path.name)
    lines = (source / f"dev-{language}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(seed).shuffle(lines)
    (folder / f"dev-{language}.tsv").write_text("".join(lines), encoding="utf-8")
    return folder


def test_retrieval_on_parallel_xnli_is_far_above_chance_and_at_chance_when_shuffled(me5_dir, shared_data, tmp_path):
    """de and zh as XNLI holds them, fr shuffled: chance is 1 in XNLI_ITEMS."""
    overrides = [
        "task=xnli",
        "task.languages=[en,de,zh,fr]",
        f"data.local_dir={shuffled_copy(shared_data / 'xnli', tmp_path / 'data', 'fr')}",
        "data.test_split=dev",
        "data.heldout=true",
        "logger=none",
        "eval.alignment.enabled=true",
        "eval.alignment.layers=[12]",
        f"eval.diagnostics_items={XNLI_ITEMS}",
    ]
    cfg = compose_config(overrides, output_dir=tmp_path / "run")
    job = build_job(cfg)
    summary = before_training(job.module, job.datamodule, cfg.eval)["alignment"].summary
    assert summary["items"] == dict.fromkeys(["de", "zh", "fr"], XNLI_ITEMS)
    retrieval = {lang: layers["12"]["retrieval"] for lang, layers in summary["pretrained"].items()}
    chance = 100 / XNLI_ITEMS
    assert retrieval["de"] > 30 * chance and retrieval["zh"] > 30 * chance, retrieval
    assert retrieval["fr"] <= 5 * chance, retrieval
