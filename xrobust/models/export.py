"""The intermediate stage's encoder hand-off from a model that any strategy may have sharded.

Every rank takes part in gathering the full weights (FSDP1 and FSDP2 gather unit by unit as a collective,
DeepSpeed ZeRO-3 through `GatheredParameters`); global rank 0 then loads them into a skeleton of the same
classifier, built on the meta device (no second copy of the weights), and saves its encoder with
`export_encoder` (LoRA merged). Without sharding this is the same path at no extra cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from xrobust.models.loading import load_classifier

PREFIX = "model."  # TransferModule keeps the classifier as `self.model`


def gathered_state_dict(root: nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of `root` (the strategy's model) on CPU on global rank 0, empty on the other ranks.

    A collective: every rank must call it, in the same order."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    if any(hasattr(p, "ds_id") for p in root.parameters()):  # DeepSpeed ZeRO-3 partitions parameters in place
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(root.parameters()), modifier_rank=None):
            return get_model_state_dict(root, options=options)
    return get_model_state_dict(root, options=options)


def rebuilt_classifier(hparams: Any, state: dict[str, torch.Tensor]) -> nn.Module:
    """A skeleton of the module's classifier (its constructor arguments, the task kind and head among them)
    holding the full weights `state`."""
    labels = list(hparams.label_names)
    with torch.device("meta"):
        skeleton = load_classifier(
            hparams.pretrained,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            attn_implementation=hparams.attn_implementation,
            trust_remote_code=hparams.trust_remote_code,
            finetune=hparams.finetune,
            task_kind=hparams.task_kind,
            head=hparams.head,
            weights=False,
        )
    skeleton.load_state_dict(state, assign=True)
    return skeleton


def export_from_ranks(trainer: pl.Trainer, module: pl.LightningModule, tokenizer: Any, folder: Path) -> None:
    """Gather on every rank, save on global rank 0: no rank waits in a barrier while the others gather."""
    state = gathered_state_dict(trainer.strategy.model)
    if trainer.is_global_zero:
        classifier = {k.removeprefix(PREFIX): v for k, v in state.items() if k.startswith(PREFIX)}
        export_encoder(rebuilt_classifier(module.hparams, classifier), tokenizer, folder)


def export_encoder(model: nn.Module, tokenizer: Any, folder: str | Path) -> Path:
    """Save the fine-tuned encoder without its task head (LoRA merged in), loadable as the next stage's
    `pretrained`: intermediate-task training hands the encoder on and the next task gets a fresh head."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    encoder = model.base_model  # transformers models' body without the head; models/heads.py's heads alike
    folder = Path(folder)
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
