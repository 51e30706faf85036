"""What one job costs: optimizer steps, tokens, FLOPs, and time on a named GPU at a stated model FLOPs
utilisation (MFU), with the sharded strategies' communication as a floor under each step.

FLOPs per token, N = the parameters every token multiplies by (all but the input-embedding lookup), T_m = the
trained ones among them; one forward is 2 N, a backward 2 N to the inputs plus 2 T_m for the weight gradients
(full fine-tuning: 6 N per token for forward + backward, the usual 6 x parameters x tokens):

    train = 2 N (forward + input_backward) + backward (2 N + 2 T_m)   [+ 2 N per backward under checkpointing]
    eval  = 2 N eval_forward, over every validation run on the English dev set and every test set once

with the passes per micro-batch the noise method declares (`NoiseMethod.step_passes`, xrobust/noise/step_cost.py).
The text-to-text head (model.head=seq2seq) replaces N x tokens by its encoder's and decoder's parameter-tokens
per item: every candidate string through the decoder and the vocabulary-sized LM head (xrobust/plan/seq2seq.py).
Attention-score FLOPs (4 s h per layer and token in the forward) are left out: under 3% at s <= 128 for h >= 384.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from xrobust.errors import XrobustError
from xrobust.plan.data import DataStats
from xrobust.plan.gpus import Gpu
from xrobust.plan.inventory import Inventory
from xrobust.plan.read_out_passes import read_out_passes
from xrobust.plan.seq2seq import parameter_tokens
from xrobust.plan.setup import Setup
from xrobust.plan.strategies import memory_model


@dataclass(frozen=True)
class JobCost:
    """One job's work and time on its devices."""

    optimizer_steps: int
    train_examples: float
    train_tokens: float
    eval_tokens: float
    train_flops: float
    eval_flops: float
    devices: int
    compute_s: float  # at peak x MFU on every device
    communication_s: float  # the sharded strategies' gathers and reductions at link speed (overlapped)

    @property
    def flops(self) -> float:
        return self.train_flops + self.eval_flops

    @property
    def wall_s(self) -> float:
        return max(self.compute_s, self.communication_s)

    @property
    def gpu_hours(self) -> float:
        return self.wall_s * self.devices / 3600


def micro_batches_per_epoch(examples: int, batch_size: int, world: int, limit) -> int:
    """Micro-batches each rank runs per epoch, after trainer.limit_train_batches (a count or a fraction)."""
    batches = math.ceil(examples / (batch_size * world))
    if limit is None:
        return batches
    if isinstance(limit, float) and limit <= 1.0:
        return max(1, int(batches * limit))
    return min(batches, int(limit))


def _limited(items: int, batch_size: int, limit) -> int:
    """Items an evaluation loop reads under trainer.limit_{val,test}_batches."""
    if limit is None:
        return items
    if isinstance(limit, float) and limit <= 1.0:
        return min(items, math.ceil(items * limit))
    return min(items, int(limit) * batch_size)


