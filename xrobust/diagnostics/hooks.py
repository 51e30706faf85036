"""The one place the job calls the read-outs from: `before_training` on the model as built (the pretrained
weights, before fit or before a kept checkpoint is loaded) and `after_test` on the tested weights; `write`
puts their per-item rows into <name>.tsv and returns results.json's `diagnostics`.

A read-out is `read_out(module, datamodule, settings, stage) -> Readout`: `settings` is eval.<name> as a dict
(its schema's defaults filled in, diagnostics/config.py) plus `items`, eval.diagnostics_items; `stage` is
"pretrained" or "tested". The hooks run it on the trainer's device under its precision, without gradients.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from xrobust.atomic import atomic_write_text
from xrobust.diagnostics import alignment, certify, substitution
from xrobust.diagnostics.config import READOUTS, enabled, settings
from xrobust.diagnostics.readout import Readout

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from xrobust.data.datamodule import TransferDataModule
    from xrobust.lightning.module import TransferModule


ReadOut = Callable[["TransferModule", "TransferDataModule", dict[str, Any], str], Readout]
# Each read-out's function, by its eval.<name>.
DIAGNOSTICS: dict[str, ReadOut] = {
    "alignment": alignment.read_out,
    "certify": certify.read_out,
    "substitution": substitution.read_out,
}
# The read-outs that compare the tested weights with the model as built, so also run before training.
PRETRAINED_STAGE = ("alignment",)


def before_training(
    module: TransferModule, datamodule: TransferDataModule, eval_cfg: Any, *, trainer: pl.Trainer | None = None
) -> dict[str, Readout]:
    """The enabled read-outs that need the model as built, on it (stage "pretrained")."""
    return _run(
        module, datamodule, eval_cfg, [n for n in PRETRAINED_STAGE if enabled(eval_cfg, n)], "pretrained", trainer
    )


def after_test(
    module: TransferModule, datamodule: TransferDataModule, eval_cfg: Any, *, trainer: pl.Trainer | None = None
) -> dict[str, Readout]:
    """Every enabled read-out, on the tested weights (stage "tested")."""
    return _run(module, datamodule, eval_cfg, [n for n in DIAGNOSTICS if enabled(eval_cfg, n)], "tested", trainer)


def _run(
    module: TransferModule,
    datamodule: TransferDataModule,
    eval_cfg: Any,
    names: list[str],
    stage: str,
    trainer: pl.Trainer | None,
) -> dict[str, Readout]:
    if not names:
        return {}
    if trainer is not None:
        module.to(trainer.strategy.root_device)  # Lightning's teardown after test moved it back to the CPU
    training = module.training
    module.eval()
    found = {}
    try:
        for name in names:
            started = time.perf_counter()
            # A fresh context per read-out: test_step_context() is a generator-based context manager, used once.
            context = trainer.precision_plugin.test_step_context() if trainer is not None else nullcontext()
            with torch.no_grad(), context:
                readout = DIAGNOSTICS[name](module, datamodule, settings(eval_cfg, name), stage)
            readout.seconds = time.perf_counter() - started
            found[name] = readout
    finally:
        module.train(training)
    return found


def merge(*runs: dict[str, Readout]) -> dict[str, Readout]:
    """The stages of each read-out as one: summaries joined (each stage under its own key), rows in order, time
    added up."""
    merged: dict[str, Readout] = {}
    for readouts in runs:
        for name, readout in readouts.items():
            if name in merged:
                before = merged[name]
                readout = Readout(
                    before.summary | readout.summary, before.rows + readout.rows, before.seconds + readout.seconds
                )
            merged[name] = readout
    return merged


def write(out_dir: Path, readouts: dict[str, Readout]) -> dict[str, Any] | None:
    """Each read-out's rows as <out_dir>/<name>.tsv (written whole); results.json's `diagnostics` (None: none ran)."""
    if not readouts:
        return None
    summary = {}
    for name in sorted(readouts, key=lambda name: READOUTS.index(name) if name in READOUTS else len(READOUTS)):
        readout = readouts[name]
        if readout.rows:
            atomic_write_text(out_dir / f"{name}.tsv", _tsv(readout.rows))
        summary[name] = readout.summary | {"seconds": round(readout.seconds, 2)}
    return summary


def _tsv(rows: list[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
