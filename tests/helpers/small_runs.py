"""What the multi-process tests share: a tiny model whose predictions vary, a cut-down sample with test sets of odd
size, and the command line of a run on them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from helpers import ROOT
from helpers.tiny_models import tiny_checkpoint

LANGUAGES = ["en", "de", "fr", "es", "ru", "zh", "ar"]
ODD_TEST_SIZE = 7  # not a multiple of 2: the distributed sampler pads rank 1's share with a repeated item
QUIET = ["logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def varied_tiny_checkpoint(folder: Path) -> Path:
    """The tiny random XLM-R with its weight matrices scaled up, so that its sentence vectors (and a fresh head's
    predictions) differ between inputs: at the plain init every item gets the same label."""
    from transformers import XLMRobertaForMaskedLM

    tiny_checkpoint(folder)
    model = XLMRobertaForMaskedLM.from_pretrained(folder)
    with torch.no_grad():
        for weight in (p for p in model.parameters() if p.ndim == 2):
            weight.mul_(30.0)
    model.config.initializer_range = 0.5
    model.save_pretrained(folder)
    return folder


def small_sample(folder: Path) -> Path:
    """The packaged sample cut down, in the XTREME layout: 64 training pairs, 16 dev pairs, 7 test items per
    language."""
    sample = ROOT / "xrobust" / "data" / "sample"
    for name, rows in [("train-en", 64), ("dev-en", 16), *((f"test-{lang}", ODD_TEST_SIZE) for lang in LANGUAGES)]:
        lines = (sample / f"{name}.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (folder / f"{name}.tsv").write_text("".join(lines[:rows]), encoding="utf-8")
    return folder


def overrides(pretrained: Path, data: Path, *extra: str) -> list[str]:
    """The overrides of a run of `pretrained` on the small sample in `data`."""
    model = [f"model.pretrained={pretrained}", "model.embedded=null", "model.architecture=null"]
    data_args = ["task=sample", f"data.local_dir={data}", "data.batch_size=8", "data.max_length=48"]
    return [*QUIET, *model, *data_args, *extra]


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def wait_for(condition, proc, timeout: float = 300) -> None:
    """Poll until `condition()` holds while the process `proc` still runs (e.g. a checkpoint appears)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the awaited moment"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
