"""The parameter inventory: the classifier built on the meta device (no weights, no hub; LoRA applied) and
counted exactly, plus the architecture figures the activation model needs."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from xrobust.errors import XrobustError
from xrobust.models.model_types import model_type_record
from xrobust.plan.seq2seq_tokens import SEQ2SEQ
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
    # The text-to-text head (model.head=seq2seq): the decoder's layers (the `layers` above are the encoder's),
    # the cross-attention key and value projections of one of them, and the LM head's vocab x width (its logits
    # are computed for every target token, whether or not its matrix is tied to the input embeddings).
    decoder_layers: int = 0
    decoder_layer_params: int = 0
    decoder_layer_trainable: int = 0
    cross_kv_params: int = 0
    output_projection: int = 0
    # From xrobust/models/model_types.py: DeBERTa's two extra score-sized maps (never a fused kernel); the T5
    # family's relative position bias, built once and shared by every layer.
    disentangled_attention: bool = False
    relative_position_bias: bool = False

    @property
    def root_params(self) -> int:
        return self.total - self.layers * self.layer_params - self.decoder_layers * self.decoder_layer_params

    @property
    def root_trainable(self) -> int:
        return self.trainable - self.layers * self.layer_trainable - self.decoder_layers * self.decoder_layer_trainable

    @property
    def largest_layer(self) -> int:
        """The biggest unit FSDP gathers besides the root: a decoder layer has cross-attention on top."""
        return max(self.layer_params, self.decoder_layer_params)

    @property
    def largest_layer_trainable(self) -> int:
        return max(self.layer_trainable, self.decoder_layer_trainable)

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
        setup.head,
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
    head: str,
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
            head=head,
        )
    embedding = model.get_input_embeddings().weight
    if freeze_embeddings:
        embedding.requires_grad_(False)  # what TransferModule does with optim.freeze_embeddings
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    in_decoder = {id(m) for m in base.base_model.get_decoder().modules()} if head == SEQ2SEQ else set()
    every = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    layers = [m for m in every if id(m) not in in_decoder]
    decoder = [m for m in every if id(m) in in_decoder]
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
    record = model_type_record(model_type)
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "d_ff", None)
    dropout = getattr(config, "hidden_dropout_prob", None)
    if dropout is None:
        dropout = getattr(config, "dropout_rate", 0.0)
    wrapped = hasattr(base, "encoder") and hasattr(base, "classifier")
    inner = base.base_model if head == SEQ2SEQ else getattr(base, "encoder", None)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    projection = untied = 0
    if head == SEQ2SEQ:
        projection = int(config.vocab_size) * int(config.hidden_size)
        # transformers 5 ties mT5's LM head to the input embeddings when building from a config; loading keeps a
        # checkpoint's own head apart (every mT5 and mT0 ships one: tie_word_embeddings false).
        tied = base.base_model.get_output_embeddings().weight is base.base_model.get_input_embeddings().weight
        untied = projection if tied and _ships_output_head(pretrained, architecture) else 0
    return Inventory(
        model_class=type(base).__name__ + (f"({type(inner).__name__})" if wrapped or head == SEQ2SEQ else ""),
        model_type=model_type,
        total=total + untied,
        trainable=trainable + (untied if json.loads(finetune_json).get("method", "full") == "full" else 0),
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
        encoder_only_of=model_type if uses_encoder_head(config) and head != SEQ2SEQ else None,
        disentangled_attention=bool(record and record.disentangled_attention),
        relative_position_bias=bool(record and record.relative_position_bias),
        decoder_layers=len(decoder),
        decoder_layer_params=sum(p.numel() for p in decoder[0].parameters()) if decoder else 0,
        decoder_layer_trainable=sum(p.numel() for p in decoder[0].parameters() if p.requires_grad) if decoder else 0,
        cross_kv_params=_cross_kv(decoder[0]) if decoder else 0,
        output_projection=projection,
    )


# The key and value projections of a decoder layer's cross-attention: T5's EncDecAttention.k/v, BART's
# encoder_attn.k_proj/v_proj.
CROSS_ATTENTION = ("EncDecAttention", "encoder_attn")
KEY_VALUE = ("k", "v", "k_proj", "v_proj")


def _cross_kv(layer) -> int:
    """Parameters of one decoder layer that project the encoder's output (per candidate: it is repeated)."""
    total = 0
    for name, module in layer.named_modules():
        parts = name.split(".")
        if any(p in CROSS_ATTENTION for p in parts) and parts[-1] in KEY_VALUE:
            total += sum(p.numel() for p in module.parameters())
    return total


def _ships_output_head(pretrained: str | None, architecture: str | None) -> bool:
    """Whether the checkpoint has an LM head of its own: the published config.json says so (tie_word_embeddings
    false) for a shipped architecture; a local folder's safetensors hold `lm_head.weight` (transformers 5 writes
    tie_word_embeddings true into every mT5 config.json it saves, whatever the weights)."""
    from xrobust.models.loading import architecture_path

    if architecture:
        config = json.loads(architecture_path(architecture).read_text(encoding="utf-8"))
        return not config.get("tie_word_embeddings", True)
    folder = Path(str(pretrained))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return "lm_head.weight" in json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    if (folder / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), "pt") as weights:
            return "lm_head.weight" in weights.keys()
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return not config.get("tie_word_embeddings", True)


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
