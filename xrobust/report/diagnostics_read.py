"""A finished job's diagnostic read-outs (issue #32): results.json's `diagnostics` and the per-item TSVs beside it
(alignment.tsv, substitution.tsv), read once per job; a file that does not parse is refused with its path.

The layout is docs/diagnostics.md's. Summary accuracies are percentages (0-100); shares (abstained, substituted
words) fractions; the TSVs' 0/1 columns are read as they are.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrobust.errors import XrobustError
from xrobust.report.collect import Job
from xrobust.run.results import RESULTS_FILE
from xrobust.run.run_result import RunResult

ALIGNMENT, CERTIFY, SUBSTITUTION = "alignment", "certify", "substitution"
PRETRAINED, TESTED = "pretrained", "tested"
ALIGNMENT_FILE, SUBSTITUTION_FILE = "alignment.tsv", "substitution.tsv"
ALIGNMENT_COLUMNS = ["stage", "layer", "language", "id", "retrieved_id", "hit"]
SUBSTITUTION_COLUMNS = ["language", "id", "gold", "pred", "substituted"]


@dataclass
class Diagnosed:
    """One job with its diagnostics summary ({read-out name: summary}) and its per-item rows, read when asked."""

    job: Job
    summary: dict[str, dict[str, Any]]
    _hits: dict[tuple[str, int], dict[str, dict[int, int]]] | None = field(default=None, repr=False)
    _substituted: dict[str, dict[int, bool]] | None = field(default=None, repr=False)

    @property
    def where(self) -> Path:
        return self.job.folder / RESULTS_FILE

    def readout(self, name: str) -> dict[str, Any] | None:
        return self.summary.get(name)

    def value(self, name: str, *keys: str) -> Any:
        """summary[name][keys...], or XrobustError naming the file and the missing key."""
        node: Any = self.summary.get(name)
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                path = ".".join(["diagnostics", name, *keys[: depth + 1]])
                raise XrobustError(f"{self.where}: no {path}")
            node = node[key]
        return node

    def layer(self, requested: int | None) -> int:
        """The alignment layer reported: the one asked for, else the last recorded."""
        layers = [int(layer) for layer in self.value(ALIGNMENT, "layers")]
        if not layers:
            raise XrobustError(f"{self.where}: diagnostics.alignment.layers is empty")
        if requested is None:
            return layers[-1]
        if requested not in layers:
            raise XrobustError(
                f"{self.where}: --alignment-layer {requested} was not recorded (layers: {', '.join(map(str, layers))})"
            )
        return requested

    def alignment(self, stage: str, layer: int, language: str) -> dict[str, float]:
        return self.value(ALIGNMENT, stage, language, str(layer))

    def hits(self, stage: str, layer: int) -> dict[str, dict[int, int]] | None:
        """{language: {item id: hit}} of alignment.tsv at this stage and layer (None: no such file)."""
        path = self.job.folder / ALIGNMENT_FILE
        if not path.is_file():
            return None
        if self._hits is None:
            self._hits = {}
            for line, row in _rows(path, ALIGNMENT_COLUMNS):
                try:
                    key, lang, item, hit = (row[0], int(row[1])), row[2], int(row[3]), int(row[5])
                except ValueError:
                    raise XrobustError(f"{path}:{line}: malformed row {row!r}") from None
                self._hits.setdefault(key, {}).setdefault(lang, {})[item] = hit
        return self._hits.get((stage, layer), {})

    def substituted(self) -> dict[str, dict[int, bool]] | None:
        """{language: {item id: correct under substitution}} of substitution.tsv (None: no such file)."""
        path = self.job.folder / SUBSTITUTION_FILE
        if not path.is_file():
            return None
        if self._substituted is None:
            self._substituted = {}
            for line, row in _rows(path, SUBSTITUTION_COLUMNS):
                try:
                    lang, item, correct = row[0], int(row[1]), int(row[2]) == int(row[3])
                except ValueError:
                    raise XrobustError(f"{path}:{line}: malformed row {row!r}") from None
                self._substituted.setdefault(lang, {})[item] = correct
        return self._substituted


def _rows(path: Path, columns: list[str]):
    """(line number, row) of a TSV whose header must be `columns`."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header != columns:
            raise XrobustError(f"{path}: header {header} is not {columns}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(columns):
                raise XrobustError(f"{path}:{line}: {len(row)} columns, expected {len(columns)}")
            yield line, row


def diagnostics_summary(job: Job) -> dict[str, dict[str, Any]]:
    """results.json's `diagnostics` ({} when the job had none)."""
    path = job.folder / RESULTS_FILE
    result = RunResult.read(path)
    found = getattr(result, "diagnostics", None)
    if found is None:
        found = result.extra.get("diagnostics")
    if found is None:
        return {}
    if not isinstance(found, dict) or not all(isinstance(value, dict) for value in found.values()):
        raise XrobustError(f"{path}: 'diagnostics' must map each read-out's name to an object")
    return found


def diagnosed(jobs: list[Job]) -> list[Diagnosed]:
    """The jobs that recorded any read-out, each with its summary."""
    found = [Diagnosed(job, diagnostics_summary(job)) for job in jobs]
    return [item for item in found if item.summary]
