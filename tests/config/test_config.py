"""Every option of every config group composes, and the trainer group exposes every Trainer argument."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import pytorch_lightning as pl
import torch
from helpers import CONF_DIR, compose_config
from omegaconf import OmegaConf

from xrobust.config.checks import validate
from xrobust.config.schemas import TaskConfig
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.run.hashing import config_hash

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra",))


# Options valid only beside others: finetune=none tests a model as loaded, which needs the text-to-text head.
COMPANIONS = {"finetune=none": ["model=mt0-large", "model.head=seq2seq"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("override", [f"{group}={option}" for group in GROUPS for option in options(group)], ids=str)
def test_every_group_option_composes_and_resolves(override, tmp_path):
    cfg = compose_config([override, *COMPANIONS.get(override, [])], output_dir=tmp_path)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["model"]["name"]
    assert container["task"]["name"]
    # Every ??? of a base config (conf/<group>/base/) is filled by the option that inherits it.
    assert {key for key in OmegaConf.missing_keys(cfg) if not key.startswith("hydra.")} == set()
    validate(cfg)


def test_default_is_the_embedded_model_on_the_packaged_sample(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert cfg.model.name == "me5-small" and cfg.model.embedded == "me5-small"
    assert cfg.task.name == "sample" and cfg.task.packaged
    assert cfg.data.local_dir is None


def test_trainer_config_lists_every_lightning_trainer_argument(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    arguments = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "callbacks", "logger"}
    assert arguments <= set(cfg.trainer.keys())


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=-1e-5", "optim.lr"),
        ("data.val_fraction=1.5", "data.val_fraction"),
        ("data.batch_size=0", "data.batch_size"),
        ("data.test_split=train", "data.test_split"),
        ("task.source_language=xx", "task.source_language"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(override, field, tmp_path):
    cfg = compose_config([override], output_dir=tmp_path)
    with pytest.raises(XrobustError, match=field.replace(".", r"\.")):
        validate(cfg)


def test_the_task_schema_is_the_one_place_of_the_task_defaults():
    """TaskConfig (xrobust/config/schemas.py) holds the task defaults and TaskSpec takes its fields; the base task
    config only names the schema, so no default is spelled twice."""
    base = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / "base" / "task.yaml"))
    assert base == {"defaults": ["task_schema@_here_", "_self_"]}
    assert [f.name for f in dataclasses.fields(TaskSpec)] == [f.name for f in dataclasses.fields(TaskConfig)]
    schema = OmegaConf.to_container(OmegaConf.structured(TaskConfig))
    given = {key: value for key, value in schema.items() if value != "???"}
    # A task file keeps only what differs from them.
    for path in sorted((CONF_DIR / "task").glob("*.yaml")):
        own = OmegaConf.to_container(OmegaConf.load(path))
        assert own.pop("defaults") == ["base/task@_here_", "_self_"], path.name
        assert [key for key, value in own.items() if given.get(key, object()) == value] == [], path.name


def test_a_typed_number_composes_as_it_was_given():
    """A sweep's optim.lr_scale=0.5,1,2 keeps 1 and 2 integers, so the schema changes no job's config hash."""
    cfg = compose_config(["optim.lr_scale=2", "data.val_fraction=0.2"])
    assert type(cfg.optim.lr_scale) is int and type(cfg.data.val_fraction) is float


@pytest.mark.parametrize("model", options("model"))
def test_every_model_names_its_family(model):
    family = {"me5": "me5-small", "xlmr": "xlmr-", "mt0": "mt0-", "mt5": "mt5-", "mdeberta": "mdeberta-"}
    cfg = compose_config([f"model={model}"])
    assert model.startswith(family[cfg.model.family])


def test_a_task_group_lists_its_tasks_once():
    """task_group.tasks reads the sweep's task list, so the group score and the sweep cannot disagree."""
    for group, tasks in [("robust_xlt", ["xnli", "pawsx"]), ("xtreme_r_classification", ["xnli", "xcopa"])]:
        cfg = compose_config([f"task_group={group}"])
        assert cfg.hydra.sweeper.params.task == ",".join(tasks)
        assert list(cfg.task_group.tasks) == tasks
        OmegaConf.resolve(cfg.task_group)  # in place, as `--cfg job --resolve` does
        assert list(cfg.task_group.tasks) == tasks
        raw = str(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task_group" / f"{group}.yaml")))
        assert all(raw.count(task) == 1 for task in tasks), raw


def test_a_bad_perturbation_scale_is_refused_at_start_up():
    cfg = compose_config(["eval.perturbation.eps_scale=percent"])
    with pytest.raises(XrobustError, match=r"eval.perturbation.eps_scale='percent' \(must be relative or absolute\)"):
        validate(cfg)


def test_the_default_precision_is_bf16_where_the_cpu_has_it():
    """trainer/cpu.yaml resolves to bf16-mixed on a CPU with AVX-512 BF16 or AMX (read here from the kernel's own
    flags), to 32-true elsewhere; a command-line value still wins, and trainer=gpu gets bf16-mixed off-GPU."""
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    native = "avx512_bf16" in flags or "amx_tile" in flags
    assert compose_config([]).trainer.precision == ("bf16-mixed" if native else "32-true")
    assert compose_config(["trainer.precision=32-true"]).trainer.precision == "32-true"
    if not torch.cuda.is_available():  # planning a GPU job on a login node
        assert compose_config(["trainer=gpu"]).trainer.precision == "bf16-mixed"


def test_the_config_hash_is_the_runs_meaning_not_its_folder(tmp_path):
    """Callbacks' dirpath, the logger's save_dir and the caches name the run folder: none of them is hashed."""
    first = config_hash(compose_config(["logger=csv"], output_dir=tmp_path / "a"))
    assert config_hash(compose_config(["logger=csv"], output_dir=tmp_path / "elsewhere" / "b")) == first
    assert config_hash(compose_config(["logger=csv", "paths.cache_dir=/other/cache"], output_dir=tmp_path)) == first
    assert config_hash(compose_config(["logger=csv", "optim.lr=1e-4"], output_dir=tmp_path / "a")) != first
