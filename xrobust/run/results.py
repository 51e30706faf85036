"""What one run measured, from its finished job: results.json (its schema: xrobust/run/run_result.py) and
predictions.tsv, written atomically so a crash never leaves half a file (the config hash: xrobust/run/hashing.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from xrobust.atomic import atomic_write_text
from xrobust.run.predictions import predictions_tsv
from xrobust.run.run_result import RESULTS_FILE, ModelRecord, ModelSelection, RunResult

if TYPE_CHECKING:
    from xrobust.data.task import TaskSpec
    from xrobust.kinds.base import TaskKind
    from xrobust.run.job import Job

PREDICTIONS_FILE = "predictions.tsv"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_predictions(
    path: Path, predictions: dict[str, list[tuple]], perturbed: dict[str, list[tuple]] | None, kind: TaskKind
) -> None:
    """predictions.tsv (layout: xrobust.run.predictions): one row per test item in the task kind's columns; with
    eval.perturbed its predicted columns again, on the perturbed input."""
    atomic_write_text(path, predictions_tsv(predictions, perturbed, kind.prediction_columns))


def completed_results(run_dir: Path) -> RunResult | None:
    """The results of a finished run in this folder; None when there are none, or only a torn file (the job runs
    again). A file of a schema version this xrobust cannot read, or missing a field, is refused (XrobustError)."""
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return RunResult.from_dict(data, path)


def completed_hash(run_dir: Path) -> str | None:
    """The config hash of a finished run in this folder, or None when there is none."""
    result = completed_results(run_dir)
    return None if result is None else result.config_hash


def majority_class_accuracy(labels: list[int]) -> float:
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else 0.0


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def summarize_accuracy(
    accuracy: dict[str, float], source_language: str
) -> tuple[float | None, float | None, float | None]:
    """English accuracy, mean over target languages, and the transfer gap between them."""
    english = accuracy.get(source_language)
    targets = [acc for lang, acc in accuracy.items() if lang != source_language]
    target_mean = sum(targets) / len(targets) if targets else None
    gap = english - target_mean if english is not None and target_mean is not None else None
    return english, target_mean, gap


def format_table(results: dict[str, Any]) -> str:
    """The per-language table the main job prints at the end, in percent like every table of the report."""
    head = f"{results['task']} | {results['model']['name']} | noise={results['noise']['name']} | seed={results['seed']}"
    perturbed = results.get("perturbed_accuracy") or {}
    lines = [head, f"{'lang':<6}{'acc %':>8}{'n':>7}{'majority':>10}" + (f"{'perturbed':>11}" if perturbed else "")]
    for lang, acc in results["accuracy"].items():
        majority = results["majority_class_accuracy"][lang]
        line = f"{lang:<6}{100 * acc:>8.1f}{results['n_examples'][lang]:>7}{100 * majority:>10.1f}"
        lines.append(line + (f"{100 * perturbed[lang]:>11.1f}" if perturbed else ""))
    lines.append(f"{'targets mean':<13}{100 * results['target_mean']:.1f} (without {results['source_language']})")
    if results.get("all_language_mean") is not None:
        lines.append(f"{'all mean':<13}{100 * results['all_language_mean']:.1f} (every language, as XTREME averages)")
    if results["transfer_gap"] is not None:
        lines.append(f"{'transfer gap':<13}{100 * results['transfer_gap']:+.1f} points (English minus targets mean)")
    if results.get("generalized"):
        general = results["generalized"]
        languages = " x ".join(["/".join(general["languages"])] * 2)
        lines.append(f"generalized ({languages}): mean {100 * general['mean']:.1f}")
    return "\n".join(lines)


def early_stopped(trainer: Any) -> bool | None:
    """True when an EarlyStopping callback ended training, False when it let it run out, None without one."""
    callback = trainer.early_stopping_callback
    return None if callback is None else callback.stopped_epoch > 0


def stage_record(name: str, cfg: DictConfig, task: TaskSpec, job: Job, pretrained: str) -> dict[str, Any]:
    """One entry of results.json's `stages`: what a training stage started from and how long it trained."""
    return {
        "stage": name,
        "task": task.name,
        "noise": job.noise.params(),
        "data_source": cfg.data.local_dir or task.hub_id,
        "initialized_from": str(pretrained),
        "epochs_run": job.trainer.current_epoch,
        "steps_run": job.trainer.global_step,
    }


def contamination(cfg: DictConfig) -> bool:
    """Whether the result is not zero-shot: the model's training mixture (model.training_mixture, task names)
    holds the task, or the intermediate task trained on before it."""
    mixture = set(cfg.model.get("training_mixture") or ())
    tasks = {cfg.task.name} | ({cfg.intermediate.task.name} if cfg.get("intermediate") else set())
    return bool(mixture & tasks)


