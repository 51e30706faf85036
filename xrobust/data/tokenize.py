"""Raw rows to token ids, through `datasets.map` with an on-disk cache shared by every job of a sweep; the task's
kind (xrobust/kinds/) says how a row becomes token ids."""

from __future__ import annotations

from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from xrobust.data.task import TaskSpec
from xrobust.kinds.base import CLASSIFIER

# choice_ids: the candidates the text-to-text head ranks (xrobust/kinds/base.py: encode_text_to_text).
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "choice_ids")


def tokenize_split(
    rows: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    max_length: int,
    cache_dir: str | Path | None,
    head: str = CLASSIFIER,
) -> datasets.Dataset:
    """Tokenize once, for `head` (model.head); the cache key is the rows' content fingerprint, the task kind, the
    tokenizer and the max length, and for the text-to-text head the prompt template and label strings."""
    parts = [rows._fingerprint, task.kind, type(tokenizer).__name__, tokenizer.name_or_path, len(tokenizer), max_length]
    if head != CLASSIFIER:
        parts += [head, task.prompt_template(), task.verbalizer, task.label_names]
    key = datasets.fingerprint.Hasher.hash(parts)
    cache_file = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"tokenized-{key}.arrow")
    keep = {"id", "lang"}
    return rows.map(
        task.task_kind.encode_for(head),
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "task": task, "max_length": max_length},
        remove_columns=[c for c in rows.column_names if c not in keep],
        cache_file_name=cache_file,
        new_fingerprint=key,
        desc=f"tokenizing {rows[0]['lang'] if len(rows) else ''}",
    )
