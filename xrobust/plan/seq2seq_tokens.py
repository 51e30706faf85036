"""The text-to-text head's token counts for a plan (`model.head=seq2seq`): how many candidate strings each item
has, their tokens (EOS included), the template's own tokens and a choice's mean tokens, measured with the planner's
tokenizer. setup.py reads them into the Setup; seq2seq.py turns a Setup into the head's FLOPs and memory."""

from __future__ import annotations

import functools
import string

from omegaconf import DictConfig

from xrobust.data.task import TaskSpec
from xrobust.plan.task_sizes import task_sizes

SEQ2SEQ = "seq2seq"
EOS = 1  # the end-of-sequence token every candidate is scored with


def decoder_shape(cfg: DictConfig) -> tuple[int, int, int, float]:
    """(candidates C, target tokens t, the template's own tokens, a choice's mean tokens) of a seq2seq job:
    tokenized with the tokenizer the planner measures data with (data.py: the model's own when local, else
    XLM-R's 250k-piece SentencePiece, the same granularity as mT5's); for a kind that ranks each item's own
    choices (multiple choice) they are the candidates, their length `task.sizes.choice_tokens` (null or missing:
    data.max_length, a bound)."""
    task = TaskSpec.from_config(cfg.task)
    template = task.prompt_template()
    literal = "".join(text for text, *_ in string.Formatter().parse(template.input))
    tokenizer = _tokenizer_path(cfg)
    prompt = _count(tokenizer, (literal,))[0]
    if task.task_kind.ranks_own_choices:
        sizes = task_sizes(task)
        mean = sizes.choice_tokens if sizes else None
        if mean is None:  # not measured: every bound at its largest (the encoder keeps the whole pair)
            return len(task.choice_fields), cfg.data.max_length + EOS, prompt, 0.0
        return len(task.choice_fields), round(mean) + EOS, prompt, mean
    strings = task.label_strings()
    return len(strings), max(_count(tokenizer, strings)) + EOS, prompt, 0.0


def _tokenizer_path(cfg: DictConfig) -> str:
    from xrobust.plan.data import tokenizer_for

    return tokenizer_for(cfg.model)[0]


def _count(tokenizer: str, texts: tuple[str, ...]) -> list[int]:
    """Pieces of each text, special tokens left out."""
    loaded = _tokenizer(tokenizer)
    return [len(loaded(text, add_special_tokens=False)["input_ids"]) for text in texts]


@functools.cache
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
