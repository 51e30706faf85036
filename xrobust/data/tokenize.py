"""Raw rows to token ids, through `datasets.map` with an on-disk cache shared by every job of a sweep; the task's
kind (xrobust/kinds/) says how a row becomes token ids."""

from __future__ import annotations

from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from xrobust.data.task import TaskSpec

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def tokenize_split(
    rows: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    max_length: int,
    cache_dir: str | Path | None,
) -> datasets.Dataset:
    """Tokenize once; the cache key is the rows' content fingerprint, the task kind, the tokenizer and the max
    length."""
    key = datasets.fingerprint.Hasher.hash(
        [rows._fingerprint, task.kind, type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), max_length]
    )
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"tokenized-{key}.arrow")
    keep = {"id", "lang"}
    return rows.map(
        task.task_kind.encode,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "task": task, "max_length": max_length},
        remove_columns=[c for c in rows.column_names if c not in keep],
        cache_file_name=cache_file,
        new_fingerprint=key,
        desc=f"tokenizing {rows[0]['lang'] if len(rows) else ''}",
    )
