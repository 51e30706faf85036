"""One record per transformers `model_type` (an architecture): what the code needs to know about it beyond its
config.json. Adding a model_type is one entry in MODEL_TYPES (plus a model YAML under conf/model/). Not the
comparison group `model.family` (xlmr, mt0, ...), which the report pairs sizes within."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class ModelType:
    model_type: str
    # LoRA's default target modules (name suffixes of linear layers): attention q/k/v/output and both FFN
    # projections of every layer; finetune.target_modules overrides them.
    lora_targets: tuple[str, ...]
    # For encoder-decoder checkpoints: the transformers encoder-only class the task head sits on, so the decoder
    # is never built (models/heads.py); None loads the checkpoint through the task kind's Auto class. Both are
    # model.head=classifier; model.head=seq2seq loads any encoder-decoder whole (models/seq2seq.py).
    encoder_class: str | None = None
    # For the planner's activation memory: DeBERTa's disentangled attention never runs a fused (flash) kernel and
    # holds two more score-sized position maps per layer; T5 models hold one relative position bias.
    disentangled_attention: bool = False
    relative_position_bias: bool = False
    # data.packing=true: packed batches give the padded logits (tests/test_packing.py checks each type that declares
    # it; xrobust/models/packing.py refuses the others).
    packing: bool = False

    @property
    def encoder_only(self) -> bool:
        return self.encoder_class is not None

    def encoder_model(self) -> Any:
        import transformers

        return getattr(transformers, self.encoder_class)


BERT_LIKE = ("query", "key", "value", "intermediate.dense", "output.dense")  # "output.dense": attention and FFN
T5_GATED = ("q", "k", "v", "o", "wi_0", "wi_1", "wo")

MODEL_TYPES = MappingProxyType(
    {
        record.model_type: record
        for record in (
            # the embedded multilingual-e5 encoders (me5-small, me5-small-6l)
            ModelType("bert", BERT_LIKE, packing=True),
            ModelType("xlm-roberta", BERT_LIKE, packing=True),
            ModelType("xlm-roberta-xl", BERT_LIKE, packing=True),
            ModelType(
                "deberta-v2",
                ("query_proj", "key_proj", "value_proj", "intermediate.dense", "output.dense"),
                disentangled_attention=True,
                packing=True,
            ),
            ModelType("mt5", T5_GATED, encoder_class="MT5EncoderModel", relative_position_bias=True, packing=True),
            ModelType("umt5", T5_GATED, encoder_class="UMT5EncoderModel", relative_position_bias=True),
            ModelType(
                "t5", ("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"), "T5EncoderModel", relative_position_bias=True
            ),
        )
    }
)


def model_type_record(model_type: str) -> ModelType | None:
    """The record of a config's model_type; None for one without an entry (loaded as the Auto classes do)."""
    return MODEL_TYPES.get(model_type)
