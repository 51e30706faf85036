"""The typed schemas of the groups users edit most (task, data, eval, optim; noise, callbacks and the root in
noise_schemas.py, callback_schemas.py, root_schema.py), all registered in Hydra's ConfigStore here: an override of
the wrong type or a misspelled key fails at composition, and each field's range is said once, beside its type.

conf/<group>/... lists the schema first in its `defaults` (Hydra's structured-config schema pattern); the optim
node of conf/train.yaml is typed after `_self_`, so its keys keep their place. A MISSING value is the YAML's to give:
the values live in the YAML files, the task's defaults (which conf/task/base/task.yaml does not repeat) here.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from xrobust.config.callback_schemas import CALLBACK_SCHEMAS
from xrobust.config.fields import Number, ranged, typed
from xrobust.config.noise_schemas import NOISE_SCHEMAS
from xrobust.config.root_schema import ROOT_OPTIONAL, PlanRootConfig, RootConfig
from xrobust.diagnostics.config import AlignmentConfig, CertifyConfig, SubstitutionConfig, drop_disabled

# The Parquet layout of the Hub's datasets: <config>/<split>-00000-of-00001.parquet (more shards for big splits).
HUB_DATA_FILES = "{config}/{split}-*.parquet"


@dataclass
class TaskConfig:
    """A task (conf/task/<name>.yaml): what TaskSpec (xrobust/data/task.py) is built from; the one place of every
    default a task file need not spell."""

    name: str = MISSING
    # A module of xrobust/kinds/: pair or multiple_choice.
    kind: str = MISSING
    # Shipped inside the package (xrobust/data/<name>), read offline.
    packaged: bool = False
    # A Hub dataset id (namespace/name) or a local folder in the same layout; hub_config and hub_data_files may
    # name {lang}, {config}, {split}.
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)
    # The Hub commit (or branch, tag) to load; null loads the newest (results.json records which commit that was).
    revision: str | None = None
    # Which files of the repo hold one split: only those are downloaded and prepared (null: this default).
    hub_data_files: str | None = HUB_DATA_FILES
    text_fields: list[str] = field(default_factory=lambda: ["premise", "hypothesis"])
    label_names: list[str] = MISSING
    # Other spellings of a label in the data, mapped onto label_names.
    label_aliases: dict[str, str] = field(default_factory=dict)
    source_language: str = "en"
    # False when the task has no source-language test set (XCOPA, AmericasNLI): then it is not in `languages`.
    source_tested: bool = True
    languages: list[str] = MISSING
    # The file format of data.local_dir folders: tsv or jsonl.
    local_format: str = "tsv"
    # The text-to-text head (model.head=seq2seq; xrobust/data/templates.py). verbalizer: the string each label is
    # scored as, one per label_names entry, in order (null: the label names; multiple choice scores its choices).
    verbalizer: list[str] | None = None
    # name -> {input: a format string over the row's fields, verbalizer, language} (or just the input string).
    templates: dict[str, Any] = field(default_factory=dict)
    # The template a run formats every row with: mt5, the mT5 paper's fine-tuning format.
    template: str = "mt5"
    # What only some tasks have. English data from another Hub dataset ({id, config, splits, revision}).
    source_hub: dict[str, Any] | None = None
    # Multiple choice: the context is text_fields[0] (plus the question's prompt), each choice one candidate.
    choice_fields: list[str] = field(default_factory=list)
    question_field: str | None = None
    question_prompts: dict[str, str] = field(default_factory=dict)
    # A glob for the English training files when they are several, e.g. XCOPA's train-en-from-*.jsonl.
    local_train_files: str | None = None
    # A Hub task's splits as xrobust-plan plans them: examples and mean tokens (xrobust/plan/data.py checks them).
    sizes: dict[str, Any] | None = None


# The task fields after `template`: a task without them composes to their defaults, which config_hash leaves out,
# so a job finished before they were typed keeps its hash.
TASK_OPTIONAL = ("source_hub", "choice_fields", "question_field", "question_prompts", "local_train_files", "sizes")


@dataclass
class DataConfig:
    """conf/data/default.yaml: the TransferDataModule's arguments."""

    _target_: str = MISSING
    local_dir: str | None = MISSING
    train_split: str = MISSING
    dev_split: str = MISSING
    test_split: str = MISSING
    val_fraction: Number = ranged("in (0, 1)", lambda v: 0 < v < 1)
    heldout: bool = MISSING
    max_length: int = ranged(">= 8", lambda v: v >= 8)
    batch_size: int = ranged(">= 1", lambda v: v >= 1)
    eval_batch_size: int = ranged(">= 1", lambda v: v >= 1)
    group_by_length: bool = MISSING
    length_group_batches: int = ranged(">= 1", lambda v: v >= 1)
    sort_eval_by_length: bool = MISSING
    packing: bool = MISSING
    num_workers: int = ranged(">= 0", lambda v: v >= 0)
    cache_dir: str = MISSING
    seed: int = MISSING
    trust_remote_code: bool = MISSING
    generalized_languages: list[str] | None = MISSING
    generalized: bool = MISSING
    head: str = MISSING
    with_test_sets: bool = MISSING


