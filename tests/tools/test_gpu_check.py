"""`make gpu-check`'s CPU part, as a user without a GPU (and CI) runs it: every check passes on this machine."""

from __future__ import annotations

import subprocess
import sys

import torch
from helpers import ROOT
from helpers.small_runs import env


def test_gpu_check_cpu_part_passes_one_line_per_check(tmp_path):
    log = tmp_path / "gpu-check.log"
    args = [sys.executable, "-m", "helpers.gpu_check", "--cpu", "--log", str(log)]
    proc = subprocess.run(args, cwd=ROOT / "tests", capture_output=True, text=True, env=env(), timeout=900)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert lines[0].startswith("gpu-check: no CUDA GPU here") or torch.cuda.is_available()
    checks = [line for line in lines if line.startswith(("OK", "FAIL"))]
    assert len(checks) == len(lines) - 2 and all(line.startswith("OK") for line in checks)
    names = " ".join(line.split(":")[0] for line in checks)
    for expected in ("mt5 fsdp2", "deberta-v2 ddp", "noise adv fsdp2", "resume after SIGTERM ddp"):
        assert expected in names
    assert lines[-1].startswith("gpu-check: all checks passed on cpu")


def test_the_packed_vs_padded_line_runs_on_cpu(tmp_path):
    """gpu-check's packed-vs-padded check (a GPU-only line) as a dry run on this CPU at a tiny size: the benchmark
    runs padded and packed batches through the measured path and --check accepts them."""
    tiny = ["--data", "/nonexistent", "--steps", "2", "--warmup-steps", "1", "--max-eval-examples", "8"]
    tiny += ["--threads", "1", "--batch-size", "16"]
    script = (
        "import sys; from pathlib import Path; from helpers import gpu_check as g; "
        f"g.PACKING_RUN[:] = {tiny!r} + ['--rounds', '1']; "
        "print('LINE', g.check_packing(g.Node(Path(sys.argv[1]), 'cpu')))"
    )
    args = [sys.executable, "-c", script, str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT / "tests", capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("LINE"))
    assert " ex/s, " in line and " real tokens/s; eval " in line and "tokens computed per real token" in line
    assert "| packed (`data.packing=true`) |" in proc.stdout and "| packed / padded |" in proc.stdout
