"""Padding of length-grouped training batches on several ranks: Lightning's wrapper against whole batches dealt.

    .venv/bin/python -m benchmarks.rank_padding [--ranks 2] [--batch-size 16] [--max-length 128] [--epochs 3]

Token lengths of XNLI's English training pairs (../shared/data/xnli/train-en.tsv, else the packaged sample) under
the embedded tokenizer. For each rank, it reports the tokens of its dynamically padded batches over their real
tokens, averaged over epochs, in three cases: one process (LengthGroupedSampler alone); N ranks as Lightning
runs a sampler that is not a DistributedSampler (wrapped in its DistributedSamplerWrapper, which reshuffles the
items); and N ranks with LengthGroupedSampler dealing whole batches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from transformers import AutoTokenizer

from xrobust.data.sampling import LengthGroupedSampler
from xrobust.models.embedded import ensure_embedded_model

ROOT = Path(__file__).resolve().parents[1]
XNLI = ROOT.parent / "shared" / "data" / "xnli" / "train-en.tsv"
SAMPLE = ROOT / "xrobust" / "data" / "sample" / "train-en.tsv"


def pair_lengths(path: Path, max_length: int) -> list[int]:
    tokenizer = AutoTokenizer.from_pretrained(ensure_embedded_model("me5-small"))
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    encoded = tokenizer([r[0] for r in rows], [r[1] for r in rows], truncation=True, max_length=max_length)
    return [len(ids) for ids in encoded["input_ids"]]


def padding_ratio(order: list[int], lengths: list[int], batch_size: int) -> float:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return padded / sum(lengths[i] for i in order)


def mean_ratio(make_sampler, lengths: list[int], batch_size: int, epochs: int) -> float:
    ratios = []
    for epoch in range(epochs):
        sampler = make_sampler()
        sampler.set_epoch(epoch)
        ratios.append(padding_ratio(list(sampler), lengths, batch_size))
    return sum(ratios) / len(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    source = XNLI if XNLI.is_file() else SAMPLE
    lengths = pair_lengths(source, args.max_length)
    size, seed = args.batch_size, 1
    print(f"{source} ({len(lengths)} pairs), batch {size} per rank, {args.ranks} ranks, {args.epochs} epochs")
    print(f"{'case':<44}{'rank':>5}{'padded / real tokens':>22}")
    alone = mean_ratio(lambda: LengthGroupedSampler(lengths, size, seed), lengths, size, args.epochs)
    print(f"{'one process':<44}{'-':>5}{alone:>21.3f}x")
    for rank in range(args.ranks):

        def wrapped(rank=rank):
            inner = LengthGroupedSampler(lengths, size, seed)
            return DistributedSamplerWrapper(inner, num_replicas=args.ranks, rank=rank, shuffle=True, seed=seed)

        ratio = mean_ratio(wrapped, lengths, size, args.epochs)
        print(f"{'before: wrapped by Lightning (reshuffled)':<44}{rank:>5}{ratio:>21.3f}x")
    for rank in range(args.ranks):

        def dealt(rank=rank):
            return LengthGroupedSampler(lengths, size, seed, num_replicas=args.ranks, rank=rank)

        ratio = mean_ratio(dealt, lengths, size, args.epochs)
        print(f"{'after: whole batches dealt to ranks':<44}{rank:>5}{ratio:>21.3f}x")


if __name__ == "__main__":
    main()
