"""The LightningModule: a sequence-classification encoder, a noise method, the optimizer and schedule of the config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.strategies import FSDPStrategy, ModelParallelStrategy
from torch.distributed.fsdp import FSDPModule

from xrobust.kinds import get_kind
from xrobust.kinds.base import log_name
from xrobust.lightning import random_state
from xrobust.lightning.rank_zero_loading import classifier_loader, host_memory_mib, shard_from_rank_zero
from xrobust.lightning.sharding import mixed_precision_policy
from xrobust.models.loading import plain
from xrobust.models.packing import PackedClassifier, check_packing
from xrobust.models.parameter_counts import count_non_embedding_parameters, count_parameters
from xrobust.noise.base import NoiseMethod
from xrobust.noise.embeddings import split_embeddings
from xrobust.noise.perturb import token_mask
from xrobust.noise.perturbation import EmbeddingScale, Perturbation
from xrobust.run.predictions import Row, gather_from_ranks, scored_test_sets, unique_by_id

log = logging.getLogger("xrobust")

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")


class TransferModule(pl.LightningModule):
    """Fine-tunes on the source language, selects on its dev accuracy, tests every language zero-shot."""

    def __init__(
        self,
        pretrained: str,
        label_names: list[str],
        test_names: list[str],
        noise: NoiseMethod,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler],
        warmup_ratio: float = 0.1,
        freeze_embeddings: bool = False,
        attn_implementation: str | None = "sdpa",
        gradient_checkpointing: bool = False,
        compile_model: bool = False,
        trust_remote_code: bool = False,
        finetune: dict | None = None,
        perturbed_eval: bool = False,
        test_perturbation: dict | None = None,
        *,
        task_kind: str,
        architecture: str | None = None,
        strategy_target: str | None = None,
        head: str = "classifier",
        packing: bool = False,
    ):
        super().__init__()
        # Plain containers in hparams: a DictConfig there makes the checkpoints fail torch.load(weights_only=True).
        finetune, test_perturbation = plain(finetune), plain(test_perturbation)
        self.save_hyperparameters(ignore=["noise", "optimizer", "scheduler"])
        # The optimizer and schedule factories (partials from the config) as plain descriptions, for the same reason.
        self.hparams.update(optimizer=factory_config(optimizer), scheduler=factory_config(scheduler))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        num_labels = len(label_names)
        # Under FSDP2 only global rank 0 reads the weights; the others get them when configure_model has sharded
        # the model, so a node holds one copy of the model at start-up rather than one per rank.
        self.model = classifier_loader(strategy_target)(
            pretrained,
            num_labels=num_labels,
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            finetune=finetune,
            task_kind=task_kind,
            architecture=architecture,
            head=head,
        )
        # from_pretrained returns eval mode and Lightning keeps submodule modes as found: turn dropout back on.
        self.model.train()
        if gradient_checkpointing:
            # Non-reentrant, whatever the transformers version's default (4.x: reentrant, which breaks DDP's hooks
            # when a noise method runs several forwards a step, and drops layer gradients under frozen embeddings).
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        # Counted here, before any strategy wraps the model: FSDP1 flattens and ZeRO-3 empties what it shards.
        self.num_parameters, self.trainable_parameters = count_parameters(self.model)
        self.non_embedding_parameters = count_non_embedding_parameters(self.model)
        if packing:  # data.packing=true: refused here, naming the model type, where packed logits would differ
            check_packing(self.model)
        self.noise = noise
        self.test_names = list(test_names)
        # The perturbed read-out: its radius in embedding units, measured here while the embedding matrix is whole
        # (before any sharding); test_perturbation is what results.json records of it.
        self.readout_perturbation: Perturbation | None = None
        self.test_perturbation: dict[str, Any] | None = None
        if perturbed_eval:
            scale = EmbeddingScale.measure(self.model)
            self.readout_perturbation = Perturbation.readout(test_perturbation, scale)
            self.test_perturbation = self.readout_perturbation.record(test_perturbation)
        # The task kind (task.kind): its model-selection metric, its prediction rows and the metrics tested on them.
        self.kind = get_kind(task_kind)
        self.val_accuracy = self.kind.metric(num_labels)
        # Per test set, one row per item (after testing: from every rank, each item once); results come from these.
        self.test_predictions: dict[str, list[Row]] = {}
        self.perturbed_predictions: dict[str, list[Row]] = {}
        self.test_results: dict[str, dict[str, Any]] = {}

    @property
    def forward_model(self) -> Any:
        """The model as the noise methods call it: through the packed forward under data.packing=true."""
        return PackedClassifier(self.model) if self.hparams.packing else self.model

    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in batch.items() if k != "id"}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.noise.training_loss(self.forward_model, self.model_inputs(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], batch_size=len(batch["labels"]))
        return loss

    def predict_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = self.model_inputs(batch)
        inputs.pop("labels")
        return self.noise.predict(self.forward_model, inputs)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_accuracy(self.predict_labels(batch), batch["labels"])
        self.log("val/acc", self.val_accuracy, prog_bar=True, batch_size=len(batch["labels"]))

    @property
    def embedding_scale(self) -> EmbeddingScale | None:
        """The embedding scale measured for the perturbed read-out (None without one): build_job hands it to the
        noise method's setup, so the model is measured once."""
        return None if self.readout_perturbation is None else self.readout_perturbation.scale

    def predict_perturbed_labels(
        self, batch: dict[str, torch.Tensor], dataloader_idx: int, batch_idx: int
    ) -> torch.Tensor:
        """Clean-classifier predictions with each real token's input embedding moved within its ball (of radius
        eps_absolute: eval.perturbation.eps in the scale it names), drawn from this test batch's generator."""
        inputs = self.model_inputs(batch)
        inputs.pop("labels")
        embeds, rest = split_embeddings(self.model, inputs)
        perturbation = self.readout_perturbation
        generator = perturbation.test_batch_generator(embeds.device, dataloader_idx, batch_idx)
        delta = perturbation.sample(embeds, token_mask(rest["attention_mask"], embeds), generator)
        return self.forward_model(inputs_embeds=embeds + delta, **rest).logits.argmax(dim=-1)

    def on_test_epoch_start(self) -> None:
        self.test_predictions = {name: [] for name in self.test_names}
        self.perturbed_predictions = {name: [] for name in self.test_names}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_names[dataloader_idx]
        ids, gold = batch["id"].tolist(), batch["labels"].tolist()
        self.test_predictions[name].extend(self.kind.prediction_rows(ids, gold, self.predict_labels(batch).tolist()))
        if self.test_perturbation is not None:
            perturbed = self.predict_perturbed_labels(batch, dataloader_idx, batch_idx).tolist()
            self.perturbed_predictions[name].extend(self.kind.prediction_rows(ids, gold, perturbed))

    def on_test_epoch_end(self) -> None:
        """Gather every rank's rows once and count each item once; every rank ends with the same results."""
        self.test_predictions = unique_by_id(gather_from_ranks(self.test_predictions))
        perturbed = self.test_perturbation is not None
        if perturbed:
            self.perturbed_predictions = unique_by_id(gather_from_ranks(self.perturbed_predictions))
        noisy = self.perturbed_predictions if perturbed else None
        self.test_results = scored_test_sets(self.kind, self.test_names, self.test_predictions, noisy)
        for name, result in self.test_results.items():
            # Identical on every rank (gathered), so the mean over ranks that sync_dist takes changes nothing.
            for metric in self.kind.metrics:
                self.log(f"test/{log_name(metric)}/{name}", result[metric], sync_dist=True)
                if perturbed:
                    self.log(f"test/perturbed_{log_name(metric)}/{name}", result[f"perturbed_{metric}"], sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Every rank's dropout and noise streams (gathered: rank 0 alone may write), so resuming matches not stopping.
        states = random_state.capture(self.noise, random_state.rank_device(self))
        checkpoint["rank_random_states"] = random_state.gather(states)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rank_random_states" in checkpoint:
            random_state.restore_own(checkpoint["rank_random_states"], self.noise, random_state.rank_device(self))

    def configure_model(self) -> None:
        # trainer=fsdp2: shard the model over the data-parallel mesh, filled with global rank 0's weights (the other
        # ranks built it on the meta device); other strategies wrap it themselves. Once: trainer.test calls it again.
        strategy = self.trainer.strategy
        if isinstance(strategy, ModelParallelStrategy) and not isinstance(self.model, FSDPModule):
            policy = mixed_precision_policy(self.trainer.precision)
            shard_from_rank_zero(self.model, self.device_mesh["data_parallel"], policy, strategy.root_device)
        # What a node's ranks hold once the model is ready, for sizing host RAM (benchmarks/startup_rss.py reads it).
        memory = host_memory_mib() if log.isEnabledFor(logging.DEBUG) else {}
        if memory:
            log.debug(
                "rank %d: model ready, host memory %.0f MiB peak resident (VmHWM), %.0f MiB private (RssAnon)",
                self.global_rank,
                memory["VmHWM"],
                memory["RssAnon"],
            )
        # model.compile: in place (state_dict keys unchanged), after sharding; dynamic shapes bound recompilation
        # to about one graph per mode (training, inference) whatever the batch lengths.
        if self.hparams.compile_model:
            self.model.compile(dynamic=True)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip as Lightning does, also for a fused optimizer in bf16-mixed. Lightning refuses any fused optimizer
        under mixed precision because fp16's GradScaler unscales inside it; bf16 has no scaler, so the gradients
        are already unscaled (Lightning-AI/pytorch-lightning#21435). fp16 keeps Lightning's refusal. FSDP1 clips by
        norm through its root unit, as torch documents (FullyShardedDataParallel.clip_grad_norm_)."""
        plugin = self.trainer.precision_plugin
        if gradient_clip_val and gradient_clip_algorithm != "value" and isinstance(self.trainer.strategy, FSDPStrategy):
            # FSDP1: the norm over every rank's shards, through the root unit (FSDPPrecision refuses norm clipping).
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
        elif not gradient_clip_val or not isinstance(plugin, MixedPrecision) or plugin.scaler is not None:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        elif gradient_clip_algorithm == "value":
            plugin.clip_grad_by_value(optimizer, gradient_clip_val)
        else:
            plugin.clip_grad_by_norm(optimizer, gradient_clip_val)

    def configure_optimizers(self):
        """optim.optimizer over two groups (biases and LayerNorm weights without weight decay, the rest with the
        optimizer's own), stepped by optim.scheduler with the first warmup_ratio of the steps as warm-up."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not n.endswith(NO_DECAY)]},
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
        ]
        optimizer = self.optimizer_factory(groups)
        total = self.trainer.estimated_stepping_batches
        warmup = int(self.hparams.warmup_ratio * total)
        scheduler = self.scheduler_factory(optimizer, num_warmup_steps=warmup, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def factory_config(factory: Callable) -> dict[str, Any] | str:
    """A partial (`_partial_: true` in the config) as plain values: its target and keyword arguments."""
    if not isinstance(factory, partial):
        return f"{factory.__module__}.{factory.__qualname__}"
    target = f"{factory.func.__module__}.{factory.func.__qualname__}"
    return {"_target_": target, **{key: plain(value) for key, value in factory.keywords.items()}}
