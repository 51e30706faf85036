"""The trainer's strategy resolved as Lightning resolves it (a `_target_` class, or a StrategyRegistry name) and
matched to its memory model; arguments the config leaves out are the job's defaults (issue #29 item 6)."""

from __future__ import annotations

import pytest
from helpers import compose_config

from xrobust.errors import XrobustError
from xrobust.plan.setup import fsdp_checkpointing
from xrobust.plan.strategies import MEMORY, MODELS, resolve_strategy


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        ("cpu", ("single", "", False)),
        ("ddp", ("ddp", "", True)),
        ("fsdp", ("fsdp", "FULL_SHARD", False)),
        ("fsdp2", ("fsdp", "FULL_SHARD", False)),
        ("deepspeed_zero3", ("deepspeed", "stage_3", False)),
    ],
)
def test_each_shipped_trainer_resolves_to_its_memory_model(trainer, expected):
    assert resolve_strategy(compose_config([f"trainer={trainer}"]).trainer.strategy) == expected


def test_names_and_targets_take_lightnings_defaults():
    assert resolve_strategy("deepspeed") == ("deepspeed", "stage_2", False)  # DeepSpeedStrategy(stage=2)
    assert resolve_strategy("deepspeed_stage_3_offload") == ("deepspeed", "stage_3", False)
    assert resolve_strategy("ddp_spawn") == ("ddp", "", False)
    assert resolve_strategy("fsdp_cpu_offload") == ("fsdp", "FULL_SHARD", False)
    assert resolve_strategy("single_device") == ("single", "", False)
    # DDPStrategy passes gradient_as_bucket_view on to torch's DistributedDataParallel, whose default is False.
    assert resolve_strategy({"_target_": "pytorch_lightning.strategies.DDPStrategy"}) == ("ddp", "", False)
    fsdp = {"_target_": "pytorch_lightning.strategies.FSDPStrategy", "sharding_strategy": "shard_grad_op"}
    assert resolve_strategy(fsdp) == ("fsdp", "SHARD_GRAD_OP", False)


@pytest.mark.parametrize("strategy", ["ddpx", "xla", {"_target_": "torch.nn.Linear"}, {"_target_": "no.such.Strategy"}])
def test_an_unknown_strategy_is_one_line(strategy):
    with pytest.raises(XrobustError, match="xrobust-plan does not know trainer.strategy"):
        resolve_strategy(strategy)


def test_every_matched_class_has_the_memory_model_of_its_kind():
    assert {model.kind for model in MODELS} == set(MEMORY)


def test_fsdp_activation_checkpointing_follows_the_policys_enabled_argument():
    assert not fsdp_checkpointing(compose_config(["trainer=fsdp"]).trainer.strategy)
    enabled = ["trainer=fsdp", "trainer.strategy.activation_checkpointing_policy.enabled=true"]
    assert fsdp_checkpointing(compose_config(enabled).trainer.strategy)
    unset = ["trainer=fsdp", "~trainer.strategy.activation_checkpointing_policy.enabled"]
    assert fsdp_checkpointing(compose_config(unset).trainer.strategy)  # transformer_layer_classes(enabled=True)
