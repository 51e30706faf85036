"""Model size as the models declare it, and which model pairs a size comparison contrasts.

Size is the non-embedding (transformer body) parameter count from results.json (`model.non_embedding_parameters`):
the input embedding matrix grows with the vocabulary, not with depth or width, and it makes mdeberta-v3-base
"larger" than xlmr-base although their bodies are the same. Runs written before that field existed fall back to
the total count, and the report says so. By default only models of one `model.family` are contrasted (xlmr-large
against xlmr-base, not against mt0-large), plus each model against its `model.base_model` when both ran: the same
architecture with different training (mt0-xxl minus mt5-xxl: what xP3's multitask fine-tuning adds). `--pairs`
names other pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from xrobust.report.collect import Job

# Two bodies closer than this (relative) are the same size: no "larger" among them.
SAME_SIZE = 0.01
# The flattened config key naming the model a checkpoint was trained from (conf/model/mt0-*.yaml).
BASE_MODEL = "model.base_model"


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
    # The model these weights were trained from (results.json config model.base_model): same architecture.
    base: str | None = None

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
            next((job.flat_config[BASE_MODEL] for job in runs if job.flat_config.get(BASE_MODEL)), None),
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
    trained = [f"{s.name} minus {s.base}" for s in sizes if s.base in {other.name for other in sizes}]
    if trained and not chosen_pairs:
        pairs += (
            f"; and each model minus the checkpoint it was trained from (model.base_model: the same architecture, "
            f"different training): {', '.join(trained)}"
        )
    return f"{size}; {pairs}."


def default_pairs(sizes: list[ModelSize]) -> tuple[list[tuple[ModelSize, ModelSize]], list[str]]:
    """(larger, smaller) pairs within each family (or all pairs when a family is missing), then (model, its
    model.base_model) for each model whose base also ran, and notes on pairs left out because their bodies are the
    same size."""
    by_body, by_family = size_basis(sizes)
    pairs, notes = [], []
    for larger, smaller in combinations(sizes, 2):  # sizes are largest first
        if by_family and larger.family != smaller.family or trained_from(larger, smaller):
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
    by_name = {size.name: size for size in sizes}
    pairs += [(size, by_name[size.base]) for size in sizes if size.base in by_name and size.base != size.name]
    return pairs, notes


def trained_from(first: ModelSize, second: ModelSize) -> bool:
    """Whether one of the two names the other as its model.base_model (a training contrast, not a size one)."""
    return first.base == second.name or second.base == first.name


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
