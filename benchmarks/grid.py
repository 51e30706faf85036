"""A sweep's wall time with K jobs at once (each on cores / K torch threads) against one job at a time.

    python -m benchmarks.grid [--concurrent 1,2] [--out grid.json] [-- EXTRA_OVERRIDES...]

Runs the CPU size grid (`experiment=size_grid_cpu`: me5-small and me5-small-6l x every noise method on the
packaged sample) once per K, one after the other, each in a fresh sweep folder: K=1 with Hydra's basic launcher
(what a plain `-m` does), K>1 with Hydra's joblib launcher (`hydra/launcher=local_parallel
hydra.launcher.n_jobs=K`, conf/hydra/launcher/local_parallel.yaml), whose worker processes limit torch to
cpu_count // K threads each. Prints the wall time of each sweep, the speed-up against K=1 and every job's target
mean (the same jobs, so they should agree up to float rounding: fewer threads sum in another order). Extra
overrides after `--` go to every sweep (e.g. a subset of noises).
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
from benchmarks.rounds import machine, markdown_table
from xrobust.run.run_result import RESULTS_FILE, RunResult

GRID = ["experiment=size_grid_cpu", "logger=none"]


def launcher_overrides(concurrent: int) -> list[str]:
    return [] if concurrent == 1 else ["hydra/launcher=local_parallel", f"hydra.launcher.n_jobs={concurrent}"]


def run_sweep(concurrent: int, extra: list[str], sweep_dir: Path) -> dict:
    """One whole sweep in a child process; its wall time and every job's results."""
    command = [sys.executable, "-m", "xrobust.train", "-m", *GRID, *launcher_overrides(concurrent), *extra]
    command.append(f"hydra.sweep.dir={sweep_dir}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        failed = f"the sweep with {concurrent} jobs at once failed (exit {proc.returncode})"
        raise RuntimeError(f"{failed}:\n{proc.stderr[-3000:]}")
    jobs = {}
    for path in sorted(sweep_dir.glob(f"*/{RESULTS_FILE}")):
        result = RunResult.read(path)
        job_seconds = sum(result.wall_time_s.values())  # training (with the dev checks) and testing
        jobs[path.parent.name] = {"target_mean": result.target_mean, "wall_time_s": job_seconds}
    return {"concurrent": concurrent, "wall_s": wall, "jobs": jobs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", default="1,2", help="comma-separated K values, 1 first (the baseline)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    values = [int(k) for k in args.concurrent.split(",")]
    cores = os.cpu_count() or 1

    sweeps = []
    with tempfile.TemporaryDirectory(prefix="xrobust-grid-") as tmp:
        for k in values:
            sweeps.append(run_sweep(k, extra, Path(tmp) / f"k{k}"))
            print(f"{k} at once: {sweeps[-1]['wall_s']:.0f} s", file=sys.stderr, flush=True)
    baseline = sweeps[0]
    rows = [
        [
            str(s["concurrent"]),
            str(max(cores // s["concurrent"], 1)),
            str(len(s["jobs"])),
            f"{s['wall_s']:.0f}",
            f"{sum(j['wall_time_s'] for j in s['jobs'].values()):.0f}",
            f"{baseline['wall_s'] / s['wall_s']:.2f}x",
        ]
        for s in sweeps
    ]
    header = ["jobs at once", "torch threads each", "jobs", "sweep wall s", "sum of job wall s", "vs one at a time"]
    print(f"\nthe CPU size grid ({' '.join(GRID + extra)}); {machine()}\n")
    print(markdown_table(header, rows))
    names = sorted(baseline["jobs"])
    print(
        "\ntarget mean per job: "
        + "; ".join(
            f"{name} " + " / ".join(f"{100 * s['jobs'][name]['target_mean']:.1f}" for s in sweeps if name in s["jobs"])
            for name in names
        )
    )
    if args.out:
        args.out.write_text(json.dumps({"extra_overrides": extra, "sweeps": sweeps}, indent=2) + "\n")
    complete = all(len(s["jobs"]) == len(baseline["jobs"]) > 0 for s in sweeps)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
