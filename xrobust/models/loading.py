"""Turn a model config into a loadable folder or hub id, and a folder or hub id into a task kind's classifier.

- `resolve_pretrained`: the path or hub id to load, building the embedded encoder when it is missing.
- `load_classifier`: the model of a task kind (xrobust/kinds/) for any supported model_type (models/model_types.py:
  encoders through the kind's Auto class, T5-family encoder-decoders through their encoder + the kind's head),
  or with `head="seq2seq"` any encoder-decoder loaded whole as a rank classifier (models/seq2seq.py), with LoRA
  applied when `finetune.method` is `lora`. The caller always names the kind: none is assumed. With
  `weights=False` it builds the architecture alone (random init, or on the meta device inside
  `with torch.device("meta")`), which the planner uses.
- `transformer_layer_classes`: the repeated layer classes of a model, for FSDP's auto-wrap and checkpointing.

The same classifier with only its input embeddings loaded (FSDP2's receiving ranks) is models/meta_classifier.py;
parameter counts are models/parameter_counts.py; the encoder's hand-off to the next stage is models/export.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from xrobust.errors import XrobustError
from xrobust.kinds import get_kind
from xrobust.kinds.base import CLASSIFIER, SEQ2SEQ
from xrobust.models.hub import hub_errors
from xrobust.models.model_types import model_type_record

# Relative `model.architecture` paths are looked up from the working directory, then from the project root.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES_DIR = Path(__file__).resolve().parent / "architectures"

# Heads that are new (randomly initialised) for a classification task: always trained, also under LoRA.
DEFAULT_MODULES_TO_SAVE = ("classifier", "pooler")


def resolve_pretrained(model_cfg) -> str:
    """The path or hub id to hand to `from_pretrained`; embedded models are converted on first use."""
    pretrained = str(model_cfg.pretrained)
    if model_cfg.get("embedded"):
        from xrobust.models.e5_converter import convert
        from xrobust.models.embedded import EMBEDDED_MODELS

        if model_cfg.embedded not in EMBEDDED_MODELS:
            raise XrobustError(
                f"model.embedded={model_cfg.embedded!r} is not an embedded model (known: {', '.join(EMBEDDED_MODELS)})"
            )
        convert(Path(pretrained), num_layers=EMBEDDED_MODELS[model_cfg.embedded])
    return pretrained


def architecture_path(architecture: str | Path) -> Path:
    """A shipped architecture JSON: as given, else relative to the project root, else by name in architectures/."""
    path = Path(str(architecture)).expanduser()
    candidates = [path] if path.is_absolute() else [path, PROJECT_ROOT / path, ARCHITECTURES_DIR / path.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise XrobustError(f"model.architecture={str(architecture)!r}: no such file (looked in {PROJECT_ROOT})")


def load_config(pretrained: str | Path | None = None, *, architecture: str | Path | None = None, **kwargs: Any):
    """The transformers config of `architecture` (a config.json path) when given, else of `pretrained`."""
    from transformers import AutoConfig

    if architecture is None and pretrained is None:
        raise XrobustError("a model needs model.pretrained or model.architecture")
    source = architecture_path(architecture) if architecture is not None else pretrained
    return AutoConfig.from_pretrained(str(source), **kwargs)


def uses_encoder_head(config) -> bool:
    """Whether the config's model_type is loaded as its encoder alone under a task head (mT5, mT0)."""
    record = model_type_record(config.model_type)
    return record is not None and record.encoder_only


