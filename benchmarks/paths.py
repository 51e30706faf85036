"""One measured run of one training + evaluation path, meant to run in its own process (so peak RSS is its own).

    python -m benchmarks.paths SPEC.json RESULT.json

Paths: `xrobust` (the real TransferDataModule + TransferModule + Lightning Trainer, composed from conf/ with
the spec's Hydra overrides), `hf` (the Hugging Face `Trainer` with `DataCollatorWithPadding`, what a user would
write instead) and `pad128` (the same `Trainer` with every pair padded to max length, the XTREME / Robust-XLT
recipe). Every path gets the same model folder, rows, batch size, max length, seed, optimizer settings and
number of steps. Timed: the training steps after `warmup_steps` (data loading, forward, backward, clipping,
AdamW, schedule), and the whole evaluation over the target languages; model loading, tokenization,
validation and checkpointing are outside both windows, for every path alike.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.hf_paths import run_hf
from benchmarks.measure import Spec, peak_rss_mb
from benchmarks.xrobust_path import run_xrobust


def run(spec: Spec) -> dict:
    if spec.threads:
        torch.set_num_threads(spec.threads)
    result = run_xrobust(spec) if spec.path == "xrobust" else run_hf(spec)
    return result | {"spec": asdict(spec), "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()}


def main() -> None:
    spec_path, result_path = sys.argv[1:3]
    spec = Spec(**json.loads(Path(spec_path).read_text()))
    Path(result_path).write_text(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
