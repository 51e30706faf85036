"""The read-outs' settings, typed: `eval.alignment`, `eval.certify`, `eval.substitution` in conf/eval/default.yaml
(EvalConfig in xrobust/config/schemas.py holds one of each). Each starts with `enabled`, off by default, so a job
that asks for none of them composes, hashes and runs as it did before they existed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from xrobust.config.fields import require

# eval.<name> of each read-out, in the order results.json's `diagnostics` lists them.
READOUTS = ("alignment", "certify", "substitution")
# The shared cap on items per language (null: every test item), read by the costlier read-outs.
ITEMS_KEY = "diagnostics_items"


@dataclass
class AlignmentConfig:
    """eval.alignment: English vs each target language on the parallel test sets (diagnostics/alignment.py)."""

    enabled: bool = False
    # Hidden-state layers read out: 0 is the embedding output, L the last layer (null: 0, the middle and L).
    layers: list[int] | None = None
    # Items per forward pass (null: data.eval_batch_size).
    batch_size: int | None = None
    # Seeds the random pairs that translation pairs are compared with.
    seed: int = 0


@dataclass
class CertifyConfig:
    """eval.certify: certified accuracy of the embedding-smoothed classifier (diagnostics/certify.py)."""

    enabled: bool = False
    n0: int = field(default=10, metadata={"rule": ">= 1", "ok": lambda v: v >= 1})  # draws that pick the class
    n: int = field(default=100, metadata={"rule": ">= 1", "ok": lambda v: v >= 1})  # draws that bound its rate
    alpha: float = field(default=0.001, metadata={"rule": "in (0, 0.5)", "ok": lambda v: 0 < v < 0.5})
    # Relative to the model's median token-embedding L2 norm (results.json records them absolute too).
    radii: list[float] = field(default_factory=lambda: [0.0, 0.005, 0.01, 0.02])
    batch: int = field(default=100, metadata={"rule": ">= 1", "ok": lambda v: v >= 1})  # noisy copies a forward


@dataclass
class SubstitutionConfig:
    """eval.substitution: accuracy under random word substitution in the target language
    (diagnostics/substitution.py)."""

    enabled: bool = False
    # Each word that has neighbours is replaced with this probability (0: the clean text).
    rate: float = field(default=0.5, metadata={"rule": "in [0, 1]", "ok": lambda v: 0 <= v <= 1})
    seed: int = 0
    # embedding: the tested model's nearest whole words (code_switch's source); file: rs_da's synonym file.
    source: str = "embedding"
    path: str | None = None  # the file source's JSON (null: Robust-XLT's, downloaded once into cache_dir)
    k: int = field(default=8, metadata={"rule": ">= 1", "ok": lambda v: v >= 1})
    cache_dir: str | None = None
    chunk_size: int = field(default=512, metadata={"rule": ">= 1", "ok": lambda v: v >= 1})


SCHEMAS = {"alignment": AlignmentConfig, "certify": CertifyConfig, "substitution": SubstitutionConfig}


def enabled(eval_cfg: Any, name: str) -> bool:
    """Whether eval.<name>.enabled is set (a config from before the read-outs has no such block: off)."""
    block = eval_cfg.get(name) if eval_cfg is not None else None
    return bool(block is not None and block.get("enabled", False))


def settings(eval_cfg: Any, name: str) -> dict[str, Any]:
    """What a read-out function is given: eval.<name>'s keys at their defaults where the config lacks them, plus
    `items`, the shared eval.diagnostics_items."""
    block = eval_cfg.get(name) or {}
    given = OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else dict(block)
    defaults = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[name]))
    return defaults | given | {"items": eval_cfg.get(ITEMS_KEY)}


def drop_disabled(resolved: dict[str, Any]) -> None:
    """Leave out of a resolved config (the config hash's input) every read-out that is off, and the item cap when
    all are: a job that asks for none keeps the hash it had before they existed."""
    eval_cfg = resolved.get("eval")
    if not isinstance(eval_cfg, dict):
        return
    for name in READOUTS:
        if not (eval_cfg.get(name) or {}).get("enabled", False):
            eval_cfg.pop(name, None)
    if not any(name in eval_cfg for name in READOUTS):
        eval_cfg.pop(ITEMS_KEY, None)


def add_missing(cfg: DictConfig) -> None:
    """A finished job's saved config (xrobust-eval ckpt_path=...) may predate the read-outs: give its eval node
    their blocks at the defaults, so `eval.alignment.enabled=true` sets a key that is there."""
    if "eval" not in cfg:  # a config written by hand (tests, a stage's own): nothing tests it with read-outs
        return
    with open_dict(cfg):
        if ITEMS_KEY not in cfg.eval:
            cfg.eval[ITEMS_KEY] = None
        for name, schema in SCHEMAS.items():
            if name not in cfg.eval:
                cfg.eval[name] = OmegaConf.to_container(OmegaConf.structured(schema))


# What the alignment read-out can encode: the pair kind (XNLI, PAWS-X) under the classifier head.
ALIGNMENT_KINDS, ALIGNMENT_HEADS = ("pair",), ("classifier",)


def check(cfg: DictConfig, task: Any) -> None:
    """The start-up checks of the read-outs asked for (xrobust/config/checks.py calls this once): one line naming
    the eval.<name> key that cannot run with this task, head or trainer."""
    eval_cfg = cfg.eval
    if not any(enabled(eval_cfg, name) for name in READOUTS):
        return
    items = eval_cfg.get(ITEMS_KEY)
    require(
        items is None or (isinstance(items, int) and items >= 2), f"eval.{ITEMS_KEY}", items, "must be >= 2 or null"
    )
    devices, nodes = cfg.trainer.get("devices"), cfg.trainer.get("num_nodes", 1)
    asked = [name for name in READOUTS if enabled(eval_cfg, name)]
    require(
        devices in (1, "1") and nodes == 1,
        f"eval.{asked[0]}.enabled",
        True,
        f"the read-outs run in one process: set trainer.devices=1 (found trainer.devices={devices}, "
        f"trainer.num_nodes={nodes}); a multi-device job's kept weights can be read out with xrobust-eval",
    )
    if enabled(eval_cfg, "alignment"):
        _check_alignment(cfg, task)


def _check_alignment(cfg: DictConfig, task: Any) -> None:
    head = cfg.model.get("head", "classifier")
    reason = None
    if task.kind not in ALIGNMENT_KINDS:
        reason = f"task {task.name} is of kind {task.kind}; alignment reads out the pair kind (XNLI, PAWS-X)"
    elif head not in ALIGNMENT_HEADS:
        reason = f"model.head={head}; alignment reads out the classifier head's encoder"
    elif not task.source_tested:
        reason = f"task {task.name} has no {task.source_language} test set to align the target languages with"
    require(reason is None, "eval.alignment.enabled", True, reason or "")
    layers = cfg.eval.alignment.get("layers")
    require(
        layers is None or (len(layers) > 0 and all(isinstance(n, int) and n >= 0 for n in layers)),
        "eval.alignment.layers",
        layers,
        "must be a non-empty list of layer numbers >= 0 (0: the embedding output), or null",
    )
