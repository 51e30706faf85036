"""The reference a user would write instead of xrobust: the Hugging Face `Trainer` with dynamic padding.

Same model folder, same rows, same tokenizer and max length, same optimizer settings; English dev accuracy
selects the checkpoint (`load_best_model_at_end`), then every test language is evaluated zero-shot.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import datasets
import numpy as np
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)


@dataclass
class Settings:
    lr: float = 2e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 3
    max_length: int = 128
    seed: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    freeze_embeddings: bool = True
    bf16: bool = False
    group_by_length: bool = False  # the Trainer's train_sampling_strategy="group_by_length"


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def run_hf_trainer(
    model_dir: str,
    text_fields: tuple[str, str],
    num_labels: int,
    train_rows: datasets.Dataset,
    dev_rows: datasets.Dataset,
    test_sets: dict[str, datasets.Dataset],
    settings: Settings,
) -> dict[str, float]:
    """Fine-tune with `Trainer` and return accuracy per test language."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def encode(batch):
        encoded = tokenizer(*(batch[f] for f in text_fields), truncation=True, max_length=settings.max_length)
        encoded["labels"] = batch["label"]
        return encoded

    def prepare(rows: datasets.Dataset) -> datasets.Dataset:
        return rows.map(encode, batched=True, remove_columns=rows.column_names)

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)
    if settings.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    steps = -(-len(train_rows) // settings.batch_size) * settings.epochs
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            learning_rate=settings.lr,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.eval_batch_size,
            num_train_epochs=settings.epochs,
            warmup_steps=int(settings.warmup_ratio * steps),  # transformers 5 dropped warmup_ratio
            weight_decay=settings.weight_decay,
            max_grad_norm=settings.max_grad_norm,
            lr_scheduler_type="linear",
            seed=settings.seed,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_only_model=True,
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model="accuracy",
            logging_strategy="epoch",
            report_to=[],
            use_cpu=True,
            bf16=settings.bf16,
            train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=prepare(train_rows),
            eval_dataset=prepare(dev_rows),
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=accuracy,
        )
        trainer.train()
        return {
            lang: trainer.evaluate(prepare(rows), metric_key_prefix="test")["test_accuracy"]
            for lang, rows in test_sets.items()
        }
