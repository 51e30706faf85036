"""The planner's inputs: everything the memory and cost estimates depend on, read once from the composed config
(the same config `xrobust-train` composes) and changed field by field when re-planning."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.strategies import FSDPStrategy

from xrobust.data.task import TaskSpec
from xrobust.lightning.rank_zero_loading import loads_on_rank_zero
from xrobust.noise.step_cost import StepMemory, StepPasses
from xrobust.plan.gpus import gpu_of
from xrobust.plan.options import plan_options
from xrobust.plan.seq2seq_tokens import SEQ2SEQ, decoder_shape
from xrobust.plan.strategies import Ddp, Fsdp, SingleDevice, argument, resolve_strategy

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
    strategy: str  # single | ddp | fsdp | deepspeed: its memory model (xrobust/plan/strategies.py)
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
    """The job's inputs as the job reads them: the typed data, optim and task nodes (TaskSpec, its kind object),
    the model node's keys every model file sets, the trainer's strategy resolved as Lightning resolves it, and the
    typed plan options (xrobust/plan/options.py)."""
    plan = plan_options(cfg)
    trainer, model, data = cfg.trainer, cfg.model, cfg.data
    strategy, sharding, bucket_view = resolve_strategy(trainer.strategy)
    accelerator = str(trainer.accelerator)
    devices = trainer.devices
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    if devices in (-1, "auto") or not isinstance(devices, int):
        if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
            devices = len(devices)
        else:
            devices = plan.gpus_per_node if accelerator != "cpu" else 1
    world = devices * int(trainer.num_nodes)
    if strategy == SingleDevice.kind and world > 1:
        strategy = Ddp.kind  # what Lightning's "auto" picks for several devices
    if accelerator == "cpu":
        memory, reserve = plan.cpu_memory_gb or host_memory_gib(), plan.cpu_reserve_gb
    else:
        memory, reserve = plan.gpu_memory_gb or gpu_of(plan).memory_gb, plan.reserve_gb
    task = TaskSpec.from_config(cfg.task)
    finetune = OmegaConf.to_container(cfg.finetune, resolve=True) if cfg.finetune else {"method": "full"}
    noise, noise_memory, noise_passes = noise_costs(cfg)
    head = str(model.head)
    decoder = decoder_shape(cfg) if head == SEQ2SEQ else (0, 0, 0, 0.0)
    return Setup(
        model_name=str(model.name),
        pretrained=str(model.pretrained) if model.pretrained else None,
        architecture=str(model.architecture) if model.architecture else None,
        attn_implementation=model.attn_implementation,
        trust_remote_code=bool(model.trust_remote_code),
        num_labels=int(plan.num_labels or len(task.label_names)),
        task_kind=task.kind,
        # The text-to-text encoder reads an item once.
        choices=1 if head == SEQ2SEQ else task.task_kind.sequences_per_example(task),
        finetune=finetune,
        freeze_embeddings=cfg.optim.freeze_embeddings,
        checkpointing=bool(model.gradient_checkpointing)
        or (strategy == Fsdp.kind and fsdp_checkpointing(trainer.strategy)),
        strategy=strategy,
        sharding=sharding,
        bucket_view=bucket_view,
        accelerator="cpu" if accelerator == "cpu" else "gpu",
        devices=int(devices),
        num_nodes=int(trainer.num_nodes),
        precision=str(trainer.precision),
        batch_size=data.batch_size,
        accumulate=int(trainer.accumulate_grad_batches or 1),
        seq_len=int(plan.seq_len or data.max_length),
        memory_gib=float(memory),
        reserve_gib=reserve,
        gpus_per_node=plan.gpus_per_node,
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


def fsdp_checkpointing(strategy: Any) -> bool:
    """Whether FSDPStrategy's activation_checkpointing_policy checkpoints: a `_target_` policy (conf/trainer/fsdp.yaml:
    transformer_layer_classes) by its `enabled` argument or that callable's default, any other by being set."""
    if not OmegaConf.is_dict(strategy):
        return False
    policy = argument(OmegaConf.to_container(strategy, resolve=True), "activation_checkpointing_policy", FSDPStrategy)
    if isinstance(policy, dict) and "_target_" in policy:
        return bool(argument(policy, "enabled", get_object(policy["_target_"])))
    return bool(policy)


def noise_costs(cfg: DictConfig) -> tuple[str, StepMemory, StepPasses]:
    """The noise method's own declaration of its step's memory and passes.

    The config is instantiated as training does (`instantiate(cfg.noise, _partial_=True)()`): the costs depend on
    the hyper-parameters (steps, variant, clean_weight, num_samples), which the instance holds already checked,
    and building one is cheap: no model, no data (rs_da finds its neighbours in `setup`, not here).
    """
    method = instantiate(cfg.noise, _partial_=True)()
    return str(method.name), method.step_memory(), method.step_passes()


def host_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return 16.0