def plain(value: Any) -> Any:
    """A DictConfig/ListConfig (or anything else) as plain Python containers."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def load_classifier(
    pretrained: str | Path | None,
    num_labels: int,
    *,
    id2label: Mapping[int, str] | None = None,
    label2id: Mapping[str, int] | None = None,
    attn_implementation: str | None = "sdpa",
    trust_remote_code: bool = False,
    architecture: str | Path | None = None,
    finetune: Mapping[str, Any] | None = None,
    weights: bool = True,
    use_safetensors: bool | None = None,
    dtype: Any = "float32",
    task_kind: str,
    config_overrides: Mapping[str, Any] | None = None,
    head: str = CLASSIFIER,
) -> nn.Module:
    """The model of `task_kind` (a module of xrobust/kinds/) with `num_labels` outputs, LoRA-wrapped when
    `finetune.method == "lora"`: the kind's Auto class (e.g. AutoModelForSequenceClassification), or its head
    over the encoder for encoder-only model_types (models/model_types.py).

    weights=True loads `pretrained` (hub id or folder) with its own config.json; `architecture`, when given, is
    then only checked against it (same model_type and size). weights=False builds `architecture` (or
    `pretrained`'s config) with fresh weights: wrap the call in `with torch.device("meta")` for a skeleton.
    use_safetensors=None takes model.safetensors when the checkpoint has it and falls back to pytorch_model.bin;
    True refuses a checkpoint without safetensors. dtype: the parameters' dtype when loading weights; fp32 by
    default because Lightning's mixed precision keeps the parameters as the fp32 master copy and autocasts
    (transformers 5 would otherwise load a checkpoint saved in bf16/fp16 as is); None keeps the checkpoint's.
    config_overrides: config attributes set when loading weights (e.g. num_hidden_layers=0).
    head="seq2seq": the whole encoder-decoder (AutoModelForSeq2SeqLM) as a `RankClassifier`, whatever the kind:
    its candidates come with the data (the labels' strings, or each item's choices).
    """
    from transformers import AutoModelForSeq2SeqLM

    from xrobust.models.seq2seq import RankClassifier

    kind = get_kind(task_kind)
    labels: dict[str, Any] = {"num_labels": num_labels}
    if id2label is not None:
        labels["id2label"] = dict(id2label)
    if label2id is not None:
        labels["label2id"] = dict(label2id)
    build_kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}

    if weights:
        if pretrained is None:
            raise XrobustError("loading weights needs model.pretrained")
        load_kwargs = {
            "trust_remote_code": trust_remote_code,
            "use_safetensors": use_safetensors,
            "dtype": dtype if dtype is not None else "auto",
            **build_kwargs,
            **(config_overrides or {}),
        }
        with hub_errors(pretrained):
            config = load_config(pretrained, trust_remote_code=trust_remote_code)
            if architecture is not None:
                check_architecture(config, load_config(architecture=architecture), architecture, pretrained)
            record = model_type_record(config.model_type)
            if head == SEQ2SEQ:
                check_seq2seq(config, pretrained)
                model = RankClassifier(AutoModelForSeq2SeqLM.from_pretrained(str(pretrained), **load_kwargs))
            elif record is not None and record.encoder_only:
                encoder = record.encoder_model().from_pretrained(str(pretrained), **load_kwargs)
                model = kind.encoder_head(encoder, labels)
            else:
                model = kind.auto_model().from_pretrained(str(pretrained), **labels, **load_kwargs)
    else:
        field = "model.pretrained" if architecture is None else "model.architecture"
        with hub_errors(pretrained if architecture is None else architecture, field):
            config = load_config(pretrained, architecture=architecture, trust_remote_code=trust_remote_code, **labels)
        record = model_type_record(config.model_type)
        if head == SEQ2SEQ:
            check_seq2seq(config, pretrained if architecture is None else architecture)
            lm = AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=trust_remote_code, **build_kwargs)
            model = RankClassifier(lm)
        elif record is not None and record.encoder_only:
            model = kind.encoder_head(record.encoder_model()._from_config(config, **build_kwargs), labels)
        else:
            model = kind.auto_model().from_config(config, trust_remote_code=trust_remote_code, **build_kwargs)
    return apply_finetune(model, finetune, config.model_type)


def check_seq2seq(config: Any, source: str | Path | None) -> None:
    """model.head=seq2seq scores label strings with a decoder: an encoder-only checkpoint has none."""
    if not getattr(config, "is_encoder_decoder", False):
        raise XrobustError(
            f"model.head=seq2seq needs an encoder-decoder checkpoint (mT5, mT0, ...), but {str(source)!r} is a "
            f"{config.model_type} encoder: use model.head=classifier"
        )


def check_architecture(loaded, shipped, architecture, pretrained) -> None:
    """The checkpoint is the model its config describes (the planner and results assume so)."""
    for key in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size"):
        have, want = getattr(loaded, key, None), getattr(shipped, key, None)
        if have != want:
            raise XrobustError(
                f"model.architecture={str(architecture)!r} says {key}={want!r}, the config.json of "
                f"model.pretrained={str(pretrained)!r} {have!r}: another model? model.architecture=null loads it as is"
            )


def apply_finetune(model: nn.Module, finetune: Mapping[str, Any] | None, model_type: str) -> nn.Module:
    """The model itself for `method: full` (for `none`, frozen); a peft LoRA model (adapters + trained heads) for
    `method: lora`."""
    finetune = plain(finetune) or {}
    method = finetune.get("method", "full")
    if method == "full":
        return model
    if method == "none":  # finetune=none: tested as loaded, so nothing is trainable (and none is counted so)
        return model.requires_grad_(False)
    if method != "lora":
        raise XrobustError(f"invalid config: finetune.method={method!r} (must be one of full, lora, none)")
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(finetune.get("target_modules"), model_type)
    if not targets:
        raise XrobustError("invalid config: finetune.target_modules is empty")
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    wanted = finetune.get("modules_to_save") or list(DEFAULT_MODULES_TO_SAVE)
    modules_to_save = [m for m in wanted if m in names]
    if "classifier" in names and "classifier" not in modules_to_save:
        modules_to_save.append("classifier")  # the new head is always trained
    config = LoraConfig(
        r=int(finetune.get("rank", 16)),
        lora_alpha=float(finetune.get("alpha", 32)),
        lora_dropout=float(finetune.get("dropout", 0.1)),
        target_modules=list(targets),
        modules_to_save=modules_to_save,
        bias="none",
    )
    return get_peft_model(model, config)


def lora_targets(configured: Any, model_type: str) -> Any:
    """finetune.target_modules: a list as given, a mapping's entry for model_type, else the model_type's default."""
    targets = configured.get(model_type) if isinstance(configured, Mapping) else configured
    if targets is not None:
        return targets
    record = model_type_record(model_type)
    if record is None:
        raise XrobustError(
            f"finetune.target_modules has no entry for model_type {model_type!r}, nor has "
            "xrobust/models/model_types.py; set one, e.g. finetune.target_modules=[query,value], or add the "
            "model_type there"
        )
    return record.lora_targets


def transformer_layer_classes(
    pretrained: str | None = None,
    architecture: str | None = None,
    enabled: bool = True,
    trust_remote_code: bool = False,
) -> set[type[nn.Module]] | None:
    """The repeated transformer layer classes (e.g. {XLMRobertaXLLayer}), or None when not `enabled`.

    For FSDPStrategy's `auto_wrap_policy` / `activation_checkpointing_policy`: Lightning turns a set of classes
    into a ModuleWrapPolicy. Found by building the architecture on the meta device (no weights, no download when
    `architecture` is a shipped JSON) and collecting its `GradientCheckpointingLayer` subclasses.
    """
    if not enabled:
        return None
    import torch
    from transformers.modeling_layers import GradientCheckpointingLayer

    with torch.device("meta"):
        model = load_classifier(
            pretrained,
            num_labels=2,
            task_kind="pair",  # any kind: its head sits over the same transformer layers
            architecture=architecture,
            trust_remote_code=trust_remote_code,
            attn_implementation=None,
            weights=False,
        )
    classes = {type(m) for m in model.modules() if isinstance(m, GradientCheckpointingLayer)}
    if not classes:
        raise XrobustError(f"found no transformer layer classes in {type(model).__name__} to wrap")
    return classes
