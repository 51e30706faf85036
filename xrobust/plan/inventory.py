"""The parameter inventory: the classifier built on the meta device (no weights, no hub; LoRA applied) and
counted exactly, plus the architecture figures the activation model needs."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from xrobust.errors import XrobustError
from xrobust.models.families import family_of
from xrobust.plan.setup import Setup


@dataclass(frozen=True)
class Inventory:
    """Exact counts from the meta-device model."""

    model_class: str
    model_type: str
    total: int
    trainable: int
    embeddings: int  # the input embedding matrix
    embeddings_trainable: bool
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
    # From xrobust/models/families.py: DeBERTa's two extra score-sized maps (never a fused kernel); the T5
    # family's relative position bias, built once and shared by every layer.
    disentangled_attention: bool = False
    relative_position_bias: bool = False

    @property
    def root_params(self) -> int:
        return self.total - self.layers * self.layer_params

    @property
    def root_trainable(self) -> int:
        return self.trainable - self.layers * self.layer_trainable

    @property
    def matmul_params(self) -> int:
        """The parameters every token's forward multiplies by: all but the input embedding lookup."""
        return self.total - self.embeddings


def inventory(setup: Setup) -> Inventory:
    """Build the classifier on the meta device (LoRA applied) and count; cached per model and method."""
    return _cached_inventory(
        setup.model_name,
        setup.pretrained,
        setup.architecture,
        setup.attn_implementation,
        setup.trust_remote_code,
        setup.num_labels,
        setup.task_kind,
        setup.freeze_embeddings,
        json.dumps(setup.finetune, sort_keys=True),
    )


@functools.cache
def _cached_inventory(
    model_name: str,
    pretrained: str | None,
    architecture: str | None,
    attn_implementation: str | None,
    trust_remote_code: bool,
    num_labels: int,
    task_kind: str,
    freeze_embeddings: bool,
    finetune_json: str,
) -> Inventory:
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    from xrobust.models.loading import load_classifier, uses_encoder_head

    if architecture is None and (pretrained is None or not (Path(pretrained) / "config.json").is_file()):
        raise XrobustError(
            f"model {model_name!r} has no model.architecture and {pretrained!r} holds no config.json: "
            "set model.architecture to a config.json (xrobust-plan never downloads), or build the embedded "
            "model first (xrobust-build-models)"
        )
    with torch.device("meta"):
        model = load_classifier(
            pretrained,
            num_labels=num_labels,
            architecture=architecture,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            finetune=json.loads(finetune_json),
            weights=False,
            task_kind=task_kind,
        )
    embedding = model.get_input_embeddings().weight
    if freeze_embeddings:
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
            lora_dropout = float(getattr(module.lora_dropout["default"], "p", 0.0))
    model_type = config.model_type
    family = family_of(model_type)
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "d_ff", None)
    dropout = getattr(config, "hidden_dropout_prob", None)
    if dropout is None:
        dropout = getattr(config, "dropout_rate", 0.0)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    wrapped = hasattr(base, "encoder") and hasattr(base, "classifier")
    return Inventory(
        model_class=type(base).__name__ + (f"({type(base.encoder).__name__})" if wrapped else ""),
        model_type=model_type,
        total=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        embeddings=embedding.numel(),
        embeddings_trainable=embedding.requires_grad,
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
        disentangled_attention=bool(family and family.disentangled_attention),
        relative_position_bias=bool(family and family.relative_position_bias),
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
