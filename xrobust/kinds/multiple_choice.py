"""Multiple choice (XCOPA, SIQA): a context, an optional question turned into a prompt (XCOPA's cause/effect through
task.question_prompts; a question the mapping lacks, like SIQA's free-text ones, is appended as written), one
candidate per choice field; the label is the index of the right choice. Each choice is scored as the pair
(context + prompt, choice)."""

from __future__ import annotations

from typing import Any

import torch

from xrobust.errors import XrobustError
from xrobust.kinds.base import TaskKind, tokenize_with_lengths


class MultipleChoiceKind(TaskKind):
    name = "multiple_choice"
    auto_model_class = "AutoModelForMultipleChoice"
    ranks_own_choices = True  # the text-to-text head ranks each row's own choices

    def validate(self, spec, where: str) -> None:
        choices = spec.choice_fields
        if len(choices) < 2 or len(spec.label_names) != len(choices):
            raise XrobustError(
                f"{where}: a multiple-choice task needs >= 2 task.choice_fields and one label name per choice"
            )
        if spec.text_fields[0] in choices or any(c not in spec.text_fields for c in choices):
            raise XrobustError(f"{where}: task.text_fields must be the context field followed by the choices")
        verbalizers = {"task.verbalizer": spec.verbalizer}
        verbalizers |= {f"task.templates.{name}.verbalizer": t.verbalizer for name, t in spec.templates.items()}
        for key, verbalizer in verbalizers.items():
            if verbalizer is not None:
                raise XrobustError(
                    f"{where}: {key} must be null: a multiple-choice task scores the text of each choice "
                    f"({', '.join(spec.choice_fields)})"
                )

    def encode(self, batch: dict, tokenizer, task, max_length: int) -> dict:
        """One (context + question prompt, choice) pair per choice, as nested lists (example -> choice -> ids)
        that `ChoiceCollator` pads into (batch, choices, length) tensors."""
        n_choices = len(task.choice_fields)
        contexts = []
        for i, context in enumerate(batch[task.text_fields[0]]):
            question = batch[task.question_field][i] if task.question_field else ""
            prompt = task.question_prompts.get(question, question)
            contexts.append(f"{context} {prompt}".strip())
        firsts = [context for context in contexts for _ in range(n_choices)]
        seconds = [batch[field][i] for i in range(len(contexts)) for field in task.choice_fields]
        flat, full_lengths = tokenize_with_lengths(tokenizer, firsts, seconds, max_length)
        starts = range(0, len(firsts), n_choices)
        encoded = {key: [values[i : i + n_choices] for i in starts] for key, values in flat.items()}
        encoded["truncated"] = [any(n > max_length for n in full_lengths[i : i + n_choices]) for i in starts]
        encoded["labels"] = batch["label"]
        return encoded

    def collator(self, tokenizer):
        return ChoiceCollator(tokenizer)

    def sequences_per_example(self, task) -> int:
        """Every choice is one (context, choice) sequence."""
        return len(task.choice_fields)

    def encoder_head(self, encoder, labels: dict[str, Any]):
        from xrobust.models.heads import EncoderClassifier, EncoderMultipleChoice

        return EncoderMultipleChoice(EncoderClassifier(encoder, num_labels=1))


class ChoiceCollator:
    """`DataCollatorForMultipleChoice` pads (batch, choices, length); it would try to split the scalar id."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorForMultipleChoice

        self.pad = DataCollatorForMultipleChoice(tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [feature["id"] for feature in features] if features and "id" in features[0] else None
        batch = self.pad([{k: v for k, v in feature.items() if k != "id"} for feature in features])
        if ids is not None:
            batch["id"] = torch.as_tensor(ids)
        return batch


KIND = MultipleChoiceKind()
