"""Peak host memory of a trainer=fsdp2 start-up: one process against two ranks, with and without rank-0 loading.

    python -m benchmarks.startup_rss [--d-model 768] [--layers 6] [--dtype float32|bfloat16] [--out FILE.json]
        [--keep DIR]

Writes an mT5-shaped checkpoint whose encoder weights dominate (d_model 768, 6 layers: 57M encoder parameters,
226 MB in fp32; a 1,000-piece vocabulary keeps the input embeddings, which every rank loads, at 3 MB), then runs
`python -m xrobust.train ... trainer.max_steps=0` on the packaged sample three ways: one process; two FSDP2
ranks where every rank loads the model (`module.strategy_target=null`, as before rank-0 loading); two FSDP2 ranks
as shipped (rank 1 builds on the meta device). Per rank, at start-up (when its model is ready: the line each rank
logs at the end of configure_model under `hydra.verbose=xrobust`) and over the whole run (max_steps=0 fit, one
test batch per language): its peak resident set (VmHWM, which counts the memory-mapped checkpoint pages it touched,
shared with the page cache) and its peak private memory (RssAnon, polled from /proc every 50 ms and read at that
line), what the ranks of a node add up to.

On CPU the shards live in host memory too, so rank 1 keeps half the model after rank-0 loading (on GPUs they go to
the device). --d-model 1536 --layers 8 (302M encoder-layer parameters, 1,152 MiB in fp32), MiB, rank 0 + rank 1:

    checkpoint   run                          start-up RSS   start-up private   whole-run RSS   whole-run private
    bfloat16     1 process                            2321               1540            2321                2085
                 2 ranks, every rank loads     2310 + 2303        2103 + 1592     2310 + 2303         2103 + 1756
                 2 ranks, rank 0 loads         2310 + 1205        2103 +  963     2310 + 1931         2103 + 1690
    float32      1 process                             588                381            2292                 920
                 2 ranks, every rank loads     2310 + 1769         946 + 1016     2310 + 1982         1655 + 1772
                 2 ranks, rank 0 loads         2310 + 1195         945 +  966     2310 + 2067         1784 + 1857

A bf16 checkpoint is converted to a private fp32 copy: rank 1 saves that copy less its shard (629 MiB private,
1,098 MiB resident with the bf16 pages it no longer reads), and rank 0 holds the full model and its own shard until
the broadcast (2103 MiB, more than one process). An fp32 checkpoint stays memory-mapped: its pages are the page
cache's, one copy per node however many ranks map them (a single process reads them only at the first forward, so
its start-up is 588 MiB), and each rank's private memory is the process and its shard either way: rank-0 loading
saves rank 1's resident pages (574 MiB), not node memory. The whole-run peaks come from the test, where FSDP2
all-gathers each layer (700-900 MiB more per rank): they hide the start-up figures, which is why whole-run peaks
showed no saving.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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


def rank_of(pid: int) -> int | None:
    """The launcher's LOCAL_RANK of `pid` (Lightning sets it for the ranks it starts; the first process is 0)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = [int(entry.split(b"=", 1)[1]) for entry in environ if entry.startswith(b"LOCAL_RANK=")]
    return found[0] if found else 0


READY = re.compile(r"rank (\d+): model ready, host memory (\d+) MiB peak resident \(VmHWM\), (\d+) MiB private")


def measure(args: list[str], run_dir: Path) -> dict[int, dict[str, float]]:
    """Per rank of one run: its start-up peak resident set (VmHWM when the model is ready, which the rank logs at the
    end of configure_model) and peak private memory until then (RssAnon, polled every 50 ms and at that line), and
    the same two over the whole run (start-up, max_steps=0 fit, one test batch), in MiB."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "xrobust.train", *args, f"hydra.run.dir={run_dir}", "hydra.verbose=xrobust"]
    log_file = run_dir.with_suffix(".log")
    ranks: dict[int, dict[str, float]] = {}
    with open(log_file, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        pids: dict[int, int] = {}
        while proc.poll() is None:
            # The log first: a line seen now was written before this poll, so the peaks below do not run past it.
            for match in READY.finditer(log_file.read_text(errors="replace")):
                rank, hwm, anon = (int(group) for group in match.groups())
                row = ranks.setdefault(rank, {})
                if "startup_rss" not in row:
                    row["startup_rss"] = hwm
                    row["startup_private"] = max(anon, row.get("run_private", 0.0))
            for pid in descendants(proc.pid):
                if pid not in pids and (rank := rank_of(pid)) is not None:
                    pids[pid] = rank
                memory = memory_mib(pid)
                if pid not in pids or memory.get("VmHWM", 0) < 100:  # the ranks, not a shell
                    continue
                row = ranks.setdefault(pids[pid], {})
                row["run_rss"] = max(memory["VmHWM"], row.get("run_rss", 0.0))
                row["run_private"] = max(memory["RssAnon"], row.get("run_private", 0.0))
            time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): see {log_file}")
    missing = [rank for rank, row in ranks.items() if "startup_rss" not in row]
    if not ranks or missing:
        raise SystemExit(f"no 'model ready' line from rank(s) {missing or 'any'}: see {log_file}")
    return dict(sorted(ranks.items()))


def listed(values: list[float]) -> str:
    return " + ".join(f"{v:.0f}" for v in values) + (f" = {sum(values):.0f}" if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", type=Path, help="write the checkpoint and each run's log here (default: removed)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        scratch = options.keep or Path(temporary)
        model = scratch / f"mt5-{options.d_model}x{options.layers}-{options.dtype}"
        if not (model / "model.safetensors").is_file():  # --keep: written once per shape and dtype
            write_checkpoint(model, options.d_model, options.layers, options.dtype)
        rows = {}
        print(f"MiB per rank (rank 0 + rank 1 = node); checkpoint saved in {options.dtype}")
        print(f"{'':32} {'start-up RSS':>20} {'start-up private':>20} {'run RSS':>20} {'run private':>20}")
        for name, extra in RUNS.items():
            run_dir = scratch / f"{model.name}-run{len(rows)}"
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh job folder: no resume, no skip_completed
            ranks = measure([*COMMON, f"model.pretrained={model}", *extra], run_dir)
            columns = ("startup_rss", "startup_private", "run_rss", "run_private")
            rows[name] = {key: [round(row[key]) for row in ranks.values()] for key in columns}
            print(f"{name:32} " + " ".join(f"{listed(rows[name][key]):>20}" for key in columns))
    if options.out:
        options.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
