"""Run measured paths in child processes, alternating them round by round, and summarise them as medians.

Alternating (with the order rotated each round) spreads drifting machine load over every path alike; one
process per run keeps each path's peak resident memory its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.measure import ROOT, Spec

# Bulky per-example fields: compared within the run, left out of the JSON report.
PER_EXAMPLE = ("predictions", "margins")


def run_child(spec: Spec) -> dict:
    """`python -m benchmarks.paths` on one spec; a failure stops the benchmark with the child's own error."""
    with tempfile.TemporaryDirectory(prefix="xrobust-bench-") as tmp:
        spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(asdict(spec)))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.paths", str(spec_file), str(result_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{spec.path} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(result_file.read_text())


def alternate(specs: dict[str, Spec], rounds: int, first_round: dict[str, dict] | None = None) -> dict[str, list]:
    """Every spec once per round, order rotated; `first_round` adds fields to a spec in round 1 only."""
    labels = list(specs)
    results: dict[str, list] = {label: [] for label in labels}
    for r in range(rounds):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        for label in order:
            spec = replace(specs[label], **(first_round or {}).get(label, {})) if r == 0 else specs[label]
            results[label].append(run_child(spec))
            print(f"round {r + 1}/{rounds}: {label} done", file=sys.stderr, flush=True)
    return results


def median(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def compact(results: dict[str, list]) -> dict[str, list]:
    """The per-round results without their per-example fields, for the JSON report."""
    return {
        label: [{k: v for k, v in r.items() if k not in PER_EXAMPLE} for r in runs] for label, runs in results.items()
    }


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}"
