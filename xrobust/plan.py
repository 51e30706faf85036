"""`xrobust-plan [overrides]`: will this training config fit? Exact parameter counts, memory per device, a verdict.

Takes the same overrides as `xrobust-train` (plus `plan.*`, see conf/plan.yaml) and never loads weights or
touches the hub: the architecture is built on the meta device from the shipped config.json
(`model.architecture`) or, for the embedded encoders, from the converted folder's config.json, with LoRA
applied when `finetune=lora`. From that model it counts parameters exactly, then estimates the peak memory of
one training step per device. When the run does not fit, it re-plans candidate changes (gradient
checkpointing, a smaller micro-batch with gradient accumulation, sharding, more devices, LoRA, and pairs of
them) and reports the least disruptive one that fits.

Memory model (bytes; P = all parameters, T = trainable, N = shards; "bf16" stands for either 16-bit type)

- Model states, Lightning's own precision plugins (single device, DDP, FSDP). `*-mixed` keeps the parameters in
  fp32 (they are the master copy) and autocasts the compute to 16 bits:
    weights 4P, gradients 4T, AdamW exp_avg + exp_avg_sq 8T                    = 16 B per trainable parameter
  plus 16-bit working copies of the weights: autocast's casts are saved for the backward (2 x the matmul
  weights without checkpointing, one layer's worth with it); FSDP instead all-gathers 16-bit units (the root
  unit, i.e. embeddings + head, and two layers: the current one and the prefetched one) and holds the unsharded
  16-bit gradients of two layers before the reduce-scatter. `32-true`: the same without working copies;
  `bf16-true`: weights 2P, gradients 2T, moments 4T. DDP adds a 4T gradient bucket copy unless
  `gradient_as_bucket_view=True` (conf/trainer/ddp.yaml sets it).
  FSDP FULL_SHARD divides weights, gradients and moments by N = all devices (HYBRID_SHARD: the devices of one
  node; SHARD_GRAD_OP keeps the gathered 16-bit weights for the whole step).
- DeepSpeed (ZeRO stage 1/2/3), bf16: 16-bit weights 2P, fp32 gradient partitions 4T, optimizer = fp32 master
  4T + moments 8T (18 B per trainable parameter, as deepspeed's own estimate_zero3_model_states_mem_needs);
  stage 1 shards the optimizer, 2 also the gradients, 3 also the weights, plus 2 x 2e8-element 16-bit buckets.
- Activations, per layer and micro-batch b, sequence s, hidden h, FFN width f, heads a, D bytes per activation
  element (2 in 16-bit compute, 4 in 32-true) and 1-byte dropout masks (Korthikanti et al. 2022, "Reducing
  activation recomputation in large transformer models", eq. 1, generalised from f = 4h to any f):
    layer = D (8 sbh + 2 sbf) + 2 sbh                     [BERT / XLM-R: 34 sbh at f = 4h, D = 2]
          + D 2 a s^2 b + a s^2 b                         [attention scores + softmax + dropout, only when the
                                                           kernel materialises them: eager attention, or on CPU]
    gated FFN (mT5):  2 sbf -> 5 sbf of activations + 1 sbf mask;  DeBERTa adds 2 a s^2 b D (c2p, p2c scores)
    LoRA (dropout > 0) adds, per adapted linear, its dropped-out input and mask: (D + 1) s b in_features
  without checkpointing: L x layer; with checkpointing: L x D sbh (each layer's input) + one layer recomputed;
  both + embeddings (D 3 sbh + sbh) + one more layer of working memory for the backward. Expect +-30%:
  autocast keeps LayerNorm outputs in fp32, and kernels keep some extra buffers.
- On CPU, saving a checkpoint: Lightning torch.saves weights + optimizer state into an in-memory buffer first;
  that happens between steps, so the larger of it and the activations enters the total.
- A fixed reserve (plan.reserve_gb: CUDA context, NCCL buffers, allocator fragmentation; on CPU
  plan.cpu_reserve_gb: the interpreter, libraries and the 250k-piece fast tokenizer).
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from xrobust.config import CONF_DIR
from xrobust.errors import XrobustError

GIB = 2**30
HALF = ("bf16-mixed", "16-mixed", "bf16", "16", "bf16-true", "16-true")
MIXED = ("bf16-mixed", "16-mixed", "bf16", "16")
FLASH_KERNELS = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
DEVICE_STEPS = (2, 4, 8, 16, 32, 64, 128)


# ----------------------------------------------------------------------------------------------- the inputs


@dataclass(frozen=True)
class Setup:
    """Everything the estimate depends on, read from the composed config (and changed when re-planning)."""

    model_name: str
    pretrained: str | None
    architecture: str | None
    attn_implementation: str | None
    trust_remote_code: bool
    num_labels: int
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

    @property
    def world(self) -> int:
        return self.devices * self.num_nodes

    @property
    def method(self) -> str:
        return self.finetune.get("method", "full")


@dataclass
class Inventory:
    """Exact counts from the meta-device model."""

    model_class: str
    model_type: str
    total: int
    trainable: int
    embeddings: int  # the input embedding matrix
    layers: int
    layer_params: int  # one transformer layer (all layers have the same size here)
    layer_trainable: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    gated: bool
    dropout: float
    lora_in_features: int = 0  # sum over the LoRA-adapted linears of one layer
    lora_ranks: int = 0
    lora_dropout: float = 0.0
    encoder_only_of: str | None = None  # "mt5": the decoder is not part of the classifier

    @property
    def root_params(self) -> int:
        return self.total - self.layers * self.layer_params

    @property
    def root_trainable(self) -> int:
        return self.trainable - self.layers * self.layer_trainable


# ------------------------------------------------------------------------------------ reading the config


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
        memory = plan.get("gpu_memory_gb", 80)
        reserve = float(plan.get("reserve_gb", 3.0))
    seq_len = plan.get("seq_len") or cfg.data.max_length
    num_labels = plan.get("num_labels") or len(cfg.task.label_names)
    fsdp_ckpt = False
    if strategy == "fsdp" and OmegaConf.is_dict(trainer.strategy):
        policy = trainer.strategy.get("activation_checkpointing_policy")
        fsdp_ckpt = bool(policy) and (not OmegaConf.is_dict(policy) or bool(policy.get("enabled", True)))
    finetune = OmegaConf.to_container(cfg.finetune, resolve=True) if cfg.get("finetune") else {"method": "full"}
    architecture = cfg.model.get("architecture")
    return Setup(
        model_name=str(cfg.model.name),
        pretrained=str(cfg.model.pretrained) if cfg.model.get("pretrained") else None,
        architecture=str(architecture) if architecture else None,
        attn_implementation=cfg.model.get("attn_implementation"),
        trust_remote_code=bool(cfg.model.get("trust_remote_code", False)),
        num_labels=int(num_labels),
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
    )


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


# ------------------------------------------------------------------------------- the meta-device model

_INVENTORIES: dict[tuple, Inventory] = {}


def inventory(setup: Setup) -> Inventory:
    """Build the classifier on the meta device (LoRA applied) and count; cached per model and method."""
    key = (
        setup.model_name,
        setup.pretrained,
        setup.architecture,
        setup.num_labels,
        setup.freeze_embeddings,
        json.dumps(setup.finetune, sort_keys=True),
    )
    if key not in _INVENTORIES:
        _INVENTORIES[key] = _build_inventory(setup)
    return _INVENTORIES[key]


def _build_inventory(setup: Setup) -> Inventory:
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    from xrobust.models.loading import load_classifier, uses_encoder_head

    pretrained = setup.pretrained
    if setup.architecture is None:
        if pretrained is None or not (Path(pretrained) / "config.json").is_file():
            raise XrobustError(
                f"model {setup.model_name!r} has no model.architecture and {pretrained!r} holds no config.json: "
                "set model.architecture to a config.json (xrobust-plan never downloads), or build the embedded "
                "model first (xrobust-build-models)"
            )
    with torch.device("meta"):
        model = load_classifier(
            pretrained,
            num_labels=setup.num_labels,
            architecture=setup.architecture,
            attn_implementation=setup.attn_implementation,
            trust_remote_code=setup.trust_remote_code,
            finetune=setup.finetune,
            weights=False,
        )
    embedding = model.get_input_embeddings().weight
    if setup.freeze_embeddings:
        embedding.requires_grad_(False)  # what TransferModule does with optim.freeze_embeddings
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise XrobustError(f"found no transformer layers in {type(model).__name__}")
    first = layers[0]
    config = getattr(model, "config", None) or model.get_base_model().config
    lora_in = lora_ranks = 0
    lora_dropout = 0.0
    for module in first.modules():
        lora_a = getattr(module, "lora_A", None)
        if isinstance(lora_a, torch.nn.ModuleDict) and "default" in lora_a:
            lora_in += lora_a["default"].in_features
            lora_ranks += lora_a["default"].out_features
            drop = module.lora_dropout["default"]
            lora_dropout = float(getattr(drop, "p", 0.0))
    model_type = config.model_type
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "d_ff", None)
    dropout = getattr(config, "hidden_dropout_prob", None)
    if dropout is None:
        dropout = getattr(config, "dropout_rate", 0.0)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return Inventory(
        model_class=type(base).__name__
        + (f"({type(base.encoder).__name__})" if hasattr(base, "encoder") and hasattr(base, "classifier") else ""),
        model_type=model_type,
        total=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        embeddings=embedding.numel(),
        layers=len(layers),
        layer_params=sum(p.numel() for p in first.parameters()),
        layer_trainable=sum(p.numel() for p in first.parameters() if p.requires_grad),
        hidden=int(config.hidden_size),
        heads=int(config.num_attention_heads),
        ffn=int(ffn),
        vocab=int(config.vocab_size),
        gated=bool(getattr(config, "is_gated_act", False)),
        dropout=float(dropout or 0.0),
        lora_in_features=lora_in,
        lora_ranks=lora_ranks,
        lora_dropout=lora_dropout,
        encoder_only_of=model_type if uses_encoder_head(config) else None,
    )


def seq2seq_parameters(architecture: str) -> int:
    """All parameters of the full encoder-decoder checkpoint (decoder and an untied lm_head included).

    transformers 5 forces `tie_word_embeddings=True` for mT5 configs, so the lm_head that mT0 checkpoints ship
    separately (`tie_word_embeddings: false` in their config.json) is added back as vocab x d_model.
    """
    import torch
    import transformers

    from xrobust.models.loading import load_config

    config = load_config(architecture=architecture)
    with torch.device("meta"):
        model = transformers.AutoModelForSeq2SeqLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        total += config.vocab_size * config.d_model
    return total


# ------------------------------------------------------------------------------------------- the estimate


@dataclass
class Plan:
    setup: Setup
    inv: Inventory
    parts: dict[str, float]  # GiB per device
    notes: dict[str, str]
    activations_gib: dict[str, float]  # with / without checkpointing
    host_gib_per_node: float
    checkpoint_gib: float = 0.0  # Lightning's torch.save into an in-memory buffer (host RAM), non-sharded saves
    fix: dict | None = None
    also_fit: list[dict] = field(default_factory=list)
    max_batch_size: int | None = None

    @property
    def total_gib(self) -> float:
        total = sum(self.parts.values())
        if self.setup.accelerator == "cpu":
            # Saving happens between steps, when the activations are freed: the larger of the two counts.
            activations = self.parts.get("activations", 0.0)
            total += max(self.checkpoint_gib - activations, 0.0)
        return total

    @property
    def processes_sharing_memory(self) -> int:
        """CPU runs: every rank of the node lives in the same host memory."""
        return self.setup.devices if self.setup.accelerator == "cpu" else 1

    @property
    def fits(self) -> bool:
        return self.total_gib * self.processes_sharing_memory <= self.setup.memory_gib

    def summary(self) -> dict:
        return {
            "model": self.setup.model_name,
            "model_class": self.inv.model_class,
            "parameters": {"total": self.inv.total, "trainable": self.inv.trainable},
            "setup": asdict(self.setup),
            "per_device_gib": {k: round(v, 3) for k, v in self.parts.items()},
            "total_gib": round(self.total_gib, 3),
            "memory_gib": self.setup.memory_gib,
            "fits": self.fits,
            "activations_gib": {k: round(v, 3) for k, v in self.activations_gib.items()},
            "host_gib_per_node": round(self.host_gib_per_node, 2),
            "checkpoint_gib": round(self.checkpoint_gib, 3),
            "max_batch_size": self.max_batch_size,
            "fix": self.fix,
            "also_fit": self.also_fit,
        }


def activation_bytes(setup: Setup, inv: Inventory, checkpointing: bool) -> float:
    b, s, h, f, a = setup.batch_size, setup.seq_len, inv.hidden, inv.ffn, inv.heads
    d = 2 if setup.precision in HALF else 4
    mask = 1 if inv.dropout > 0 else 0
    sbh, sbf, ss = s * b * h, s * b * f, a * s * s * b
    if inv.gated:
        layer = d * (8 * sbh + 5 * sbf) + mask * (2 * sbh + sbf)
    else:
        layer = d * (8 * sbh + 2 * sbf) + mask * 2 * sbh
    materialised = (
        setup.accelerator == "cpu"
        or (setup.attn_implementation or "eager") not in FLASH_KERNELS
        or inv.model_type.startswith("deberta")
    )
    if materialised:
        layer += d * 2 * ss + mask * ss
        if inv.model_type.startswith("deberta"):
            layer += d * 2 * ss
    if inv.lora_in_features and inv.lora_dropout > 0:
        layer += (d + 1) * s * b * inv.lora_in_features
    if inv.lora_ranks:
        layer += d * s * b * inv.lora_ranks
    shared = d * 3 * sbh + sbh
    if inv.model_type in ("mt5", "t5", "umt5"):
        shared += d * ss  # the relative position bias, built once and shared by every layer
    if checkpointing:
        return inv.layers * d * sbh + 2 * layer + shared
    return (inv.layers + 1) * layer + shared


def estimate(setup: Setup) -> Plan:
    inv = inventory(setup)
    P, T = inv.total, inv.trainable
    half_true = setup.precision in ("bf16-true", "16-true", "bf16", "16")
    mixed = setup.precision in MIXED
    dp = 2 if setup.precision in HALF else 4  # bytes of a gathered / working weight
    world = setup.world
    parts: dict[str, float] = {}
    notes: dict[str, str] = {}
    layer_weights = inv.layer_params

    if setup.strategy == "deepspeed":
        stage = int(setup.sharding.rsplit("_", 1)[-1])
        n_opt = world
        n_grad = world if stage >= 2 else 1
        n_par = world if stage >= 3 else 1
        w = 2 if (mixed or half_true) else 4
        parts["weights"] = P * w / n_par
        notes["weights"] = f"{w} B x {fmt_count(P)}" + (f" / {n_par} shards" if n_par > 1 else "")
        gathered = dp * (inv.root_params + 2 * layer_weights) if stage >= 3 else 0
        parts["working copies"] = gathered
        notes["working copies"] = "gathered 16-bit root unit + 2 layers" if gathered else "none (weights are 16-bit)"
        buckets = 2 * 2e8 * 2
        parts["gradients"] = T * 4 / n_grad + buckets
        notes["gradients"] = f"fp32 4 B x {fmt_count(T)}" + (f" / {n_grad}" if n_grad > 1 else "") + " + buckets"
        opt = 12 if mixed else 8
        parts["optimizer"] = T * opt / n_opt
        notes["optimizer"] = f"{'fp32 master 4 B + ' if mixed else ''}AdamW moments 8 B x {fmt_count(T)}" + (
            f" / {n_opt}" if n_opt > 1 else ""
        )
    else:
        sharded = setup.strategy == "fsdp" and setup.sharding != "NO_SHARD"
        n = (setup.devices if setup.sharding == "HYBRID_SHARD" else world) if sharded else 1
        w = 2 if half_true else 4
        g = 2 if half_true else 4
        m = 4 if half_true else 8
        parts["weights"] = P * w / n
        notes["weights"] = (
            f"{'16-bit' if half_true else 'fp32'} {w} B x {fmt_count(P)}"
            + (" (the fp32 master copy)" if mixed else "")
            + (f" / {n} shards" if n > 1 else "")
        )
        if sharded and setup.sharding == "SHARD_GRAD_OP":
            parts["working copies"] = dp * P
            notes["working copies"] = f"{dp} B gathered weights held for the step (SHARD_GRAD_OP)"
        elif sharded:
            parts["working copies"] = dp * (inv.root_params + 2 * layer_weights)
            notes["working copies"] = (
                f"gathered {dp} B units: root {fmt_count(inv.root_params)} + 2 layers x {fmt_count(layer_weights)}"
            )
        elif mixed:
            matmul = P - inv.embeddings
            held = layer_weights + (inv.root_params - inv.embeddings) if setup.checkpointing else matmul
            parts["working copies"] = 2 * held
            notes["working copies"] = "autocast bf16 casts saved for the backward: " + (
                "1 layer (recomputed under checkpointing)" if setup.checkpointing else "every matmul weight"
            )
        else:
            parts["working copies"] = 0
            notes["working copies"] = "none"
        parts["gradients"] = T * g / n
        notes["gradients"] = f"{g} B x {fmt_count(T)}" + (f" / {n}" if n > 1 else "")
        if sharded:
            parts["gradients"] += dp * (2 * inv.layer_trainable + max(inv.root_trainable, 0))
            notes["gradients"] += " + unsharded grads of root + 2 layers"
        if setup.strategy == "ddp" and not setup.bucket_view:
            parts["gradients"] += T * g
            notes["gradients"] += " + DDP bucket copy"
        parts["optimizer"] = T * m / n
        notes["optimizer"] = f"AdamW exp_avg + exp_avg_sq {m} B x {fmt_count(T)}" + (f" / {n}" if n > 1 else "")

    with_ckpt = activation_bytes(setup, inv, True)
    without = activation_bytes(setup, inv, False)
    parts["activations"] = with_ckpt if setup.checkpointing else without
    notes["activations"] = f"micro-batch {setup.batch_size} x seq {setup.seq_len}, " + (
        "gradient checkpointing" if setup.checkpointing else "no checkpointing"
    )
    parts = {k: v / GIB for k, v in parts.items()}
    parts["reserve"] = setup.reserve_gib
    notes["reserve"] = (
        "process: libraries + tokenizer" if setup.accelerator == "cpu" else "CUDA context, NCCL, fragmentation"
    )
    host = setup.devices * 4 * P / GIB  # every rank of a node builds the full fp32 model in TransferModule.__init__
    # lightning_fabric's _atomic_save torch.saves the whole checkpoint (weights + optimizer state) into a BytesIO
    # before writing it; FSDP's sharded checkpoints and DeepSpeed write per-rank shards instead.
    full_save = setup.strategy in ("single", "ddp") or (setup.strategy == "fsdp" and setup.sharding == "NO_SHARD")
    opt_bytes = 4 if half_true else 8
    checkpoint = (P * (2 if half_true else 4) + T * opt_bytes) / GIB if full_save else 0.0
    return Plan(
        setup=setup,
        inv=inv,
        parts=parts,
        notes=notes,
        activations_gib={"checkpointing": with_ckpt / GIB, "no_checkpointing": without / GIB},
        host_gib_per_node=host,
        checkpoint_gib=checkpoint,
    )


# --------------------------------------------------------------------------------------- re-planning


def candidates(setup: Setup) -> list[tuple[float, str, list[str], Setup]]:
    """(disruption score, description, overrides, changed setup): single changes first, then pairs."""
    singles: list[tuple[float, str, list[str], Setup]] = []
    if not setup.checkpointing:
        singles.append(
            (1, "gradient checkpointing", ["model.gradient_checkpointing=true"], replace(setup, checkpointing=True))
        )
    k = 2
    while setup.batch_size // k >= 1:
        if setup.batch_size % k == 0:
            b = setup.batch_size // k
            singles.append(
                (
                    1 + 0.01 * math.log2(k),  # prefer the largest micro-batch that fits
                    f"micro-batch {b} with {setup.accumulate * k}x gradient accumulation (same effective batch)",
                    [f"data.batch_size={b}", f"trainer.accumulate_grad_batches={setup.accumulate * k}"],
                    replace(setup, batch_size=b, accumulate=setup.accumulate * k),
                )
            )
        k *= 2
    shards = (setup.strategy == "fsdp" and setup.sharding != "NO_SHARD") or (
        setup.strategy == "deepspeed" and setup.sharding == "stage_3"
    )
    if setup.accelerator != "cpu":
        if setup.world > 1 and not shards:
            singles.append(
                (
                    2,
                    f"shard with FSDP over the same {setup.world} devices",
                    ["trainer=fsdp2", f"trainer.devices={setup.devices}"],
                    replace(setup, strategy="fsdp", sharding="FULL_SHARD"),
                )
            )
        for world in DEVICE_STEPS:
            if world <= setup.world:
                continue
            devices = min(world, setup.gpus_per_node)
            nodes = world // devices
            changed = replace(setup, devices=devices, num_nodes=nodes)
            overrides = [f"trainer.devices={devices}", f"trainer.num_nodes={nodes}"]
            if not shards:
                changed = replace(changed, strategy="fsdp", sharding="FULL_SHARD")
                overrides = ["trainer=fsdp2", *overrides]
            score = 2 + int(math.log2(world / setup.world))
            singles.append(
                (score, f"{world} devices, sharded (effective batch x{world // setup.world})", overrides, changed)
            )
    if setup.method != "lora":
        singles.append(
            (4, "LoRA instead of full fine-tuning", ["finetune=lora"], replace(setup, finetune=lora_defaults()))
        )
    pairs = []
    for i, first in enumerate(singles):
        for second in singles[i + 1 :]:
            if first[2][0].split("=")[0] == second[2][0].split("=")[0]:
                continue  # two micro-batch sizes, or two device counts
            if "trainer=fsdp2" in first[2] and "trainer=fsdp2" in second[2]:
                continue
            merged = _merge(first[3], second[3], setup)
            pairs.append((first[0] + second[0], f"{first[1]} + {second[1]}", [*first[2], *second[2]], merged))
    return singles + pairs


def _merge(a: Setup, b: Setup, base: Setup) -> Setup:
    changes = {k: v for k, v in asdict(b).items() if v != getattr(base, k)}
    return replace(a, **changes)


def lora_defaults() -> dict:
    """conf/finetune/lora.yaml, read directly (the planner may run without that group selected)."""
    path = Path(__file__).resolve().parents[1] / "conf" / "finetune" / "lora.yaml"
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    from xrobust.models.loading import DEFAULT_MODULES_TO_SAVE

    return {"method": "lora", "rank": 16, "alpha": 32, "dropout": 0.1, "modules_to_save": list(DEFAULT_MODULES_TO_SAVE)}


def largest_batch(setup: Setup, limit: int = 4096) -> int | None:
    if not estimate(replace(setup, batch_size=1)).fits:
        return None
    lo, hi = 1, 2
    while hi <= limit and estimate(replace(setup, batch_size=hi)).fits:
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if estimate(replace(setup, batch_size=mid)).fits:
            lo = mid
        else:
            hi = mid
    return lo


def make_plan(setup: Setup) -> Plan:
    plan = estimate(setup)
    if plan.fits:
        plan.max_batch_size = largest_batch(setup)
        return plan
    fitting = []
    for score, what, overrides, changed in candidates(setup):
        try:
            trial = estimate(changed)
        except XrobustError:
            continue
        if trial.fits:
            fitting.append((score, changed.world, trial.total_gib, what, overrides))
    fitting.sort(key=lambda item: (item[0], item[1], item[2]))
    rows, seen = [], set()
    for _, world, total, what, overrides in fitting:
        kind = tuple(o.split("=")[0] for o in overrides)  # keep the best micro-batch / device count of each kind
        if kind not in seen:
            seen.add(kind)
            rows.append(
                {"change": what, "overrides": " ".join(overrides), "total_gib": round(total, 2), "devices": world}
            )
    if rows:
        plan.fix, plan.also_fit = rows[0], rows[1:6]
    return plan


def plan_from_config(cfg: DictConfig) -> Plan:
    return make_plan(setup_from_config(cfg))


# ------------------------------------------------------------------------------------------------ output


def fmt_count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def recommended_overrides(model_cfg) -> str | None:
    rec = model_cfg.get("recommended") if model_cfg is not None else None
    if not rec:
        return None
    rec = OmegaConf.to_container(rec, resolve=True)
    keys = [
        ("finetune", "finetune"),
        ("trainer", "trainer"),
        ("devices", "trainer.devices"),
        ("num_nodes", "trainer.num_nodes"),
        ("batch_size", "data.batch_size"),
        ("accumulate_grad_batches", "trainer.accumulate_grad_batches"),
        ("gradient_checkpointing", "model.gradient_checkpointing"),
    ]
    defaults = {"num_nodes": 1, "accumulate_grad_batches": 1}
    parts = [
        f"{target}={str(rec[key]).lower() if isinstance(rec[key], bool) else rec[key]}"
        for key, target in keys
        if key in rec and defaults.get(key) != rec[key]
    ]
    return " ".join(parts)


def format_plan(plan: Plan, recommended: str | None = None) -> str:
    s, inv = plan.setup, plan.inv
    where = "GPU" if s.accelerator == "gpu" else "CPU"
    if s.strategy == "fsdp":
        strategy = f"FSDP {s.sharding}"
    elif s.strategy == "deepspeed":
        strategy = f"DeepSpeed ZeRO {s.sharding.replace('_', ' ')}"
    else:
        strategy = {"single": "single device", "ddp": "DDP"}[s.strategy]
    frozen = inv.total - inv.trainable
    method = "LoRA " + f"r={s.finetune.get('rank')}" if s.method == "lora" else "full fine-tuning"
    lines = [
        f"xrobust-plan: {s.model_name} ({s.architecture or s.pretrained})",
        f"  model       {inv.model_class}: {inv.layers} layers, hidden {inv.hidden}, {inv.heads} heads, "
        f"FFN {inv.ffn}{' gated' if inv.gated else ''}, vocab {inv.vocab}"
        + (" (encoder only: no decoder)" if inv.encoder_only_of else ""),
        f"  parameters  {inv.total:,} total, {inv.trainable:,} trainable ({method}; {frozen:,} frozen"
        + (", input embeddings frozen" if s.freeze_embeddings and s.method != "lora" else "")
        + ")",
        f"  run         {s.world} x {where} ({s.num_nodes} node{'s' if s.num_nodes > 1 else ''} x {s.devices}), "
        f"{strategy}, {s.precision}, micro-batch {s.batch_size} x seq {s.seq_len}, accumulate {s.accumulate} "
        f"-> effective batch {s.batch_size * s.accumulate * s.world}",
        "  per device (GiB)",
    ]
    for name, value in plan.parts.items():
        lines.append(f"    {name:<15}{value:8.2f}   {plan.notes.get(name, '')}")
    if s.accelerator == "cpu" and plan.checkpoint_gib:
        lines.append(
            f"    {'checkpoint save':<15}{plan.checkpoint_gib:8.2f}   in-memory copy while Lightning saves a checkpoint"
            " (between steps: the larger of this and the activations counts)"
        )
    verdict = "FITS" if plan.fits else "DOES NOT FIT"
    shared = plan.processes_sharing_memory
    of = f"x {shared} processes = {plan.total_gib * shared:.2f} " if shared > 1 else ""
    lines.append(f"    {'total':<15}{plan.total_gib:8.2f}   {of}of {s.memory_gib:.4g} GiB -> {verdict}")
    lines.append(
        f"  activations {plan.activations_gib['no_checkpointing']:.2f} GiB without checkpointing, "
        f"{plan.activations_gib['checkpointing']:.2f} GiB with"
    )
    if plan.fits:
        if plan.max_batch_size:
            free = s.memory_gib - plan.total_gib * shared
            lines.append(f"  headroom    {free:.1f} GiB; largest micro-batch that fits: {plan.max_batch_size}")
    elif plan.fix:
        fix = plan.fix
        lines.append(f"  smallest change that fits: {fix['change']}: {fix['overrides']} -> {fix['total_gib']:.1f} GiB")
        for row in plan.also_fit:
            lines.append(f"    also fits: {row['change']}: {row['overrides']} -> {row['total_gib']:.1f} GiB")
    else:
        lines.append("  no single change or pair of changes tried makes it fit")
    if s.accelerator == "gpu" and s.world > 1:
        lines.append(
            f"  host RAM    every rank builds the full fp32 model before sharding: {s.devices} x "
            f"{4 * inv.total / GIB:.1f} = {plan.host_gib_per_node:.0f} GiB per node at start-up"
        )
    if s.accelerator == "gpu" and plan.checkpoint_gib:
        lines.append(
            f"  host RAM    saving a checkpoint buffers it whole in host memory: {plan.checkpoint_gib:.1f} GiB"
        )
    if recommended:
        lines.append(f"  recommended for this size: {recommended}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="plan")
def main(cfg: DictConfig) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers 5 deprecations raised inside peft
    try:
        plan = plan_from_config(cfg)
    except XrobustError as err:
        print(f"xrobust-plan: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_plan(plan, recommended_overrides(cfg.model)))
    if cfg.plan.get("json"):
        Path(cfg.plan.json).write_text(json.dumps(plan.summary(), indent=2) + "\n")


if __name__ == "__main__":
    main()