def prompt_template(cfg: DictConfig, task: TaskSpec) -> dict[str, Any] | None:
    """The text-to-text head's prompt: task.template's name, its input text, the label strings (None: a
    multiple-choice row ranks its own choices) and its language (None: English); None for a classifier head."""
    if cfg.model.get("head") != "seq2seq":
        return None
    template = task.prompt_template()
    verbalizer = None if task.task_kind.ranks_own_choices else list(task.label_strings())
    return {"name": template.name, "input": template.input, "verbalizer": verbalizer, "language": template.language}


def collect_results(
    cfg: DictConfig, task: TaskSpec, job: Job, digest: str, wall_time_s: dict[str, float], stages: list[dict]
) -> RunResult:
    """results.json of a tested job, from its module's test results and its data module's test sets."""
    module, datamodule, trainer = job.module, job.datamodule, job.trainer
    kind = task.task_kind
    headline = kind.metrics[0]  # results.json `accuracy`, which the report tables
    standard = {lang: r for lang, r in module.test_results.items() if lang in task.languages}
    accuracy = {lang: r[headline] for lang, r in standard.items()}
    english, target_mean, gap = summarize_accuracy(accuracy, task.source_language)
    result = RunResult(
        config_hash=digest,
        task=task.name,
        task_label=cfg.task_label,
        task_kind=task.kind,
        task_group=OmegaConf.to_container(cfg.task_group, resolve=True) if cfg.task_group else None,
        model=ModelRecord(
            name=cfg.model.name,
            family=cfg.model.get("family"),
            pretrained=str(cfg.model.pretrained),
            num_parameters=module.num_parameters,
            trainable_parameters=module.trainable_parameters,
            non_embedding_parameters=getattr(module, "non_embedding_parameters", None),
        ),
        contamination=contamination(cfg),
        prompt_template=prompt_template(cfg, task),
        noise=job.noise.params(),
        seed=cfg.seed,
        # trainer.precision as resolved on this machine (conf/trainer/cpu.yaml: bf16-mixed where bf16 is native)
        precision=str(cfg.trainer.precision),
        source_language=task.source_language,
        data_source=datamodule.source_description,
        data_provenance=datamodule.data_provenance,
        # None, or whether a resumed fit took an uninterrupted run's batches, and why not (xrobust/data/resumable.py)
        resume=datamodule.resume,
        model_selection=ModelSelection(
            on=datamodule.selection_source,
            best_val_acc=job.best_val_acc,
            epochs_run=trainer.current_epoch,
            steps_run=trainer.global_step,
            early_stopped=job.early_stopped,
        ),
        accuracy=accuracy,
        metrics=kind_metrics(kind, standard),
        n_examples={lang: r["n"] for lang, r in standard.items()},
        majority_class_accuracy={
            lang: majority_class_accuracy(datamodule.test_sets[lang].with_format(None)["labels"]) for lang in standard
        },
        english_accuracy=english,
        # Both averages: over the target languages (zero-shot transfer), and over every language with the source
        # (the XTREME / XTREME-R convention, as the mT5 and XLM-R papers report XNLI).
        target_mean=target_mean,
        all_language_mean=sum(accuracy.values()) / len(accuracy) if accuracy else None,
        transfer_gap=gap,
        truncated_examples=datamodule.truncation_counts(),
        git_sha=git_sha(),
        predictions_file=PREDICTIONS_FILE if cfg.eval.save_predictions else None,
        config=OmegaConf.to_container(cfg, resolve=True),
        wall_time_s=wall_time_s,
        stages=stages,
    )
    if job.last_epoch_results is not None:
        last = {lang: job.last_epoch_results[lang][headline] for lang in standard}
        result.last_epoch_accuracy = last
        result.last_epoch_target_mean = summarize_accuracy(last, task.source_language)[1]
    extra = datamodule.extra_tests  # the kind's test sets beside the per-language ones, under their own field
    if extra is not None:
        result = dataclasses.replace(result, **{extra.result_field: extra.summary(module.test_results, headline)})
    if module.test_perturbation is not None:
        perturbed = {lang: r[f"perturbed_{headline}"] for lang, r in standard.items()}
        result.perturbation = dict(module.test_perturbation)
        result.perturbed_accuracy = perturbed
        result.perturbed_target_mean = summarize_accuracy(perturbed, task.source_language)[1]
    return result


def kind_metrics(kind: TaskKind, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]] | None:
    """results.json `metrics`: each of the kind's metrics per test set, when it scores more than the accuracy that
    results.json's `accuracy` holds (None: left out of the file)."""
    if kind.metrics == ("accuracy",):
        return None
    return {metric: {name: result[metric] for name, result in results.items()} for metric in kind.metrics}
