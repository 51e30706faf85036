"""Peak host memory of a trainer=fsdp2 start-up: one process against two ranks, with and without rank-0 loading.

    python -m benchmarks.startup_rss [--d-model 768] [--layers 6] [--dtype float32|bfloat16] [--out FILE.json]

Writes an mT5-shaped checkpoint whose encoder weights dominate (d_model 768, 6 layers: 57M encoder parameters,
226 MB in fp32; a 1,000-piece vocabulary keeps the input embeddings, which every rank loads, at 3 MB), then runs
`python -m xrobust.train ... trainer.max_steps=0` on the packaged sample three ways: one process; two FSDP2
ranks where every rank loads the model (`module.strategy_target=null`, as before rank-0 loading); two FSDP2 ranks
as shipped (rank 1 builds on the meta device). Per process: its peak resident set (VmHWM, which counts the
memory-mapped checkpoint pages it touched, shared with the page cache) and its peak private memory (RssAnon, polled
from /proc every 50 ms until it exits), what the ranks of a node add up to at start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import ROOT

RUNS = {
    "1 process": ["trainer=cpu", "trainer.devices=1"],
    "2 FSDP2 ranks, every rank loads": ["trainer=fsdp2", "trainer.devices=2", "module.strategy_target=null"],
    "2 FSDP2 ranks, rank 0 loads": ["trainer=fsdp2", "trainer.devices=2"],
}
COMMON = ["logger=none", "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_steps=0"]
COMMON += ["trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", "model.embedded=null"]
COMMON += ["model.architecture=null", "data.batch_size=8", "data.max_length=48"]


def write_checkpoint(folder: Path, d_model: int, layers: int, dtype: str) -> Path:
    """An mT5 checkpoint with the tests' 1,000-piece tokenizer: random weights, the encoder `layers` deep, saved in
    `dtype` (float32 is memory-mapped as is by transformers 5; bfloat16 is converted to fp32, a private copy)."""
    import torch
    import transformers

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import _write_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _write_tokenizer(folder, "mt5")
    config = transformers.MT5Config(
        vocab_size=vocab,
        d_model=d_model,
        d_kv=64,
        d_ff=4 * d_model,
        num_heads=d_model // 64,
        num_layers=layers,
        num_decoder_layers=1,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    transformers.MT5ForConditionalGeneration(config).to(getattr(torch, dtype)).save_pretrained(folder)
    return folder


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Lightning's launcher starts rank 1 as a child of rank 0)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def memory_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set, file-backed pages included) and RssAnon (private memory now) of `pid`, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    rows = (row.split() for row in status.splitlines())
    return {row[0].rstrip(":"): int(row[1]) / 1024 for row in rows if row and row[0] in ("VmHWM:", "RssAnon:")}


def measure(args: list[str], run_dir: Path) -> dict[int, dict[str, float]]:
    """Per process of one run (by pid): its peak resident set and its peak private memory (RssAnon, polled every
    50 ms until the run ends), in MiB."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "xrobust.train", *args, f"hydra.run.dir={run_dir}"]
    with open(run_dir.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        peaks: dict[int, dict[str, float]] = {}
        while proc.poll() is None:
            for pid in descendants(proc.pid):
                for key, value in memory_mib(pid).items():
                    peak = peaks.setdefault(pid, {})
                    peak[key] = max(value, peak.get(key, 0.0))
            time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): see {run_dir.with_suffix('.log')}")
    return {pid: peak for pid, peak in peaks.items() if peak.get("VmHWM", 0) > 100}  # the ranks, not a shell


def listed(values: list[float]) -> str:
    return " + ".join(f"{v:.0f}" for v in values) + (f" = {sum(values):.0f}" if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", type=Path)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = write_checkpoint(scratch / "model", options.d_model, options.layers, options.dtype)
        rows = {}
        for name, extra in RUNS.items():
            peaks = measure([*COMMON, f"model.pretrained={model}", *extra], scratch / f"run{len(rows)}")
            hwm = sorted((p["VmHWM"] for p in peaks.values()), reverse=True)
            anon = sorted((p["RssAnon"] for p in peaks.values()), reverse=True)
            rows[name] = {"peak_rss_mib": [round(p) for p in hwm], "peak_private_mib": [round(p) for p in anon]}
            print(f"{name:32} peak RSS {listed(hwm)} MiB; peak private {listed(anon)} MiB")
    if options.out:
        options.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
