"""The generalized setting's check that two test files hold the same items, line by line, judged by content."""

from __future__ import annotations

import csv

from xrobust.data.parallel import parallel_mismatch


def read(path):
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[-1] for r in rows], [" ".join(r[:-1]) for r in rows]


def test_aligned_translations_pass_and_shifted_or_shuffled_files_do_not(shared_data):
    labels_en, texts_en = read(shared_data / "xnli" / "dev-en.tsv")
    for lang in ("de", "zh", "sw"):
        labels, texts = read(shared_data / "xnli" / f"dev-{lang}.tsv")
        assert parallel_mismatch(labels_en, labels, texts_en, texts) is None, lang
        rotated = (labels[1:] + labels[:1], texts[1:] + texts[:1])
        assert "same gold label" in parallel_mismatch(labels_en, rotated[0], texts_en, rotated[1]), lang


def test_label_preserving_shuffle_is_caught_by_the_numbers(shared_data):
    """Swapping items that share a label keeps every gold label; the numbers in the text still move."""
    labels_en, texts_en = read(shared_data / "xnli" / "dev-en.tsv")
    labels, texts = read(shared_data / "xnli" / "dev-de.tsv")
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    order = list(range(len(labels)))
    for rows in by_label.values():
        for position, i in enumerate(rows):
            order[i] = rows[(position + 1) % len(rows)]
    shuffled_texts = [texts[i] for i in order]
    assert [labels[i] for i in order] == labels
    assert "numbers" in parallel_mismatch(labels_en, labels, texts_en, shuffled_texts)


def test_small_files_are_judged_by_length_only():
    """A few relabelled items in a tiny file say nothing about alignment (PAWS-X relabels ~2%)."""
    assert parallel_mismatch([1, 0, 1, 0], [1, 1, 1, 0], ["a"] * 4, ["b"] * 4) is None
    assert parallel_mismatch([1, 0], [1, 0, 1], ["a"] * 2, ["b"] * 3) == "2 vs 3 lines"