def training_schedule(trainer: DictConfig, setup: Setup, stats: DataStats) -> tuple[int, int, int, int]:
    """(optimizer steps, micro-batches per rank, of them per epoch, validation runs) of a fit, as Lightning
    counts them."""
    limit = trainer.limit_train_batches
    per_epoch = micro_batches_per_epoch(stats.train_examples, setup.batch_size, setup.world, limit)
    steps_per_epoch = math.ceil(per_epoch / setup.accumulate)
    epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
    max_steps = trainer.max_steps if trainer.max_steps not in (None, -1) else None
    if epochs is None and max_steps is None:
        raise XrobustError("xrobust-plan needs trainer.max_epochs or trainer.max_steps to count the steps")
    steps = min(max_steps or math.inf, (epochs or math.inf) * steps_per_epoch)
    full_epochs, rest = divmod(int(steps), steps_per_epoch)
    micro_batches = full_epochs * per_epoch + min(rest * setup.accumulate, per_epoch)
    if trainer.limit_val_batches == 0:
        return int(steps), micro_batches, per_epoch, 0
    interval = trainer.val_check_interval
    if interval is None or (isinstance(interval, float) and interval >= 1.0):
        every = per_epoch
    else:
        every = max(1, int(per_epoch * interval)) if isinstance(interval, float) else int(interval)
    each = trainer.check_val_every_n_epoch
    if each is None:
        return int(steps), micro_batches, per_epoch, micro_batches // every
    validations = sum(per_epoch // every for epoch in range(full_epochs) if (epoch + 1) % each == 0)
    if (full_epochs + 1) % each == 0:
        validations += (micro_batches - full_epochs * per_epoch) // every
    return int(steps), micro_batches, per_epoch, validations


def job_cost(cfg: DictConfig, setup: Setup, inv: Inventory, stats: DataStats, gpu: Gpu, mfu: float) -> JobCost:
    trainer, data = cfg.trainer, cfg.data
    steps, micro_batches, per_epoch, validations = training_schedule(trainer, setup, stats)
    full_epochs, rest = divmod(micro_batches, per_epoch)
    per_batch = setup.batch_size * setup.world  # every micro-batch full but an epoch's last
    train_examples = full_epochs * min(stats.train_examples, per_epoch * per_batch) + rest * per_batch
    train_tokens = train_examples * stats.train_tokens

    eval_batch = int(data.eval_batch_size)
    dev_items = _limited(stats.dev_examples, eval_batch, trainer.limit_val_batches)
    eval_tokens = validations * dev_items * stats.dev_tokens
    eval_work = validations * dev_items * parameter_tokens(setup, inv, stats.dev_tokens)[0]
    test_runs = 2 if cfg.eval.perturbed else 1  # the perturbed read-out: one more forward
    for name, items in stats.test_examples.items():
        tested = test_runs * _limited(items, eval_batch, trainer.limit_test_batches)
        tested += read_out_passes(cfg.get("eval"), items, setup.noise_passes.eval_forward)  # eval.alignment, ...
        eval_tokens += tested * stats.test_tokens[name]
        eval_work += tested * parameter_tokens(setup, inv, stats.test_tokens[name])[0]

    passes = setup.noise_passes
    # Parameter-tokens of one training item: N x tokens, or the text-to-text head's encoder + decoder passes.
    work, trained = parameter_tokens(setup, inv, stats.train_tokens)
    recompute = passes.backward + passes.input_backward if setup.checkpointing else 0.0
    per_item = 2 * work * (passes.forward + passes.input_backward + recompute) + passes.backward * 2 * (work + trained)
    train_flops = per_item * train_examples
    eval_flops = 2 * passes.eval_forward * eval_work
    compute_s = (train_flops + eval_flops) / (setup.world * gpu.peak_flops * mfu)
    per_micro_batch, per_step = communication_bytes(setup, inv)
    bandwidth = (gpu.link_gbs if setup.num_nodes == 1 else gpu.network_gbs) * 1e9
    return JobCost(
        optimizer_steps=steps,
        train_examples=train_examples,
        train_tokens=train_tokens,
        eval_tokens=eval_tokens,
        train_flops=train_flops,
        eval_flops=eval_flops,
        devices=setup.world,
        compute_s=compute_s,
        communication_s=(per_micro_batch * micro_batches + per_step * steps) / bandwidth
        if setup.accelerator == "gpu"
        else 0.0,
    )


def communication_bytes(setup: Setup, inv: Inventory) -> tuple[float, float]:
    """Bytes each device sends (per micro-batch, per optimizer step): ring collectives move (n - 1) / n of the
    buffer per gather or reduce-scatter.

    FSDP / ZeRO-3 gather the 16-bit weights for every pass through the model (reshard after forward) and
    reduce-scatter fp32 gradients after every backward; DDP / ZeRO-1/2 all-reduce the gradients once per optimizer
    step (no_sync while accumulating), 2 (n - 1) / n of them.
    """
    world = setup.world
    if world == 1:
        return 0.0, 0.0
    ring = (world - 1) / world
    passes = setup.noise_passes
    if memory_model(setup).shards(setup):
        gathers = passes.forward + passes.input_backward + passes.backward
        return (gathers * 2 * inv.total + passes.backward * 4 * inv.trainable) * ring, 0.0
    return 0.0, 2 * 4 * inv.trainable * ring
