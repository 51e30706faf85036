"""The LightningModule: a sequence-classification encoder, a noise method, AdamW with linear warm-up/decay."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics.classification import MulticlassAccuracy
from transformers import get_linear_schedule_with_warmup

from xrobust.models.loading import load_classifier, plain
from xrobust.noise.base import NoiseMethod
from xrobust.noise.perturb import sample_ball, token_mask

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")


class TransferModule(pl.LightningModule):
    """Fine-tunes on the source language, selects on its dev accuracy, tests every language zero-shot."""

    def __init__(
        self,
        pretrained: str,
        label_names: list[str],
        test_names: list[str],
        noise: NoiseMethod,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        freeze_embeddings: bool = False,
        attn_implementation: str | None = "sdpa",
        gradient_checkpointing: bool = False,
        trust_remote_code: bool = False,
        finetune: dict | None = None,
        perturbed_eval: bool = False,
        test_perturbation: dict | None = None,
        multiple_choice: bool = False,
    ):
        super().__init__()
        # Plain containers in hparams: a DictConfig there makes the checkpoints fail torch.load(weights_only=True).
        finetune, test_perturbation = plain(finetune), plain(test_perturbation)
        self.save_hyperparameters(ignore=["noise"])
        num_labels = len(label_names)
        self.model = load_classifier(
            pretrained,
            num_labels=num_labels,
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            finetune=finetune,
            multiple_choice=multiple_choice,
        )
        # from_pretrained returns eval mode and Lightning keeps submodule modes as found: turn dropout back on.
        self.model.train()
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        self.noise = noise
        self.test_names = list(test_names)
        self.test_perturbation = dict(test_perturbation or {}) if perturbed_eval else None
        self.val_accuracy = MulticlassAccuracy(num_classes=num_labels, average="micro")
        self.test_accuracy = torch.nn.ModuleList(
            MulticlassAccuracy(num_classes=num_labels, average="micro") for _ in self.test_names
        )
        self.perturbed_accuracy = torch.nn.ModuleList(
            MulticlassAccuracy(num_classes=num_labels, average="micro") for _ in self.test_names
        )
        self.test_predictions: dict[str, list[tuple[int, int, int]]] = {}
        self.test_results: dict[str, dict[str, Any]] = {}

    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in batch.items() if k != "id"}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.noise.training_loss(self.model, self.model_inputs(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0], batch_size=len(batch["labels"]))
        return loss

    def predict_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = self.model_inputs(batch)
        inputs.pop("labels")
        return self.noise.predict(self.model, inputs)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_accuracy(self.predict_labels(batch), batch["labels"])
        self.log("val/acc", self.val_accuracy, prog_bar=True, batch_size=len(batch["labels"]))

    def predict_perturbed_labels(self, batch: dict[str, torch.Tensor], seed: int) -> torch.Tensor:
        """Clean-classifier predictions with each real token's input embedding moved within its ball."""
        embeds = self.model.get_input_embeddings()(batch["input_ids"])
        generator = torch.Generator(device=embeds.device).manual_seed(seed)
        spec = self.test_perturbation
        delta = sample_ball(embeds, token_mask(batch["attention_mask"], embeds), spec["eps"], spec["norm"], generator)
        inputs = {k: v for k, v in self.model_inputs(batch).items() if k not in ("input_ids", "labels")}
        return self.model(inputs_embeds=embeds + delta, **inputs).logits.argmax(dim=-1)

    def on_test_epoch_start(self) -> None:
        self.test_predictions = {name: [] for name in self.test_names}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_names[dataloader_idx]
        predicted = self.predict_labels(batch)
        metric = self.test_accuracy[dataloader_idx]
        metric(predicted, batch["labels"])
        self.log(f"test/acc/{name}", metric, batch_size=len(predicted), add_dataloader_idx=False)
        self.test_predictions[name].extend(
            zip(batch["id"].tolist(), batch["labels"].tolist(), predicted.tolist(), strict=True)
        )
        if self.test_perturbation is not None:
            seed = self.test_perturbation.get("seed", 0) * 1_000_003 + dataloader_idx * 10_007 + batch_idx
            perturbed = self.perturbed_accuracy[dataloader_idx]
            perturbed(self.predict_perturbed_labels(batch, seed), batch["labels"])
            self.log(f"test/perturbed_acc/{name}", perturbed, batch_size=len(predicted), add_dataloader_idx=False)

    def on_test_epoch_end(self) -> None:
        self.test_results = {}
        for index, name in enumerate(self.test_names):
            result = {"accuracy": float(self.test_accuracy[index].compute()), "n": len(self.test_predictions[name])}
            if self.test_perturbation is not None:
                result["perturbed_accuracy"] = float(self.perturbed_accuracy[index].compute())
            self.test_results[name] = result

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from the global generator: restoring it makes a resumed run match an uninterrupted one.
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])

    def configure_optimizers(self):
        hp = self.hparams
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": hp.weight_decay},
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr)
        total = self.trainer.estimated_stepping_batches
        scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
