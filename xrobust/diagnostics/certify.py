"""eval.certify: Cohen, Rosenfeld & Kolter (2019)'s CERTIFY for the classifier smoothed by the noise `noise=rs_rp`
(`noise.distribution=gaussian`) trains with: N(0, sigma^2) per coordinate on the input embedding of every token
the noise perturbs, sampled by the method's own Perturbation (its sigma in embedding units, its token mask).

Per item: n0 noisy copies guess the class cA, n more count how often it wins; pA_lower is the one-sided (1 - alpha)
Clopper-Pearson bound on that rate; the smoothed classifier abstains when pA_lower < 1/2 and is otherwise
certified within radius sigma * Phi^-1(pA_lower) (Cohen et al.'s Theorem 1) in the Frobenius norm over the
perturbed tokens' embeddings. Certified accuracy at radius r: correct, not abstained, and radius >= r."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from scipy.stats import beta, norm

from xrobust.config.fields import require
from xrobust.diagnostics.readout import Readout
from xrobust.errors import XrobustError
from xrobust.noise.embeddings import split_embeddings
from xrobust.noise.random_perturbation import RandomPerturbation

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from xrobust.data.datamodule import TransferDataModule
    from xrobust.lightning.module import TransferModule

RANDOM_PERTURBATION = f"{RandomPerturbation.__module__}.{RandomPerturbation.__qualname__}"
ABSTAIN = -1
# What the certificate covers, in results.json (`covers`): one sentence, filled in per model.
COVERS = (
    "the smoothed classifier g(x) = argmax_c P(f(x + delta) = c), with delta ~ N(0, sigma^2 I) added to the input "
    "sequence's token embeddings ({tokens}; sigma = {sigma:.6g} embedding units per coordinate), keeps its "
    "prediction under any additive change of those embeddings whose Frobenius norm (L2 over all perturbed tokens' "
    "coordinates together) is below the item's radius, in embedding units; radii are also given relative to the "
    "model's median token-embedding L2 norm ({median:.6g})"
)


def check_config(cfg: DictConfig) -> None:
    """At start-up: the certificate is Gaussian smoothing's, so eval.certify needs noise=rs_rp with a Gaussian."""
    block = cfg.eval.get("certify")
    if not (block and block.get("enabled", False)):
        return
    noise = cfg.noise
    gaussian = noise.get("_target_") == RANDOM_PERTURBATION and noise.get("distribution") == "gaussian"
    require(
        gaussian,
        "eval.certify.enabled",
        True,
        "certifies Gaussian smoothing only: needs noise=rs_rp with noise.distribution=gaussian, "
        f"got noise={noise.get('name')} distribution={noise.get('distribution')}",
    )
    radii = list(block.radii)
    require(all(r >= 0 for r in radii), "eval.certify.radii", radii, "must all be >= 0 (relative radii)")


@dataclass(frozen=True)
class Certificate:
    """One item's CERTIFY outcome: the smoothed prediction (ABSTAIN), pA_lower, the radius (0 when abstained)."""

    pred: int
    p_lower: float
    radius: float


def lower_confidence_bound(successes: int, trials: int, alpha: float) -> float:
    """The one-sided (1 - alpha) Clopper-Pearson lower bound on a binomial rate: Cohen et al.'s
    proportion_confint(nA, n, alpha=2 * alpha, method="beta")[0], i.e. Beta(alpha; nA, n - nA + 1)."""
    return 0.0 if successes == 0 else float(beta.ppf(alpha, successes, trials - successes + 1))


def certify_counts(guess_counts: torch.Tensor, counts: torch.Tensor, alpha: float, sigma: float) -> Certificate:
    """CERTIFY from the class counts of the n0 selection draws and the n estimation draws."""
    guess = int(guess_counts.argmax())
    p_lower = lower_confidence_bound(int(counts[guess]), int(counts.sum()), alpha)
    if p_lower < 0.5:
        return Certificate(ABSTAIN, p_lower, 0.0)
    return Certificate(guess, p_lower, float(sigma * norm.ppf(p_lower)))


def noisy_counts(
    model: Any,
    noise: RandomPerturbation,
    inputs: dict[str, torch.Tensor],
    draws: int,
    batch: int,
    generator: torch.Generator,
    num_labels: int,
) -> torch.Tensor:
    """How often the base classifier predicts each label over `draws` noisy copies of one item (`inputs`, batch 1),
    `batch` copies a forward; the noise is the method's own draw (noise.noise: its sigma, its token mask)."""
    embeds, rest = split_embeddings(model, inputs)
    positions = noise.positions(inputs["input_ids"], rest["attention_mask"])
    counts = torch.zeros(num_labels, dtype=torch.long)
    left = draws
    while left:
        size = min(batch, left)
        copies = embeds.expand(size, *embeds.shape[1:])
        delta = noise.noise(copies, positions.expand(size, *positions.shape[1:]), generator, model)
        repeated = {k: v.expand(size, *v.shape[1:]) for k, v in rest.items()}
        predicted = model(inputs_embeds=copies + delta, **repeated).logits.argmax(dim=-1)
        counts += torch.bincount(predicted.cpu(), minlength=num_labels)
        left -= size
    return counts


