"""The Hugging Face `Trainer` paths of the benchmarks: as a user writes it, tuned with every speed flag it has,
and padded to max length (the XTREME / Robust-XLT recipe).

- `hf`: `Trainer` + `DataCollatorWithPadding`, otherwise its defaults (fp32, shuffled batches, every parameter
  trained, evaluation sets in file order).
- `hf_tuned`: the same with each lever the Trainer offers for this job turned on: `bf16=True` when the spec's
  precision is bf16-mixed, `train_sampling_strategy="group_by_length"`, the input-embedding matrix frozen,
  `optim="adamw_torch_fused"` (its default on torch >= 2.8, named), and every evaluation set sorted by length.
- `pad128`: `hf` with every pair padded to `max_length`.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from benchmarks.measure import PaddingMeter, Spec, evaluation_figures, load_task, target_rows, training_figures

# The tuned path's flags, as the table names them.
TUNED_FLAGS = (
    'bf16=True (with bf16-mixed), train_sampling_strategy="group_by_length", optim="adamw_torch_fused", '
    "input embeddings frozen, evaluation sets sorted by length"
)


def longest_first(encoded) -> list[int]:
    """Row order of an encoded set, longest first (stable: equal lengths keep file order)."""
    lengths = [len(ids) for ids in encoded["input_ids"]]
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def run_hf(spec: Spec) -> dict:
    """Train `spec.steps` steps (or `spec.epochs` epochs) with the Trainer, then predict every target set."""
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    from xrobust.models.embedded import ensure_embedded_model

    pad, tuned = spec.path == "pad128", spec.path == "hf_tuned"
    task, source = load_task(spec)
    model_dir = spec.model_dir or str(ensure_embedded_model("me5-small"))
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def prepare(rows):
        def encode(batch):
            texts = [batch[f] for f in task.text_fields]
            padding = "max_length" if pad else False
            encoded = tokenizer(*texts, truncation=True, max_length=spec.max_length, padding=padding)
            return encoded | {"labels": batch["label"]}

        return rows.map(encode, batched=True, remove_columns=rows.column_names)

    train = prepare(source.load("train", task.source_language))
    targets = target_rows(spec, task, source)
    eval_sets = {lang: prepare(rows) for lang, rows in targets.items()}
    if tuned:
        orders = {lang: longest_first(rows) for lang, rows in eval_sets.items()}
        eval_sets = {lang: rows.select(orders[lang]) for lang, rows in eval_sets.items()}
        targets = {lang: rows.select(orders[lang]) for lang, rows in targets.items()}
    prep_s = time.perf_counter() - started
    collate = PaddingMeter(default_data_collator if pad else DataCollatorWithPadding(tokenizer))

    transformers.set_seed(spec.seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(task.label_names))
    if tuned:
        model.get_input_embeddings().weight.requires_grad_(False)
    steps = spec.epochs * -(-len(train) // spec.batch_size) if spec.epochs else spec.steps
    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    tuned_flags = {
        "bf16": spec.precision == "bf16-mixed",
        "train_sampling_strategy": "group_by_length",
        "optim": "adamw_torch_fused",
    }
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            learning_rate=spec.lr,
            weight_decay=spec.weight_decay,
            warmup_steps=int(spec.warmup_ratio * steps),
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            per_device_train_batch_size=spec.batch_size,
            per_device_eval_batch_size=spec.eval_batch_size,
            max_steps=max(steps, 1),
            seed=spec.seed,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            **(tuned_flags if tuned else {}),
        )
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate, callbacks=[StepClock()])
        result: dict = {
            "prep_s": prep_s,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        if steps:
            trainer.train()
            result |= training_figures(stamps, len(train), spec, collate)
        if spec.evaluate:
            # With group_by_length the Trainer also shuffles evaluation batches (its _get_eval_sampler), and
            # predict() returns them in that order: predictions would no longer line up with the rows.
            trainer.args.train_sampling_strategy = "random"
            collate.clear()
            started = time.perf_counter()
            logits = {lang: trainer.predict(rows).predictions for lang, rows in eval_sets.items()}
            seconds = time.perf_counter() - started
            predictions = {
                lang: dict(zip(targets[lang]["id"], logits[lang].argmax(-1).tolist(), strict=True)) for lang in logits
            }
            gold = {lang: dict(zip(rows["id"], rows["label"], strict=True)) for lang, rows in targets.items()}
            top2 = {lang: np.sort(x, axis=-1)[:, -2:] for lang, x in logits.items()}
            result |= evaluation_figures(predictions, gold, seconds, collate)
            result |= {
                "margins": {
                    lang: dict(zip(targets[lang]["id"], (t[:, 1] - t[:, 0]).tolist(), strict=True))
                    for lang, t in top2.items()
                },
            }
    return result
