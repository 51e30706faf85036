"""eval.substitution: accuracy on every test set with its words replaced by neighbours at a given rate, beside the
clean accuracy of the same items, so "robust training" is also measured on the perturbation rs_da trains for.

The neighbours come from rs_da's and code_switch's sources (xrobust/noise/augmentation.py): `file`, Robust-XLT's
counter-fitted synonyms (English words) with its verbatim token rule, or `embedding`, the k nearest whole words in
the tested model's input-embedding space (mostly translations, so target-language words find neighbours) with the
alphabetic-core rule. Each word that has neighbours is replaced, with probability `rate`, by a uniform draw from
them; every item draws from its own generator seeded by (seed, test set, item id), so the substitution of an item
is the same whatever else is read. At rate 0 no text changes and the accuracy is the clean one exactly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xrobust.config.fields import require
from xrobust.data.tokenize import MODEL_COLUMNS
from xrobust.diagnostics.readout import Readout
from xrobust.noise import perturb
from xrobust.noise.neighbours import cached_embedding_neighbours, load_neighbour_file, training_words
from xrobust.noise.synonyms import synonym_file

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from xrobust.data.datamodule import TransferDataModule
    from xrobust.lightning.module import TransferModule


SOURCES = ("embedding", "file")


def check_config(cfg: DictConfig) -> None:
    """At start-up: a known neighbour source, and a synonym file that exists when one is named."""
    block = cfg.eval.get("substitution")
    if not (block and block.get("enabled", False)):
        return
    require(block.source in SOURCES, "eval.substitution.source", block.source, f"must be one of {', '.join(SOURCES)}")
    path = block.get("path")
    require(not path or block.source == "file", "eval.substitution.path", path, "is read only with source=file")
    require(not path or Path(path).expanduser().is_file(), "eval.substitution.path", path, "no such file")


def substitute_at_rate(
    text: str, neighbours: dict[str, list[str]], rate: float, rng: random.Random, verbatim: bool
) -> tuple[str, int]:
    """The text with each word that has neighbours replaced with probability `rate` by one of them, and how many
    were replaced. `verbatim`: Robust-XLT's rule (single-space tokens looked up as they are, the file source);
    otherwise the alphabetic core is looked up and punctuation and the first letter's case are kept."""
    pieces = text.split(" ") if verbatim else perturb.SPACE.split(text)
    replaced = 0
    for i in range(0, len(pieces), 1 if verbatim else 2):  # the word rule's odd pieces are whitespace
        parts = ("", pieces[i], "") if verbatim else perturb.split_word(pieces[i])
        if parts is None:
            continue
        prefix, core, suffix = parts
        options = neighbours.get(core) if verbatim else perturb.lookup(neighbours, core)
        if options and rng.random() < rate:
            choice = options[rng.randrange(len(options))]
            pieces[i] = prefix + (choice if verbatim else perturb.match_case(core, choice)) + suffix
            replaced += 1
    return (" " if verbatim else "").join(pieces), replaced


def item_rng(seed: int, test_set: str, item_id: Any) -> random.Random:
    """One item's stream: the same draws for an item whichever items are read with it."""
    return random.Random(f"{seed}/{test_set}/{item_id}")


def substituted_rows(
    rows: dict[str, list], fields: list[str], neighbours: dict, settings: dict, test_set: str, verbatim: bool
) -> tuple[dict[str, list], list[int], list[int]]:
    """The rows (columns of lists) with their text fields substituted; per item the words replaced and the
    whitespace-separated words it has in those fields."""
    out = {name: list(values) for name, values in rows.items()}
    replaced, words = [], []
    for index, item_id in enumerate(rows["id"]):
        rng = item_rng(settings["seed"], test_set, item_id)
        count = total = 0
        for field in fields:
            text = rows[field][index]
            out[field][index], changed = substitute_at_rate(text, neighbours, settings["rate"], rng, verbatim)
            count, total = count + changed, total + len(text.split())
        replaced.append(count)
        words.append(total)
    return out, replaced, words


def neighbour_table(module: TransferModule, tokenizer: Any, chosen: dict, settings: dict, fields: list[str]):
    """The neighbours of eval.substitution.source (the embedding source's for the words of the chosen items only)
    and a description of where they came from."""
    if settings["source"] == "file":
        path = synonym_file(settings["path"], settings["cache_dir"])
        return load_neighbour_file(path), str(path)
    words = sorted({word for rows in chosen.values() for word in training_words(rows, fields)})
    weight = module.model.get_input_embeddings().weight
    table, cache = cached_embedding_neighbours(
        weight, tokenizer, words, settings["k"], settings["cache_dir"], settings["chunk_size"]
    )
    where = f"embedding neighbours (k={settings['k']}) of the tested model's input embeddings"
    return table, where + (f", cached in {cache}" if cache else "")


def percent(predicted: list[int], gold: list[int]) -> float:
    return 100.0 * sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold) if gold else 0.0


def predictions(module: TransferModule, datamodule: TransferDataModule, rows: dict[str, list]) -> list[int]:
    """The tested classifier's predictions (module.predict_labels: the noise method's predict, as in testing) on
    raw rows, encoded and batched as the test sets are."""
    kind, head = datamodule.kind, datamodule.head
    collate = kind.collator_for(datamodule.tokenizer, head)
    device = next(module.model.parameters()).device
    encoded = kind.encode_for(head)(rows, datamodule.tokenizer, datamodule.task, datamodule.max_length)
    keep = [k for k in encoded if k in (*MODEL_COLUMNS, "labels")]
    features = [{k: encoded[k][i] for k in keep} for i in range(len(rows["id"]))]
    predicted: list[int] = []
    for start in range(0, len(features), datamodule.eval_batch_size):
        batch = collate(features[start : start + datamodule.eval_batch_size])
        predicted += module.predict_labels({k: v.to(device) for k, v in batch.items()}).tolist()
    return predicted


def read_out(module: TransferModule, datamodule: TransferDataModule, settings: dict[str, Any], stage: str) -> Readout:
    """Accuracy under substitution and clean accuracy on each test set's first `items` items."""
    fields = list(datamodule.task.text_fields)
    limit = settings["items"]
    chosen = {
        name: (raw if limit is None else raw.select(range(min(limit, len(raw))))).to_dict()
        for name, raw in datamodule.raw_test_sets.items()
    }
    neighbours, source = neighbour_table(module, datamodule.tokenizer, chosen, settings, fields)
    verbatim = settings["source"] == "file"
    rows_out, per_language = [], {}
    for test_set, clean in chosen.items():
        noisy, replaced, words = substituted_rows(clean, fields, neighbours, settings, test_set, verbatim)
        clean_pred = predictions(module, datamodule, clean)
        noisy_pred = predictions(module, datamodule, noisy) if any(replaced) else clean_pred
        gold = clean["label"]
        for item_id, label, pred, count in zip(clean["id"], gold, noisy_pred, replaced, strict=True):
            rows_out.append({"language": test_set, "id": item_id, "gold": label, "pred": pred, "substituted": count})
        per_language[test_set] = {
            "items": len(gold),
            "accuracy": percent(noisy_pred, gold),
            "clean_accuracy": percent(clean_pred, gold),
            "substituted_words": sum(replaced) / sum(words) if sum(words) else 0.0,
        }
    summary = {
        "rate": settings["rate"],
        "source": source,
        "seed": settings["seed"],
        "word_rule": "robust_xlt_verbatim" if verbatim else "alphabetic_core",
        "per_language": per_language,
    }
    return Readout(summary=summary, rows=rows_out)