def certify_item(
    model: Any,
    noise: RandomPerturbation,
    inputs: dict[str, torch.Tensor],
    settings: dict[str, Any],
    generator: torch.Generator,
    num_labels: int,
) -> Certificate:
    """CERTIFY(f, sigma, x, n0, n, alpha) on one item; the selection and estimation draws are independent (one
    stream, consecutive)."""
    guess = noisy_counts(model, noise, inputs, settings["n0"], settings["batch"], generator, num_labels)
    counts = noisy_counts(model, noise, inputs, settings["n"], settings["batch"], generator, num_labels)
    return certify_counts(guess, counts, settings["alpha"], noise.radius("sigma", model))


def selected_items(rows: Any, limit: int | None) -> Any:
    """The first `limit` items of a test set in its order (every item for None): the same ids in every language of
    a parallel set."""
    return rows if limit is None else rows.select(range(min(limit, len(rows))))


def certified_accuracy(certificates: list[tuple[int, Certificate]], radius: float) -> float:
    """Percent of items predicted right, not abstained, with a radius of at least `radius`."""
    hits = sum(c.pred == gold and c.pred != ABSTAIN and c.radius >= radius for gold, c in certificates)
    return 100.0 * hits / len(certificates) if certificates else 0.0


def certify_test_set(
    module: TransferModule, datamodule: TransferDataModule, settings: dict[str, Any], name: str, index: int
) -> tuple[list[tuple[int, Certificate]], list[dict[str, Any]]]:
    """The first `items` items of one test set certified: (gold, certificate) per item, and certify.tsv's rows."""
    model, noise = module.model, module.noise
    device = next(model.parameters()).device
    collate = datamodule.kind.collator_for(datamodule.tokenizer, datamodule.head)
    num_labels = len(datamodule.task.label_names)
    certificates, rows = [], []
    for position, item in enumerate(selected_items(datamodule.test_sets[name], settings["items"])):
        batch = collate([item])
        item_id, gold = int(batch.pop("id")[0]), int(batch.pop("labels")[0])
        inputs = {k: v.to(device) for k, v in batch.items()}
        # The noise's own seeding of a test batch, per (test set, item): an item's draws do not depend on which
        # items were certified before it.
        generator = noise.perturbation.test_batch_generator(device, index, position)
        found = certify_item(model, noise, inputs, settings, generator, num_labels)
        certificates.append((gold, found))
        rows.append(
            {
                "language": name,
                "id": item_id,
                "gold": gold,
                "pred": found.pred,
                "p_lower": round(found.p_lower, 6),
                "radius": round(found.radius, 6),
                "correct": int(found.pred == gold),
            }
        )
    return certificates, rows


def read_out(module: TransferModule, datamodule: TransferDataModule, settings: dict[str, Any], stage: str) -> Readout:
    """Every test set's first `items` items certified; certified accuracy at each radius per test set."""
    noise, model = module.noise, module.model
    if not isinstance(noise, RandomPerturbation) or noise.distribution != "gaussian":
        raise XrobustError("eval.certify needs noise=rs_rp with noise.distribution=gaussian (checked at start-up)")
    if noise.perturbation.scale is None:  # eps_scale=absolute never needed it; the relative radii do
        noise.perturbation.measure(model)
    sigma, median = noise.radius("sigma", model), noise.perturbation.scale.median_norm
    radii = [float(r) for r in settings["radii"]]
    rows, per_language = [], {}
    for index, name in enumerate(datamodule.test_sets):
        certificates, found_rows = certify_test_set(module, datamodule, settings, name, index)
        rows += found_rows
        abstained = sum(c.pred == ABSTAIN for _, c in certificates)
        per_language[name] = {
            "items": len(certificates),
            "abstained": abstained / len(certificates) if certificates else 0.0,
            "certified_accuracy": {str(r): certified_accuracy(certificates, r * median) for r in radii},
        }
    tokens = (
        "every real token, special ones included, padding untouched"
        if noise.perturb_special_tokens
        else "every real token but the special ones (CLS, SEP, ...), which keep theirs, as padding does"
    )
    max_radius = sigma * float(norm.ppf(settings["alpha"] ** (1 / settings["n"])))
    summary = {
        "covers": COVERS.format(tokens=tokens, sigma=sigma, median=median),
        "sigma": sigma,
        "sigma_relative": noise.perturbation.measured()["sigma_relative"],
        "median_embedding_norm": median,
        "n0": settings["n0"],
        "n": settings["n"],
        "alpha": settings["alpha"],
        "radii": radii,
        "radii_absolute": [r * median for r in radii],
        "radius_scale": "radii relative to the median token-embedding L2 norm; radii_absolute in embedding units",
        # All n draws for the class: the largest radius any item can get at these n and alpha.
        "max_radius": max_radius,
        "max_radius_relative": max_radius / median,
        "per_language": per_language,
    }
    return Readout(summary=summary, rows=rows)
