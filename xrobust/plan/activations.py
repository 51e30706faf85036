"""Activation memory of one training step per device, noise method included.

Per layer and micro-batch b, sequence s, hidden h, FFN width f, heads a, D bytes per activation element (2 in
16-bit compute, 4 in 32-true) and 1-byte dropout masks (Korthikanti et al. 2022, "Reducing activation
recomputation in large transformer models", eq. 1, generalised from f = 4h to any f):

    layer = D (8 sbh + 2 sbf) + 2 sbh                     [BERT / XLM-R: 34 sbh at f = 4h, D = 2]
          + D 2 a s^2 b + a s^2 b                         [attention scores + softmax + dropout, only when the
                                                           kernel materialises them: eager attention, or on CPU]
    gated FFN (mT5):  2 sbf -> 5 sbf of activations + 1 sbf mask;  DeBERTa adds 2 a s^2 b D (c2p, p2c scores)
    LoRA (dropout > 0) adds, per adapted linear, its dropped-out input and mask: (D + 1) s b in_features

One graph holds L layers + the embeddings (D 3 sbh + sbh); without checkpointing the step peaks at its graphs
plus one more layer of working memory for the backward; with checkpointing each graph keeps only every layer's
input (L D sbh) + the embeddings, and two layers are live while one is recomputed.

A multiple-choice micro-batch of b items is b x choices sequences (the encoder-only head; the text-to-text head's
encoder reads each item once and its decoder every candidate: xrobust/plan/seq2seq.py adds the decoder's layers,
the repeated encoder output and the vocabulary logits). The noise method says what its step holds
(xrobust/noise/step_cost.py, `NoiseMethod.step_memory`): b becomes batch_copies x b (rs_rp num_samples), the graphs
part is multiplied by `graphs` (PGD with its clean term keeps the adversarial and the clean graph; FreeLB one per
ascent step), and `embedding_copies` tensors of b x s x h in the parameters' dtype come on top. Expect +-30%:
autocast keeps LayerNorm outputs in fp32, kernels keep extra buffers (tests/plan/test_plan_noise.py measures it on
CPU: within 10% for none, adv and rs_rp num_samples=2).
"""

from __future__ import annotations

from xrobust.plan.inventory import Inventory
from xrobust.plan.precision import HALF, HALF_TRUE
from xrobust.plan.seq2seq import decoder_activation_bytes
from xrobust.plan.setup import Setup

FLASH_KERNELS = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def activation_bytes(setup: Setup, inv: Inventory, checkpointing: bool) -> float:
    """Bytes of the step's activations (graphs, working layers and the noise method's embedding copies)."""
    noise = setup.noise_memory
    b = setup.batch_size * setup.choices * noise.batch_copies  # sequences in one forward
    s, h, f, a = setup.seq_len, inv.hidden, inv.ffn, inv.heads
    d = 2 if setup.precision in HALF else 4
    mask = 1 if inv.dropout > 0 else 0
    sbh, sbf, ss = s * b * h, s * b * f, a * s * s * b
    if inv.gated:
        layer = d * (8 * sbh + 5 * sbf) + mask * (2 * sbh + sbf)
    else:
        layer = d * (8 * sbh + 2 * sbf) + mask * 2 * sbh
    materialised = (
        setup.accelerator == "cpu"
        or (setup.attn_implementation or "eager") not in FLASH_KERNELS
        or inv.disentangled_attention
    )
    if materialised:
        layer += d * 2 * ss + mask * ss
        if inv.disentangled_attention:
            layer += d * 2 * ss
    if inv.lora_in_features and inv.lora_dropout > 0:
        layer += (d + 1) * s * b * inv.lora_in_features
    if inv.lora_ranks:
        layer += d * s * b * inv.lora_ranks
    shared = d * 3 * sbh + sbh
    if inv.relative_position_bias:
        shared += d * ss  # built once and shared by every layer
    embedding_bytes = 2 if setup.precision in HALF_TRUE else 4  # the lookup's output, in the weights' dtype
    extra = noise.embedding_copies * setup.batch_size * setup.choices * s * h * embedding_bytes
    # The text-to-text head's decoder over every candidate (xrobust/plan/seq2seq.py); zeros for the others.
    dec_layer, dec_inputs, dec_rest = decoder_activation_bytes(setup, inv, d, mask, b // setup.choices, materialised)
    if checkpointing:
        kept = inv.layers * d * sbh + shared + dec_inputs + dec_rest
        return noise.graphs * kept + 2 * max(layer, dec_layer) + extra
    graph = inv.layers * layer + shared + inv.decoder_layers * dec_layer + dec_rest
    return noise.graphs * graph + max(layer, dec_layer) + extra
