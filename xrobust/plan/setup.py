"""The planner's inputs: everything the memory and cost estimates depend on, read once from the composed config
(the same config `xrobust-train` composes) and changed field by field when re-planning."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.lightning.rank_zero_loading import loads_on_rank_zero
from xrobust.noise.step_cost import StepMemory, StepPasses
from xrobust.plan.gpus import gpu_of
from xrobust.plan.seq2seq_tokens import SEQ2SEQ, decoder_shape

GIB = 2**30


@dataclass(frozen=True)
class Setup:
    """Everything the estimate depends on, read from the composed config (and changed when re-planning)."""

    model_name: str
    pretrained: str | None
    architecture: str | None
    attn_implementation: str | None
    trust_remote_code: bool
    num_labels: int
    task_kind: str  # a module of xrobust/kinds/ (task.kind): which head the inventory builds
    # Sequences the model reads per example (TaskKind.sequences_per_example): a multiple-choice item's every choice.
    choices: int
    finetune: dict
    freeze_embeddings: bool
    checkpointing: bool
    strategy: str  # single | ddp | fsdp | deepspeed
    sharding: str  # fsdp: FULL_SHARD | SHARD_GRAD_OP | HYBRID_SHARD | NO_SHARD; deepspeed: stage_1/2/3
    bucket_view: bool  # DDP gradient_as_bucket_view
    accelerator: str  # gpu | cpu
    devices: int  # per node
    num_nodes: int
    precision: str
    batch_size: int  # per device (Lightning: per process)
    accumulate: int
    seq_len: int
    memory_gib: float
    reserve_gib: float
    gpus_per_node: int
    noise: str = "none"
    noise_memory: StepMemory = StepMemory()  # what the noise method declares (NoiseMethod.step_memory)
    noise_passes: StepPasses = StepPasses()  # (NoiseMethod.step_passes)
    # trainer=fsdp2: only rank 0 loads the weights, the other ranks build on meta
    # (xrobust/lightning/rank_zero_loading.py)
    rank_zero_loading: bool = False
    # model.head: classifier, or seq2seq (the whole encoder-decoder: xrobust/plan/seq2seq.py) with its decoder's
    # candidates per item, their length (EOS included), the template's own tokens and a choice's mean tokens.
    head: str = "classifier"
    candidates: int = 0
    target_tokens: int = 0
    prompt_tokens: int = 0
    choice_tokens: float = 0.0

    @property
    def world(self) -> int:
        return self.devices * self.num_nodes

    @property
    def method(self) -> str:
        return self.finetune.get("method", "full")


def setup_from_config(cfg: DictConfig) -> Setup:
    plan = cfg.get("plan") or {}
    trainer = cfg.trainer
    strategy, sharding, bucket_view = parse_strategy(trainer.strategy)
    accelerator = str(trainer.accelerator)
    gpus_per_node = int(plan.get("gpus_per_node") or 8)
    devices = trainer.devices
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    if devices in (-1, "auto") or not isinstance(devices, int):
        if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
            devices = len(devices)
        else:
            devices = gpus_per_node if accelerator != "cpu" else 1
    world = devices * int(trainer.num_nodes)
    if strategy == "single" and world > 1:
        strategy = "ddp"  # what Lightning's "auto" picks for several devices
    if accelerator == "cpu":
        memory = plan.get("cpu_memory_gb") or host_memory_gib()
        reserve = float(plan.get("cpu_reserve_gb", 1.0))
    else:
        memory = plan.get("gpu_memory_gb") or gpu_of(plan).memory_gb
        reserve = float(plan.get("reserve_gb", 3.0))
    seq_len = plan.get("seq_len") or cfg.data.max_length
    num_labels = plan.get("num_labels") or len(cfg.task.label_names)
    fsdp_ckpt = False
    if strategy == "fsdp" and OmegaConf.is_dict(trainer.strategy):
        policy = trainer.strategy.get("activation_checkpointing_policy")
        fsdp_ckpt = bool(policy) and (not OmegaConf.is_dict(policy) or bool(policy.get("enabled", True)))
    finetune = OmegaConf.to_container(cfg.finetune, resolve=True) if cfg.get("finetune") else {"method": "full"}
    architecture = cfg.model.get("architecture")
    noise, noise_memory, noise_passes = noise_costs(cfg)
    task = TaskSpec.from_config(cfg.task)
    head = str(cfg.model.get("head") or "classifier")
    decoder = decoder_shape(cfg) if head == SEQ2SEQ else (0, 0, 0, 0.0)
    return Setup(
        model_name=str(cfg.model.name),
        pretrained=str(cfg.model.pretrained) if cfg.model.get("pretrained") else None,
        architecture=str(architecture) if architecture else None,
        attn_implementation=cfg.model.get("attn_implementation"),
        trust_remote_code=bool(cfg.model.get("trust_remote_code", False)),
        num_labels=int(num_labels),
        task_kind=task.kind,
        # The text-to-text encoder reads an item once.
        choices=1 if head == SEQ2SEQ else task.task_kind.sequences_per_example(task),
        finetune=finetune,
        freeze_embeddings=bool(cfg.optim.get("freeze_embeddings", False)),
        checkpointing=bool(cfg.model.get("gradient_checkpointing", False)) or fsdp_ckpt,
        strategy=strategy,
        sharding=sharding,
        bucket_view=bucket_view,
        accelerator="cpu" if accelerator == "cpu" else "gpu",
        devices=int(devices),
        num_nodes=int(trainer.num_nodes),
        precision=str(trainer.precision),
        batch_size=int(cfg.data.batch_size),
        accumulate=int(trainer.accumulate_grad_batches or 1),
        seq_len=int(seq_len),
        memory_gib=float(memory),
        reserve_gib=reserve,
        gpus_per_node=gpus_per_node,
        noise=noise,
        noise_memory=noise_memory,
        noise_passes=noise_passes,
        rank_zero_loading=loads_on_rank_zero(OmegaConf.select(trainer, "strategy._target_")),
        head=head,
        candidates=decoder[0],
        target_tokens=decoder[1],
        prompt_tokens=decoder[2],
        choice_tokens=decoder[3],
    )


def noise_costs(cfg: DictConfig) -> tuple[str, StepMemory, StepPasses]:
    """The noise method's own declaration of its step's memory and passes.

    The config is instantiated as training does (`instantiate(cfg.noise, _partial_=True)()`): the costs depend on
    the hyper-parameters (steps, variant, clean_weight, num_samples), which the instance holds already checked,
    and building one is cheap: no model, no data (rs_da finds its neighbours in `setup`, not here).
    """
    if not cfg.get("noise"):
        return "none", StepMemory(), StepPasses()
    method = instantiate(cfg.noise, _partial_=True)()
    return str(method.name), method.step_memory(), method.step_passes()


def parse_strategy(strategy: Any) -> tuple[str, str, bool]:
    """(kind, sharding, DDP gradient_as_bucket_view) of a Trainer `strategy` value or `_target_` node."""
    if OmegaConf.is_dict(strategy) or isinstance(strategy, dict):
        target = str(strategy.get("_target_", "")).rsplit(".", 1)[-1]
        if target == "FSDPStrategy":
            return "fsdp", str(strategy.get("sharding_strategy") or "FULL_SHARD").upper(), False
        if target == "FSDP2Strategy":  # trainer=fsdp2: per-layer fully_shard, full sharding, the same memory model
            return "fsdp", "FULL_SHARD", False
        if target == "DDPStrategy":
            return "ddp", "", bool(strategy.get("gradient_as_bucket_view", False))
        if target == "DeepSpeedStrategy":
            return "deepspeed", f"stage_{int(strategy.get('stage', 2))}", False
        if target == "SingleDeviceStrategy":
            return "single", "", False
        raise XrobustError(f"xrobust-plan does not know trainer.strategy._target_={target!r}")
    name = str(strategy)
    if name == "auto":
        return "single", "", False
    if name.startswith("ddp"):
        return "ddp", "", False
    if name.startswith("fsdp"):
        return "fsdp", "FULL_SHARD", False
    if name.startswith("deepspeed"):
        stage = next((c for c in name if c.isdigit()), "2")  # Lightning's plain "deepspeed" is stage 2
        return "deepspeed", f"stage_{stage}", False
    if name.startswith("single"):
        return "single", "", False
    raise XrobustError(f"xrobust-plan does not know trainer.strategy={name!r}")


def host_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return 16.0
