"""`python -m xrobust.eval [overrides]` (xrobust-eval): test without training, as lightning-hydra-template's eval.py.

Without ckpt_path it tests the model as loaded: `xrobust.train finetune=none` (conf/evaluate.yaml), e.g. mT0's
prompted zero-shot rank classification. With `ckpt_path=<a finished job's folder, or a checkpoint in its
checkpoints/>` it tests that job's kept weights under the job's own config (its .hydra/config.yaml), changed only by
this command's key overrides (task.template=..., eval.perturbed=true, ...). Either way the results go to this run's
new folder, written as a training job writes them; results.json names the tested weights (`tested_weights`).
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from xrobust.config.checks import CONF_DIR, NO_TRAINING
from xrobust.config.composition import schema_errors
from xrobust.diagnostics.config import add_missing
from xrobust.errors import XrobustError
from xrobust.lightning.checkpoint_io import CRASH_CHECKPOINT
from xrobust.run.results import RESULTS_FILE
from xrobust.run.saved_config import JOB_CONFIG, saved_config
from xrobust.run.stages import STAGE_FILE
from xrobust.train import guarded, run, selection_metric

CHECKPOINTS = "checkpoints"
# Keys of this command that are not the tested job's settings.
OWN_KEYS = ("ckpt_path",)


def eval_subdir(ckpt_path: str | None, job_num: int, as_loaded: str) -> str:
    """A sweep job's folder name (conf/evaluate.yaml): the tested job's folder name and this job's number, or for a
    model as loaded `as_loaded` (model, noise, task, template, seed)."""
    if ckpt_path is None:
        return as_loaded
    path = Path(str(ckpt_path))
    job = path if path.is_dir() and (path / JOB_CONFIG).is_file() else path.parent.parent
    return f"{job.name}_{job_num}"


# Registered on import, before Hydra composes conf/evaluate.yaml (hydra.main runs after this module is loaded).
if not OmegaConf.has_resolver("xrobust.eval_subdir"):
    OmegaConf.register_new_resolver("xrobust.eval_subdir", eval_subdir)


def locate(ckpt_path: str) -> tuple[Path, Path | None]:
    """The job folder `ckpt_path` names and the checkpoint it names, if it names one."""
    path = Path(ckpt_path).expanduser()
    if (path / JOB_CONFIG).is_file():
        return path.resolve(), None
    job_dir = path.parent.parent
    if path.exists() and path.parent.name == CHECKPOINTS and (job_dir / JOB_CONFIG).is_file():
        return job_dir.resolve(), path.resolve()
    raise XrobustError(
        f"invalid config: ckpt_path={ckpt_path!r} (must be a finished job's folder, holding {JOB_CONFIG}, or a "
        f"checkpoint in its {CHECKPOINTS}/ folder)"
    )


def kept_weights(job_dir: Path) -> Path:
    """The selected checkpoint a finished job kept (checkpoint.keep_after_success): its one checkpoint that is
    neither last*.ckpt nor the crash checkpoint."""
    if not (job_dir / RESULTS_FILE).is_file():
        raise XrobustError(
            f"invalid config: ckpt_path={str(job_dir)!r} has no {RESULTS_FILE}: not a finished job (name one of its "
            f"{CHECKPOINTS}/ files to test it anyway)"
        )
    folder = job_dir / CHECKPOINTS
    found = sorted(
        path
        for path in folder.glob("*.ckpt")
        if not path.name.startswith("last") and path.stem != Path(CRASH_CHECKPOINT).stem
    )
    if len(found) != 1:
        what = ", ".join(path.name for path in found) if found else "none (checkpoint.keep_after_success=none?)"
        raise XrobustError(
            f"invalid config: ckpt_path={str(job_dir)!r}: expected one kept checkpoint in {folder}, found {what}; "
            "name the checkpoint file instead"
        )
    return found[0]


def job_config(job_dir: Path, overrides: list[str]) -> DictConfig:
    """The job's own config with this command's key overrides applied as Hydra applies them (`key=value`,
    `+key=value`, `~key`). A config group choice (`trainer=gpu`) would compose another config than the job ran:
    refused, naming it."""
    cfg = saved_config(job_dir)
    add_missing(cfg)  # a job from before the read-outs: eval.alignment.enabled=true sets a key that is there
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in OWN_KEYS or key.split("/")[0].split(".")[0] == "hydra":
            continue
        text = override.input_line
        if override.package is not None or Path(CONF_DIR, *key.split("/")).is_dir():
            raise XrobustError(
                f"invalid config: {text} picks a config group, but ckpt_path={str(job_dir)!r} is tested with the "
                "job's own config: set its keys instead (e.g. trainer.accelerator=gpu)"
            )
        present = OmegaConf.select(cfg, key, default=KeyError) is not KeyError
        if override.is_delete():
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            if not present:
                raise XrobustError(f"invalid config: {text}: the job's config has no {key}")
            parent.pop(leaf)
        elif override.is_add() or present:
            OmegaConf.update(cfg, key, override.value(), merge=False, force_add=True)
        else:
            raise XrobustError(f"invalid config: {text}: the job's config has no {key} (+{key}=... adds a key)")
    cfg.ckpt_path = None  # the weights come from the job, never a resume
    if cfg.get("task_group") and (job_dir / RESULTS_FILE).is_file():
        # Its task list interpolates the job's own sweep (${hydra:sweeper.params.task}): the job resolved it.
        cfg.task_group = json.loads((job_dir / RESULTS_FILE).read_text(encoding="utf-8")).get("task_group")
    if cfg.get("intermediate"):
        from_stage(cfg, job_dir)
    OmegaConf.set_struct(cfg, True)  # as Hydra composes it
    return cfg


def from_stage(cfg: DictConfig, job_dir: Path) -> None:
    """A job with an intermediate stage built its model from the encoder the stage handed on, kept in its folder:
    the test builds it from there too instead of fitting the stage again (the task keeps the job's label)."""
    name = str(cfg.intermediate.name)
    encoder = job_dir / "stages" / name / "encoder"
    if not (encoder / STAGE_FILE).is_file():
        raise XrobustError(f"invalid config: intermediate={name}: {encoder} holds no finished stage to build from")
    cfg.task_label = str(cfg.task_label)
    cfg.model.pretrained = str(encoder)
    cfg.model.embedded = None
    cfg.intermediate = None


def evaluate(cfg: DictConfig) -> float | None:
    """Test the model as loaded (no ckpt_path), or a finished job's kept weights into this run's folder."""
    if cfg.ckpt_path is None:
        method = cfg.finetune.get("method")
        if method != NO_TRAINING:
            raise XrobustError(
                f"invalid config: finetune.method={method!r}: xrobust-eval trains nothing (finetune=none); "
                "fine-tune with xrobust-train, then test its weights here with ckpt_path=<job folder>"
            )
        return selection_metric(cfg, run(cfg))
    job_dir, checkpoint = locate(str(cfg.ckpt_path))
    here = Path(cfg.paths.output_dir).resolve()
    if here == job_dir:
        raise XrobustError(f"invalid config: hydra.run.dir={str(here)!r} is the tested job's own folder: use a new one")
    overrides = list(HydraConfig.get().overrides.task)
    tested = job_config(job_dir, overrides)
    if checkpoint is None and tested.finetune.get("method") != NO_TRAINING:
        checkpoint = kept_weights(job_dir)
    weights = {"job": str(job_dir), "checkpoint": str(checkpoint) if checkpoint else None}
    return selection_metric(tested, run(tested, weights))


@schema_errors
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    return guarded(cfg, lambda: evaluate(cfg))


if __name__ == "__main__":
    main()
