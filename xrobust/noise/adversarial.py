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

from typing import Any

import torch
from torch import nn

from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, as_float, as_int, one_of, require
from xrobust.noise.random_perturbation import RankGenerators, split_embeddings

VARIANTS = ("pgd", "freelb")


class AdversarialTraining(NoiseMethod):
    name = "adv"

    def __init__(
        self,
        name: str = "adv",
        variant: str = "pgd",
        norm: str = "l2",
        eps: float = 0.1,
        alpha: float = 0.06,
        steps: int = 2,
        random_start: bool = True,
        clean_weight: float = 1.0,
        adv_weight: float = 1.0,
        seed: int = 1,
    ):
        self.name = name
        self.variant = one_of("variant", variant, VARIANTS)
        self.norm = one_of("norm", norm, perturb.NORMS)
        self.eps = as_float("eps", eps)
        require(self.eps >= 0, "eps", eps, "must be >= 0")
        self.alpha = as_float("alpha", alpha)
        require(self.alpha > 0, "alpha", alpha, "must be > 0")
        self.steps = as_int("steps", steps)
        require(self.steps >= 1, "steps", steps, "must be >= 1")
        require(isinstance(random_start, bool), "random_start", random_start, "must be a bool")
        self.random_start = random_start
        self.clean_weight = as_float("clean_weight", clean_weight)
        require(self.clean_weight >= 0, "clean_weight", clean_weight, "must be >= 0")
        self.adv_weight = as_float("adv_weight", adv_weight)
        require(self.adv_weight > 0, "adv_weight", adv_weight, "must be > 0 (adv_weight=0 is noise=none)")
        self.seed = as_int("seed", seed)
        self.generators = RankGenerators(self.seed)

    def state_dict(self) -> dict[str, Any]:
        return {"generators": self.generators.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generators.load_state_dict(state.get("generators", {}))

    def start(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.random_start or self.eps == 0:
            return torch.zeros_like(embeds)
        return perturb.sample_ball(embeds, mask, self.eps, self.norm, self.generators.get(embeds.device))

    def step(self, delta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One ascent step from delta along grad, projected back into the ball; detached."""
        moved = perturb.ascent_step(delta.detach(), grad, self.alpha, self.norm)
        return (perturb.project(moved, self.eps, self.norm) * mask).detach()

    def attack(self, model: nn.Module, embeds: torch.Tensor, rest: dict[str, torch.Tensor]) -> torch.Tensor:
        """PGD: the detached delta after K ascent steps; no parameter gradient is computed or stored."""
        base = embeds.detach()
        mask = perturb.token_mask(rest["attention_mask"], base)
        delta = self.start(base, mask)
        with torch.enable_grad():
            for _ in range(self.steps):
                delta.requires_grad_(True)
                loss = model(inputs_embeds=base + delta, **rest).loss
                (grad,) = torch.autograd.grad(loss, delta)
                delta = self.step(delta, grad, mask)
        return delta

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds, rest = split_embeddings(model, batch)
        if self.variant == "pgd":
            delta = self.attack(model, embeds, rest)
            adversarial = model(inputs_embeds=embeds + delta, **rest).loss
        else:
            adversarial = self.freelb_loss(model, embeds, rest)
        if self.clean_weight == 0:
            return self.adv_weight * adversarial
        clean = model(inputs_embeds=embeds, **rest).loss
        return self.clean_weight * clean + self.adv_weight * adversarial

    def freelb_loss(self, model: nn.Module, embeds: torch.Tensor, rest: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the losses at delta_0 .. delta_{K-1}, each graph kept for the parameters' backward."""
        mask = perturb.token_mask(rest["attention_mask"], embeds)
        delta = self.start(embeds.detach(), mask)
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

    def params(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "variant": self.variant,
            "norm": self.norm,
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "ball": "per-token",
            "random_start": self.random_start,
            "clean_weight": self.clean_weight,
            "adv_weight": self.adv_weight,
            "seed": self.seed,
        }
