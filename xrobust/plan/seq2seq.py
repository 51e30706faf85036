"""The text-to-text head's share of a plan (`model.head=seq2seq`, xrobust/models/seq2seq.py): the whole
encoder-decoder is loaded and trained, the encoder reads each item once (the template's words added, a
multiple-choice item's choices left out), and the decoder reads every candidate string of every item (the label
strings, or the item's choices; EOS included) over the encoder's output, repeated per candidate.

Per item, with C candidates of t tokens over an encoder input of s tokens, N_enc / N_dec the encoder's and the
decoder's layer parameters, N_kv of them the cross-attention key and value projections (applied to the repeated
encoder output, s tokens per candidate), and V x h the LM head (vocabulary logits for every target token):

    parameter-tokens = N_enc s + C ((N_dec - N_kv) t + N_kv s + V h t)

which takes the place of N x tokens in cost.py's FLOPs (2 per parameter-token forward, as many backward to the
inputs, 2 more for the trained weights' gradients: every candidate is in the training step's graph, the gold one
alone in its loss). A decoder layer holds, per candidate sequence (n = b C sequences, D bytes an element):

    D (11 nth + 2 nsh + 5 ntf) + masks (3 nth + ntf)     [gated FFN; 2 ntf without the gate, no ntf mask]

(self-attention as an encoder layer's over t tokens, cross-attention's query side, and the key and value
projections over the s repeated encoder tokens), and the step holds the repeated encoder output (D nsh) and the
logits n t V three times over (16-bit, their fp32 copy, the fp32 log-softmax the loss keeps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xrobust.kinds import get_kind
from xrobust.plan.seq2seq_tokens import SEQ2SEQ

if TYPE_CHECKING:
    from xrobust.plan.inventory import Inventory
    from xrobust.plan.setup import Setup


def encoder_tokens(setup: Setup, tokens: float) -> float:
    """The encoder's tokens per item from data.py's figure (a pair, or every choice's pair of a multiple-choice
    item): the template's words added; for a kind that ranks each item's own choices (multiple choice) one pair
    less its choice, which the decoder reads."""
    if setup.head != SEQ2SEQ:
        return tokens
    if get_kind(setup.task_kind).ranks_own_choices:
        tokens = tokens / setup.candidates - setup.choice_tokens
    return tokens + setup.prompt_tokens


def parameter_tokens(setup: Setup, inv: Inventory, tokens: float) -> tuple[float, float]:
    """(all, trained) matmul parameter-tokens of one item whose data.py figure is `tokens` (module doc)."""
    trained_share = _trained_matmul(inv) / inv.matmul_params if inv.matmul_params else 0.0
    if setup.head != SEQ2SEQ:
        work = inv.matmul_params * tokens
        return work, work * trained_share
    s, t = encoder_tokens(setup, tokens), setup.target_tokens
    kv = inv.decoder_layers * inv.cross_kv_params
    decoder = inv.decoder_layers * inv.decoder_layer_params
    per_candidate = (decoder - kv) * t + kv * s + inv.output_projection * t
    work = inv.layers * inv.layer_params * s + setup.candidates * per_candidate
    return work, work * trained_share


def _trained_matmul(inv: Inventory) -> int:
    return inv.trainable - (inv.embeddings if inv.embeddings_trainable else 0)


def decoder_activation_bytes(
    setup: Setup, inv: Inventory, d: int, mask: int, items: int, materialised: bool
) -> tuple[float, float, float]:
    """(one decoder layer, the layers' inputs kept under checkpointing, the rest the step keeps: the repeated
    encoder output, the decoder's embeddings and the logits) for `items` items; zeros without a decoder.
    materialised: the attention scores are stored (eager attention, or on CPU), as activations.py decides."""
    if not inv.decoder_layers:
        return 0.0, 0.0, 0.0
    n, t, s, h, f, a = items * setup.candidates, setup.target_tokens, setup.seq_len, inv.hidden, inv.ffn, inv.heads
    if inv.gated:
        layer = d * (11 * n * t * h + 2 * n * s * h + 5 * n * t * f) + mask * (3 * n * t * h + n * t * f)
    else:
        layer = d * (11 * n * t * h + 2 * n * s * h + 2 * n * t * f) + mask * 3 * n * t * h
    if materialised:
        layer += (d * 2 + mask) * a * n * t * (t + s)  # self- and cross-attention scores and their masks
    inputs = inv.decoder_layers * d * n * t * h
    rest = d * n * s * h + (d * 3 + mask) * n * t * h + (d + 8) * n * t * inv.vocab
    return layer, inputs, rest
