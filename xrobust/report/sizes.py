"""Model size as the models declare it, and which model pairs a size comparison contrasts.

Size is the non-embedding (transformer body) parameter count from results.json (`model.non_embedding_parameters`):
the input embedding matrix grows with the vocabulary, not with depth or width, and it makes mdeberta-v3-base
"larger" than xlmr-base although their bodies are the same. Runs written before that field existed fall back to
the total count, and the report says so. By default only models of one `model.family` are contrasted (xlmr-large
against xlmr-base, not against mt0-large); `--pairs` names other pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from xrobust.report.collect import Job

# Two bodies closer than this (relative) are the same size: no "larger" among them.
SAME_SIZE = 0.01


def human_params(n: int) -> str:
    """1.0B, 560M, 21.6M: about three significant digits below a billion."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e8 else f"{n / 1e6:.1f}M"


@dataclass(frozen=True)
class ModelSize:
    name: str
    total: int
    body: int | None
    family: str | None

    def size(self, by_body: bool) -> int:
        return self.body if by_body and self.body is not None else self.total

    def text(self) -> str:
        """'560M (304M body)', or the total alone when the body size is unknown."""
        total = human_params(self.total)
        return total if self.body is None else f"{total} ({human_params(self.body)} body)"


def model_sizes(jobs: list[Job]) -> list[ModelSize]:
    """One entry per model name, largest first (by body size when every model declares it). A model counted
    with two totals (LoRA adapters add parameters) keeps its smallest, the model without adapters."""
    found: dict[str, list[Job]] = {}
    for job in jobs:
        found.setdefault(job.model, []).append(job)
    sizes = [
        ModelSize(
            name,
            min(job.num_parameters for job in runs),
            min((job.non_embedding_parameters for job in runs if job.non_embedding_parameters), default=None),
            next((job.family for job in runs if job.family), None),
        )
        for name, runs in found.items()
    ]
    by_body = all(size.body is not None for size in sizes)
    return sorted(sizes, key=lambda s: (-s.size(by_body), s.name))


def size_basis(sizes: list[ModelSize]) -> tuple[bool, bool]:
    """(sizes compared by body, pairs restricted to a family): each only when every model declares it."""
    return all(s.body is not None for s in sizes), all(s.family for s in sizes)


def basis_text(sizes: list[ModelSize], chosen_pairs: bool) -> str:
    """One sentence for the table legend: what "larger" means here and why these pairs."""
    by_body, by_family = size_basis(sizes)
    size = (
        "Size = non-embedding (transformer body) parameters, as results.json declares them"
        if by_body
        else "Size = total parameters, embeddings included (results.json lacks model.non_embedding_parameters: "
        "older runs)"
    )
    if chosen_pairs:
        pairs = "pairs as given by --pairs (first minus second)"
    elif by_family:
        pairs = "pairs within each model family (model.family), larger minus smaller"
    else:
        pairs = "every pair of models, larger minus smaller (no model.family declared)"
    return f"{size}; {pairs}."


def default_pairs(sizes: list[ModelSize]) -> tuple[list[tuple[ModelSize, ModelSize]], list[str]]:
    """(larger, smaller) pairs within each family (or all pairs when a family is missing), and notes on pairs
    left out because their bodies are the same size."""
    by_body, by_family = size_basis(sizes)
    pairs, notes = [], []
    for larger, smaller in combinations(sizes, 2):  # sizes are largest first
        if by_family and larger.family != smaller.family:
            continue
        big, small = larger.size(by_body), smaller.size(by_body)
        if by_body and big - small < SAME_SIZE * big:
            notes.append(
                f"{larger.name} and {smaller.name} have the same body size ({human_params(big)} vs "
                f"{human_params(small)}): not a size contrast (--pairs {larger.name}:{smaller.name} compares them)"
            )
            continue
        if big != small:
            pairs.append((larger, smaller))
    return pairs, notes


def parse_pairs(text: str | None) -> list[tuple[str, str]] | None:
    """'a:b,c:d' -> [(a, b), (c, d)]; None for no text."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        first, sep, second = item.strip().partition(":")
        if not sep or not first or not second or first == second:
            raise ValueError(f"--pairs: {item!r} is not FIRST:SECOND with two different names")
        pairs.append((first.strip(), second.strip()))
    return pairs
