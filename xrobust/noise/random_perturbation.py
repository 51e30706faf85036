"""`noise=rs_rp`: randomized smoothing with random perturbation (Huang et al. 2021, section 3.2).

Every training example is seen through `num_samples` noisy copies of its input word embeddings: each real
token's embedding `e` becomes `e + delta`, delta drawn uniformly from an L2 or L-inf ball of radius eps around
that token (or Gaussian with std sigma), padding untouched. Per-token balls, not one ball per sentence: see
xrobust/noise/perturb.py. Optionally the test-time classifier is the smoothed one: a majority vote over
`num_test_samples` noisy copies (used for validation as well, so model selection sees the same classifier).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, as_float, as_int, one_of, require


def device_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on the tensors' device, so sampling never goes through the global RNG (or the CPU)."""
    return torch.Generator(device=device).manual_seed(seed)


class RankGenerators:
    """One generator per device, seeded apart per distributed rank (so ranks draw different noise), with its
    state saved in checkpoints: a resumed run draws what an uninterrupted one would."""

    def __init__(self, seed: int):
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def get(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = device_generator(self.seed + 7919 * perturb.process_rank(), device)
        return self._generators[device]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {str(device): generator.get_state() for device, generator in self._generators.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for device, generator_state in state.items():
            self.get(torch.device(device)).set_state(generator_state)


def split_embeddings(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """The input word embeddings (in the autograd graph of the embedding matrix) and the other inputs."""
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    if "attention_mask" not in rest:
        rest["attention_mask"] = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    return embeds, rest


class RandomPerturbation(NoiseMethod):
    name = "rs_rp"

    def __init__(
        self,
        name: str = "rs_rp",
        distribution: str = "uniform",
        norm: str = "l2",
        eps: float = 0.9,
        sigma: float = 0.046,
        num_samples: int = 1,
        smoothed_prediction: bool = False,
        num_test_samples: int = 8,
        seed: int = 1,
    ):
        self.name = name
        self.distribution = one_of("distribution", distribution, perturb.DISTRIBUTIONS)
        self.norm = one_of("norm", norm, perturb.NORMS)
        self.eps = as_float("eps", eps)
        require(self.eps >= 0, "eps", eps, "must be >= 0")
        self.sigma = as_float("sigma", sigma)
        require(self.sigma >= 0, "sigma", sigma, "must be >= 0")
        self.num_samples = as_int("num_samples", num_samples)
        require(self.num_samples >= 1, "num_samples", num_samples, "must be >= 1")
        require(isinstance(smoothed_prediction, bool), "smoothed_prediction", smoothed_prediction, "must be a bool")
        self.smoothed_prediction = smoothed_prediction
        self.num_test_samples = as_int("num_test_samples", num_test_samples)
        require(self.num_test_samples >= 1, "num_test_samples", num_test_samples, "must be >= 1")
        self.seed = as_int("seed", seed)
        self.train_generators = RankGenerators(self.seed)

    def noise(self, embeds: torch.Tensor, attention_mask: torch.Tensor, generator=None) -> torch.Tensor:
        """One draw of the configured noise for a batch of embeddings (zero on padding)."""
        mask = perturb.token_mask(attention_mask, embeds)
        return perturb.sample_noise(
            embeds, mask, self.distribution, self.eps, self.norm, self.sigma, generator=generator
        )

    def state_dict(self) -> dict[str, Any]:
        return {"train_generators": self.train_generators.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train_generators.load_state_dict(state.get("train_generators", {}))

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds, rest = split_embeddings(model, batch)
        if self.num_samples > 1:
            embeds = embeds.repeat_interleave(self.num_samples, dim=0)
            rest = perturb.repeat_batch(rest, self.num_samples)
        delta = self.noise(embeds.detach(), rest["attention_mask"], self.train_generators.get(embeds.device))
        return model(inputs_embeds=embeds + delta, **rest).loss

    def predict(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.smoothed_prediction:
            return super().predict(model, inputs)
        embeds, rest = split_embeddings(model, inputs)
        # Re-seeded per batch: a prediction depends only on the model and the batch, not on what ran before.
        generator = device_generator(self.seed + 1, embeds.device)
        votes = probs = None
        for _ in range(self.num_test_samples):
            delta = self.noise(embeds, rest["attention_mask"], generator)
            logits = model(inputs_embeds=embeds + delta, **rest).logits.float()
            if votes is None:
                votes, probs = torch.zeros_like(logits), torch.zeros_like(logits)
            votes += nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(votes.dtype)
            probs += logits.softmax(dim=-1)
        return perturb.majority_vote(votes, probs / self.num_test_samples)

    def params(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "norm": self.norm,
            "eps": self.eps,
            "sigma": self.sigma,
            "ball": "per-token",
            "num_samples": self.num_samples,
            "smoothed_prediction": self.smoothed_prediction,
            "num_test_samples": self.num_test_samples,
            "seed": self.seed,
        }
