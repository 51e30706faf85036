"""Pure tensor and text helpers shared by the noise methods (no model, no config, no global state).

Embedding perturbations are per token: every real token's embedding gets its own ball of radius eps (L2 or
L-inf over the hidden dimension), and padding gets exactly zero. A per-sentence ball would spread one radius
over all tokens, so the noise each word sees would shrink as sentences grow; the misalignment this noise
stands in for is a per-word offset between a word and its translation, whatever the sentence length.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import torch

# The allowed values of the `norm` and `distribution` fields (checked from these annotations).
Norm = Literal["l2", "linf"]
Distribution = Literal["uniform", "gaussian"]
BALL = "per-token"  # what results.json records as `ball`: the geometry above
TINY = 1e-12


def process_rank() -> int:
    """This process's rank in a distributed run (0 otherwise), so ranks draw different noise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def token_mask(attention_mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(batch, length, 1) mask in the dtype of `like`: 1 on real tokens, 0 on padding."""
    return attention_mask.unsqueeze(-1).to(like.dtype)


def token_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """(batch, length) norm of each token's perturbation."""
    return delta.norm(dim=-1) if norm == "l2" else delta.abs().amax(dim=-1)


def sample_ball(
    like: torch.Tensor, mask: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform samples from each real token's ball of radius eps (zero on padding), shaped like `like`."""
    if norm == "linf":
        delta = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype) * 2 - 1
        return delta * eps * mask
    # L2: a uniform direction (normalised Gaussian) times eps * U^(1/d), which is uniform in volume.
    direction = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(TINY)
    u = torch.rand((*like.shape[:-1], 1), generator=generator, device=like.device, dtype=like.dtype)
    return direction * (eps * u.pow(1.0 / like.shape[-1])) * mask


def sample_gaussian(
    like: torch.Tensor, mask: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Isotropic Gaussian noise N(0, sigma^2 I) on each real token (zero on padding)."""
    noise = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return noise * sigma * mask


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Each token's perturbation pulled back into its ball of radius eps."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    norms = delta.norm(dim=-1, keepdim=True)
    return delta * (eps / norms.clamp_min(TINY)).clamp(max=1.0)


def ascent_step(delta: torch.Tensor, grad: torch.Tensor, alpha: float, norm: str) -> torch.Tensor:
    """One steepest-ascent step of size alpha per token: the normalised gradient (L2) or its sign (L-inf)."""
    if norm == "linf":
        return delta + alpha * grad.sign()
    return delta + alpha * grad / grad.norm(dim=-1, keepdim=True).clamp_min(TINY)


def repeat_batch(inputs: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    """Every tensor repeated `times` along the batch (copies of an example are adjacent)."""
    if times == 1:
        return dict(inputs)
    return {k: v.repeat_interleave(times, dim=0) for k, v in inputs.items()}


def majority_vote(votes: torch.Tensor, mean_probs: torch.Tensor) -> torch.Tensor:
    """Most-voted label per row; ties go to the label with the higher mean probability."""
    return (votes + 0.5 * mean_probs).argmax(dim=-1)


# ---------------------------------------------------------------------------------------------- text

# A whitespace token: leading punctuation, an alphabetic core (letters only, any script), trailing punctuation.
# Anything else (digits, "don't", "well-known") is not a word we substitute and is left exactly as it is.
WORD = re.compile(r"^(\W*)([^\W\d_]+)(\W*)$")
SPACE = re.compile(r"(\s+)")


def split_word(token: str) -> tuple[str, str, str] | None:
    """(prefix, core, suffix) when the token is an alphabetic word with optional punctuation around it."""
    match = WORD.match(token)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def match_case(original: str, replacement: str) -> str:
    """The replacement with its first letter in the case of the original's first letter."""
    if not replacement:
        return replacement
    first = replacement[0].upper() if original[:1].isupper() else replacement[0].lower()
    return first + replacement[1:]


def fold(word: str) -> str:
    """Lower case without diacritics: 'Café' and 'cafe' fold to the same string."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words_of(text: str) -> list[str]:
    """The alphabetic cores of a text, in order (what `substitute` can replace)."""
    cores = []
    for token in text.split():
        parts = split_word(token)
        if parts:
            cores.append(parts[1])
    return cores


def lookup(neighbours: dict[str, list[str]], core: str) -> list[str]:
    """The word's neighbours: its exact form first, then its lower-cased form."""
    found = neighbours.get(core)
    if not found and core.lower() != core:
        found = neighbours.get(core.lower())
    return found or []


def substitute_verbatim(text: str, neighbours: dict[str, list[str]], rng) -> str:
    """Robust-XLT's RS-DA rule (its perturb.py): the text split on single spaces, each token looked up exactly as it
    is (punctuation and case included) and, when it has neighbours, replaced by a uniform draw from
    [token] + neighbours(token)."""
    tokens = text.split(" ")
    for i, token in enumerate(tokens):
        options = neighbours.get(token)
        if options:
            choice = rng.randrange(len(options) + 1)
            if choice:
                tokens[i] = options[choice - 1]
    return " ".join(tokens)


def substitute(text: str, neighbours: dict[str, list[str]], rng) -> str:
    """Replace every word that has neighbours by a uniform draw from {word} + neighbours(word): the rule for
    embedding neighbours, which are keyed by alphabetic cores (`substitute_verbatim` is Robust-XLT's).

    Whitespace is kept as it was; punctuation around a word stays; the first letter keeps its case.
    """
    pieces = SPACE.split(text)
    for i in range(0, len(pieces), 2):  # even positions are tokens, odd ones the whitespace between them
        parts = split_word(pieces[i])
        if parts is None:
            continue
        prefix, core, suffix = parts
        options = lookup(neighbours, core)
        if not options:
            continue
        choice = rng.randrange(len(options) + 1)
        if choice:
            pieces[i] = prefix + match_case(core, options[choice - 1]) + suffix
    return "".join(pieces)
