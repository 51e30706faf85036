"""A task kind's classifier on the meta device but for its input-embedding matrix, loaded from the checkpoint: the
ranks that receive global rank 0's weights once FSDP2 has sharded the model (lightning/rank_zero_loading.py) build
it, and the noise methods and the perturbed test measure those embeddings before the weights arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from xrobust.kinds.base import SEQ2SEQ
from xrobust.models.hub import hub_errors
from xrobust.models.loading import apply_finetune, check_architecture, load_classifier, load_config


def load_meta_classifier(pretrained: str | Path, num_labels: int, **kwargs: Any) -> nn.Module:
    """`load_classifier(pretrained, num_labels, **kwargs)` built on the meta device, but for its input-embedding
    matrix, loaded from `pretrained` (with no transformer layers, so only the embeddings are read). For a rank that
    gets global rank 0's weights after sharding: the noise methods and the perturbed test measure the embedding
    matrix before that (its median row norm, its nearest neighbours), the rest needs no memory until sharded."""
    import torch

    architecture = kwargs.pop("architecture", None)  # checked; the skeleton is the checkpoint's own config
    if architecture is not None:
        with hub_errors(pretrained):
            config = load_config(pretrained, trust_remote_code=kwargs.get("trust_remote_code", False))
            check_architecture(config, load_config(architecture=architecture), architecture, pretrained)
    finetune = kwargs.pop("finetune", None)  # applied last, over the skeleton as it will be loaded
    with torch.device("meta"):
        model = load_classifier(pretrained, num_labels, weights=False, **kwargs).to(torch.float32)
    # No layers: with the seq2seq head none in the decoder either (T5's num_decoder_layers, BART's decoder_layers).
    no_layers = {"num_hidden_layers": 0}
    if kwargs.get("head") == SEQ2SEQ:
        with hub_errors(pretrained):
            config = load_config(pretrained, trust_remote_code=kwargs.get("trust_remote_code", False))
        no_layers |= {key: 0 for key in ("num_decoder_layers", "decoder_layers") if hasattr(config, key)}
    layerless = load_classifier(pretrained, num_labels, config_overrides=no_layers, **kwargs)
    untie_as_loaded(model, layerless)
    skeleton = model.get_input_embeddings().weight
    loaded = layerless.get_input_embeddings().weight
    for module in model.modules():  # every holder of the parameter (mT5's `shared` and `*.embed_tokens`)
        for name, param in list(module.named_parameters(recurse=False)):
            if param is skeleton:
                setattr(module, name, loaded)
    with torch.device("meta"):
        return apply_finetune(model, finetune, model.config.model_type)


def untie_as_loaded(skeleton: nn.Module, loaded: nn.Module) -> None:
    """Give the skeleton a parameter of its own wherever the loaded model holds two parameters apart that the
    skeleton ties. The checkpoint decides: transformers 5 ties mT5's LM head to `shared` in every config it builds
    (MT5Config forces tie_word_embeddings), but loads mT0's own LM head untied, so rank 0 and the meta-device ranks
    would otherwise shard different modules together."""
    import torch

    ours = dict(skeleton.named_parameters(remove_duplicate=False))
    theirs = dict(loaded.named_parameters(remove_duplicate=False))
    first: dict[int, str] = {}
    for name, param in ours.items():
        owner = first.setdefault(id(param), name)
        if owner != name and name in theirs and owner in theirs and theirs[owner] is not theirs[name]:
            module, _, attr = name.rpartition(".")
            fresh = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
            setattr(skeleton.get_submodule(module), attr, fresh)
