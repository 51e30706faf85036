"""Raw rows to token ids, through `datasets.map` with an on-disk cache shared by every job of a sweep."""

from __future__ import annotations

from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from xrobust.data.task import TaskSpec

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def encode_pairs(batch: dict, tokenizer: PreTrainedTokenizerBase, task: TaskSpec, max_length: int) -> dict:
    """Tokenize a batch of text pairs, truncated to max_length, and flag which ones had to be truncated."""
    texts = [batch[name] for name in task.text_fields]
    encoded = tokenizer(*texts, truncation=True, max_length=max_length)
    full_lengths = [len(ids) for ids in tokenizer(*texts, truncation=False)["input_ids"]]
    encoded["truncated"] = [n > max_length for n in full_lengths]
    encoded["labels"] = batch["label"]
    return encoded


def encode_choices(batch: dict, tokenizer: PreTrainedTokenizerBase, task: TaskSpec, max_length: int) -> dict:
    """Multiple choice: each example becomes one (context + question prompt, choice) pair per choice.

    Returns nested lists (example -> choice -> token ids), which `DataCollatorForMultipleChoice` pads into
    (batch, choices, length) tensors.
    """
    context_field = task.text_fields[0]
    n_choices = len(task.choice_fields)
    contexts = []
    for i, context in enumerate(batch[context_field]):
        prompt = task.question_prompts.get(batch[task.question_field][i], "") if task.question_field else ""
        contexts.append(f"{context} {prompt}".strip())
    firsts = [context for context in contexts for _ in range(n_choices)]
    seconds = [batch[field][i] for i in range(len(contexts)) for field in task.choice_fields]
    flat = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    full_lengths = [len(ids) for ids in tokenizer(firsts, seconds, truncation=False)["input_ids"]]
    encoded = {
        key: [values[i : i + n_choices] for i in range(0, len(firsts), n_choices)] for key, values in flat.items()
    }
    encoded["truncated"] = [
        any(n > max_length for n in full_lengths[i : i + n_choices]) for i in range(0, len(firsts), n_choices)
    ]
    encoded["labels"] = batch["label"]
    return encoded


def encode_examples(batch: dict, tokenizer: PreTrainedTokenizerBase, task: TaskSpec, max_length: int) -> dict:
    """The encoder for the task's kind."""
    encode = encode_choices if task.is_multiple_choice else encode_pairs
    return encode(batch, tokenizer, task, max_length)


def tokenize_split(
    rows: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    max_length: int,
    cache_dir: str | Path | None,
) -> datasets.Dataset:
    """Tokenize once; the cache key is the rows' content fingerprint, the tokenizer and the max length."""
    key = datasets.fingerprint.Hasher.hash(
        [rows._fingerprint, type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), max_length]
    )
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"tokenized-{key}.arrow")
    keep = {"id", "lang"}
    return rows.map(
        encode_examples,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "task": task, "max_length": max_length},
        remove_columns=[c for c in rows.column_names if c not in keep],
        cache_file_name=cache_file,
        new_fingerprint=key,
        desc=f"tokenizing {rows[0]['lang'] if len(rows) else ''}",
    )
