"""`noise=adv`: adversarial training in the input-embedding space (Huang et al. 2021, section 3.1).

The perturbation delta lives in a per-token ball of radius eps (L2 or L-inf, zero on padding; see
xrobust/noise/perturb.py), starts at a uniform random point of the ball and takes `steps` (K) ascent steps of
size alpha on the classification loss, each followed by projection back into the ball.

- `variant: pgd` (Madry et al. 2018): the ascent gradients are taken w.r.t. delta only (`torch.autograd.grad`,
  so no parameter `.grad` is touched), the final delta is detached, and the returned loss is
  `clean_weight * L(e) + adv_weight * L(e + delta_K)`. clean_weight=0 is Madry et al.'s min-max objective,
  one forward+backward per step cheaper; the default 1 keeps the clean term (see conf/noise/adv.yaml).
- `variant: freelb` (Zhu et al. 2020): parameter gradients are averaged over the K ascent steps. Lightning's
  automatic optimisation zeroes gradients after `training_step` and then calls backward on what it returned,
  so instead of accumulating `.grad` by hand the method returns `mean_t L(e + delta_t)` with every delta_t
  detached: its backward is exactly FreeLB's accumulated gradient (each step's graph is kept until then).
  FreeLB proper has no separate clean term: noise.clean_weight=0.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from xrobust.noise import perturb
from xrobust.noise.base import require
from xrobust.noise.embeddings import EmbeddingNoise, split_embeddings
from xrobust.noise.step_cost import StepMemory, StepPasses


@dataclasses.dataclass(kw_only=True, eq=False)
class AdversarialTraining(EmbeddingNoise):
    variant: Literal["pgd", "freelb"] = "pgd"
    # me5-small's 0.1 and 0.06 in embedding units (its median token-embedding norm is 1.604)
    eps: float = 0.06234409
    alpha: float = 0.03740645
    steps: int = 2
    random_start: bool = True
    clean_weight: float = 1.0
    adv_weight: float = 1.0
    scaled_fields = ("eps", "alpha")  # the step size scales with the ball

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.alpha > 0, "alpha", self.alpha, "must be > 0")
        require(self.steps >= 1, "steps", self.steps, "must be >= 1")
        require(self.clean_weight >= 0, "clean_weight", self.clean_weight, "must be >= 0")
        require(self.adv_weight > 0, "adv_weight", self.adv_weight, "must be > 0 (adv_weight=0 is noise=none)")

    def start(self, embeds: torch.Tensor, mask: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        eps = self.radius("eps", model)
        if not self.random_start or eps == 0:
            return torch.zeros_like(embeds)
        return self.perturbation.sample(embeds, mask, self.perturbation.training_generator(embeds.device))

    def step(self, delta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One ascent step from delta along grad, projected back into the ball; detached."""
        moved = perturb.ascent_step(delta.detach(), grad, self.radius("alpha"), self.norm)
        return (perturb.project(moved, self.radius("eps"), self.norm) * mask).detach()

    def attack(
        self, model: nn.Module, embeds: torch.Tensor, rest: dict[str, torch.Tensor], positions: torch.Tensor = None
    ) -> torch.Tensor:
        """PGD: the detached delta after K ascent steps; no parameter gradient is computed or stored."""
        base = embeds.detach()
        mask = perturb.token_mask(rest["attention_mask"] if positions is None else positions, base)
        delta = self.start(base, mask, model)
        with torch.enable_grad():
            for _ in range(self.steps):
                delta.requires_grad_(True)
                loss = model(inputs_embeds=base + delta, **rest).loss
                (grad,) = torch.autograd.grad(loss, delta)
                delta = self.step(delta, grad, mask)
        return delta

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds, rest = split_embeddings(model, batch)
        positions = self.positions(batch["input_ids"], rest["attention_mask"])
        if self.variant == "pgd":
            delta = self.attack(model, embeds, rest, positions)
            adversarial = model(inputs_embeds=embeds + delta, **rest).loss
        else:
            adversarial = self.freelb_loss(model, embeds, rest, positions)
        if self.clean_weight == 0:
            return self.adv_weight * adversarial
        clean = model(inputs_embeds=embeds, **rest).loss
        return self.clean_weight * clean + self.adv_weight * adversarial

    def freelb_loss(
        self, model: nn.Module, embeds: torch.Tensor, rest: dict[str, torch.Tensor], positions: torch.Tensor
    ) -> torch.Tensor:
        """Mean of the losses at delta_0 .. delta_{K-1}, each graph kept for the parameters' backward."""
        mask = perturb.token_mask(positions, embeds)
        delta = self.start(embeds.detach(), mask, model)
        losses = []
        for t in range(self.steps):
            last = t == self.steps - 1
            delta.requires_grad_(not last)
            loss = model(inputs_embeds=embeds + delta, **rest).loss
            losses.append(loss)
            if not last:  # the ascent after the K-th loss would never be used
                (grad,) = torch.autograd.grad(loss, delta, retain_graph=True)
                delta = self.step(delta, grad, mask)
        return torch.stack(losses).mean()

    def step_memory(self) -> StepMemory:
        """PGD: each attack step's graph is freed by its autograd.grad, but the adversarial loss's graph is still
        alive when the clean loss's is built (two, with clean_weight > 0); the looked-up embeddings and delta are
        held beside them. FreeLB: every ascent step's graph is kept for the one backward, each holding its delta
        (the leaf of that graph), plus the clean graph with clean_weight > 0."""
        clean = int(self.clean_weight > 0)
        if self.variant == "pgd":
            return StepMemory(graphs=1 + clean, embedding_copies=2)
        return StepMemory(graphs=self.steps + clean, embedding_copies=1 + self.steps)

    def step_passes(self) -> StepPasses:
        """PGD: K attack forwards, each followed by a backward to delta only, then the adversarial (and clean)
        forward and one backward through both. FreeLB: K forwards, K - 1 backwards to delta, one backward through
        the K graphs (and the clean one)."""
        clean = int(self.clean_weight > 0)
        if self.variant == "pgd":
            return StepPasses(forward=self.steps + 1 + clean, input_backward=self.steps, backward=1 + clean)
        return StepPasses(forward=self.steps + clean, input_backward=self.steps - 1, backward=self.steps + clean)
