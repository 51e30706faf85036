"""What one training step of a noise method costs beside plain fine-tuning, as the method itself declares it
(`NoiseMethod.step_memory()` / `step_passes()`), so `xrobust-plan` never keeps a table of methods of its own."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Activation memory of one training step, in units of plain fine-tuning's step on the same micro-batch."""

    # The model sees batch_copies x the micro-batch in each forward (rs_rp's num_samples noisy copies).
    batch_copies: int = 1
    # Forward graphs of that batch alive together when the backward starts (PGD's clean + adversarial losses).
    graphs: int = 1
    # Tensors the size of the micro-batch's input embeddings (batch x seq x hidden, parameter dtype) that the
    # method holds beside the graphs: the looked-up embeddings, the perturbation, its noisy copies.
    embedding_copies: int = 0


@dataclasses.dataclass(frozen=True)
class StepPasses:
    """Compute of one training step, in passes over the micro-batch (FLOPs: 2 N per token per forward pass)."""

    # Forward passes.
    forward: float = 1.0
    # Backward passes to the inputs only (autograd.grad w.r.t. a perturbation): no parameter gradient, ~1 forward.
    input_backward: float = 0.0
    # Backward passes that also produce the trained parameters' gradients (~2 forwards under full fine-tuning).
    backward: float = 1.0
    # Forward passes per evaluated (validation or test) item.
    eval_forward: float = 1.0