@dataclass
class PerturbationConfig:
    """eval.perturbation: the test-time noise on the input embeddings."""

    norm: str = MISSING
    eps_scale: str = MISSING
    eps: Number = ranged(">= 0", lambda v: v >= 0)
    seed: int = MISSING


@dataclass
class EvalConfig:
    """conf/eval/default.yaml: what the test loop measures besides per-language accuracy."""

    save_predictions: bool = MISSING
    test_last: bool = MISSING
    generalized: bool = MISSING
    generalized_languages: list[str] | None = MISSING
    perturbed: bool = MISSING
    perturbation: PerturbationConfig = field(default_factory=PerturbationConfig)
    # The read-outs of issue #32 (xrobust/diagnostics/), each off by default; at most this many items per language.
    diagnostics_items: int | None = None
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    certify: CertifyConfig = field(default_factory=CertifyConfig)
    substitution: SubstitutionConfig = field(default_factory=SubstitutionConfig)


@dataclass
class OptimConfig:
    """conf/train.yaml's optim: the learning rate and what the optimizer and its schedule are called with."""

    lr: Number = ranged("> 0", lambda v: v > 0)
    lr_scale: Number = ranged("> 0", lambda v: v > 0)
    weight_decay: Number = ranged(">= 0", lambda v: v >= 0)
    warmup_ratio: Number = ranged("in [0, 1)", lambda v: 0 <= v < 1)
    freeze_embeddings: bool = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING


# Where each schema types the composed config, and the ConfigStore entry (group, name) the YAML lists.
SCHEMAS: dict[str, type] = {"task": TaskConfig, "data": DataConfig, "eval": EvalConfig, "optim": OptimConfig}
STORED = (
    ("task/base", "task_schema", TaskConfig),
    ("data", "data_schema", DataConfig),
    ("eval", "eval_schema", EvalConfig),
    *(("noise/schema", name, schema) for name, schema in NOISE_SCHEMAS.items()),
    *(("callbacks/schema", name, schema) for name, schema in CALLBACK_SCHEMAS.items()),
    (None, "optim_schema", OptimConfig),
    (None, "root_schema", RootConfig),
    (None, "plan_root_schema", PlanRootConfig),
)


def register(store: ConfigStore) -> None:
    """Put the schemas where conf/ names them: task/base/task_schema, data/data_schema, eval/eval_schema,
    noise/schema/<name>, callbacks/schema/<callback> and the root's optim_schema, root_schema and
    plan_root_schema."""
    for group, name, schema in STORED:
        store.store(group=group, name=name, node=schema)


def hints(schema: type) -> dict[str, Any]:
    """A schema's field annotations, Number read as float (a number's kind in an error line)."""
    return {name: float if hint == Number else hint for name, hint in typing.get_type_hints(schema).items()}


def check_ranges(cfg: DictConfig) -> None:
    """Every ranged field of the schemas, resolved: `optim.lr=0`, `optim.lr=inf`, `data.val_fraction=1.5`, `seed=abc`
    in a config read back untyped get the one line `invalid config: <key>=<value> (must be ...)`."""
    found = _ranged(RootConfig, "") + [row for name, schema in SCHEMAS.items() for row in _ranged(schema, f"{name}.")]
    for key, hint, spec in found:
        typed(OmegaConf.select(cfg, key, throw_on_missing=False), key, hint, spec.metadata["rule"], spec.metadata["ok"])


def _ranged(schema: type, prefix: str) -> list[tuple[str, type, dataclasses.Field]]:
    found = []
    annotations = hints(schema)
    for spec in dataclasses.fields(schema):
        key = prefix + spec.name
        if "rule" in spec.metadata:
            found.append((key, annotations[spec.name], spec))
        elif dataclasses.is_dataclass(annotations[spec.name]):
            found.extend(_ranged(annotations[spec.name], f"{key}."))
    return found


def drop_unset_optional(resolved: dict[str, Any]) -> None:
    """Leave out of a resolved config the optional task fields a task does not set (TASK_OPTIONAL at their
    defaults), under `task` and `intermediate.task`, and the optional root keys that are null (ROOT_OPTIONAL)."""
    for name in ROOT_OPTIONAL:
        if name in resolved and resolved[name] is None:
            del resolved[name]
    drop_disabled(resolved)  # likewise the read-outs that are off (xrobust/diagnostics/config.py)
    defaults = OmegaConf.to_container(OmegaConf.structured(TaskConfig))
    for task in (resolved.get("task"), (resolved.get("intermediate") or {}).get("task")):
        if isinstance(task, dict):
            for name in TASK_OPTIONAL:
                if name in task and task[name] == defaults[name]:
                    del task[name]


register(ConfigStore.instance())
