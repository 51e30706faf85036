"""`noise=rs_rp`: randomized smoothing with random perturbation (Huang et al. 2021, section 3.2).

Every training example is seen through `num_samples` noisy copies of its input word embeddings: each real
token's embedding `e` becomes `e + delta`, delta drawn uniformly from an L2 or L-inf ball of radius eps around
that token (or Gaussian with std sigma), padding untouched. Per-token balls, not one ball per sentence: see
xrobust/noise/perturb.py. Optionally the test-time classifier is the smoothed one: a majority vote over
`num_test_samples` noisy copies (used for validation as well, so model selection sees the same classifier).
eps and sigma are relative to the model's median token-embedding norm by default (`eps_scale`, perturbation.py):
sigma, being per coordinate, to that norm over sqrt(d), so N(0, sigma^2 I) has the same L2 size at every width.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from xrobust.noise import perturb
from xrobust.noise.base import require
from xrobust.noise.embeddings import EmbeddingNoise, split_embeddings
from xrobust.noise.step_cost import StepMemory, StepPasses


@dataclasses.dataclass(kw_only=True, eq=False)
class RandomPerturbation(EmbeddingNoise):
    distribution: perturb.Distribution = "uniform"
    # me5-small's 0.9 and 0.046 in embedding units (median token-embedding norm 1.604, d = 384: sigma's unit is
    # 1.604 / sqrt(384) = 0.0819)
    eps: float = 0.5610968
    sigma: float = 0.5619777
    num_samples: int = 1
    smoothed_prediction: bool = False
    num_test_samples: int = 8
    state_key = "train_generators"  # the key checkpoints have always used
    scaled_fields = ("eps", "sigma")
    coordinate_fields = ("sigma",)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.sigma >= 0, "sigma", self.sigma, "must be >= 0")
        require(self.num_samples >= 1, "num_samples", self.num_samples, "must be >= 1")
        require(self.num_test_samples >= 1, "num_test_samples", self.num_test_samples, "must be >= 1")

    def noise(self, embeds: torch.Tensor, positions: torch.Tensor, generator=None, model=None) -> torch.Tensor:
        """One draw of the configured noise for a batch of embeddings, on `positions` only (zero on padding)."""
        return self.perturbation.sample(embeds, perturb.token_mask(positions, embeds), generator, model)

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds, rest = split_embeddings(model, batch)
        positions = self.positions(batch["input_ids"], rest["attention_mask"])
        if self.num_samples > 1:
            embeds = embeds.repeat_interleave(self.num_samples, dim=0)
            rest = perturb.repeat_batch(rest, self.num_samples)
            positions = positions.repeat_interleave(self.num_samples, dim=0)
        delta = self.noise(embeds.detach(), positions, self.perturbation.training_generator(embeds.device), model)
        return model(inputs_embeds=embeds + delta, **rest).loss

    def predict(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.smoothed_prediction:
            return super().predict(model, inputs)
        embeds, rest = split_embeddings(model, inputs)
        # Re-seeded per batch: a prediction depends only on the model and the batch, not on what ran before.
        generator = self.perturbation.prediction_generator(embeds.device)
        positions = self.positions(inputs["input_ids"], rest["attention_mask"])
        votes = probs = None
        for _ in range(self.num_test_samples):
            delta = self.noise(embeds, positions, generator, model)
            logits = model(inputs_embeds=embeds + delta, **rest).logits.float()
            if votes is None:
                votes, probs = torch.zeros_like(logits), torch.zeros_like(logits)
            votes += nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(votes.dtype)
            probs += logits.softmax(dim=-1)
        return perturb.majority_vote(votes, probs / self.num_test_samples)

    def step_memory(self) -> StepMemory:
        """num_samples copies of the batch go through the model as one batch; until its forward returns, the
        repeated embeddings, their noise and the noisy sum are held beside the graph."""
        return StepMemory(batch_copies=self.num_samples, embedding_copies=3 * self.num_samples)

    def step_passes(self) -> StepPasses:
        """A forward and backward over num_samples x the batch; the smoothed classifier reads num_test_samples
        noisy copies of every evaluated item."""
        evaluated = self.num_test_samples if self.smoothed_prediction else 1
        return StepPasses(forward=self.num_samples, backward=self.num_samples, eval_forward=evaluated)
