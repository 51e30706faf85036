"""Whether two test files hold the same items in the same order (translations, line by line), judged by content
that survives translation: each item's gold label and the numbers in its text. Item ids are row numbers in the
XTREME files, so equal lengths prove nothing."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# Measured on ../shared/data, every ordered pair of XNLI's 15 and PAWS-X's 7 dev files: aligned files agree on at
# least 97.8% of gold labels and 41% of number sets (lines with numbers); files shifted by one or three lines, or
# shuffled, on at most 56% and 16%.
MIN_LABEL_AGREEMENT = 0.9
MIN_NUMBER_AGREEMENT = 0.3
# Below this many lines (with numbers), the labels (the numbers) decide nothing: a handful of relabelled items
# in a tiny file is not evidence of a shift.
MIN_LINES = 20


def numbers(text: str) -> tuple[str, ...]:
    """The digit runs of a text in any script, as ASCII digits, sorted (translation reorders them)."""
    return tuple(sorted("".join(str(unicodedata.digit(c)) for c in run) for run in re.findall(r"\d+", text)))


def parallel_mismatch(
    labels_a: Sequence, labels_b: Sequence, texts_a: Sequence[str], texts_b: Sequence[str]
) -> str | None:
    """None when the two files look like translations of the same items, line by line; else why not."""
    if len(labels_a) != len(labels_b):
        return f"{len(labels_a)} vs {len(labels_b)} lines"
    if not labels_a:
        return None
    same = sum(x == y for x, y in zip(labels_a, labels_b, strict=True)) / len(labels_a)
    if len(labels_a) >= MIN_LINES and same < MIN_LABEL_AGREEMENT:
        return f"only {same:.0%} of the lines carry the same gold label"
    pairs = [(numbers(x), numbers(y)) for x, y in zip(texts_a, texts_b, strict=True)]
    with_numbers = [(x, y) for x, y in pairs if x or y]
    if len(with_numbers) >= MIN_LINES:
        agree = sum(x == y for x, y in with_numbers) / len(with_numbers)
        if agree < MIN_NUMBER_AGREEMENT:
            return f"only {agree:.0%} of the lines with numbers hold the same numbers"
    return None
