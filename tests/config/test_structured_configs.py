"""The noise, callbacks and root schemas (xrobust/config/noise_schemas.py, callback_schemas.py, root_schema.py): a
misspelled or mistyped key is one line naming it at composition; each schema is what its class takes, in its YAML's
order; every noise x callbacks option composes as before."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from helpers import CONF_DIR, compose_config
from hydra.utils import get_object
from omegaconf import OmegaConf

from xrobust.config.callback_schemas import CALLBACK_SCHEMAS
from xrobust.config.checks import validate
from xrobust.config.noise_schemas import NOISE_SCHEMAS
from xrobust.config.root_schema import RootConfig
from xrobust.errors import XrobustError
from xrobust.noise.augmentation import NeighbourSpec
from xrobust.run.hashing import config_hash

NOISES = sorted(p.stem for p in (CONF_DIR / "noise").glob("*.yaml"))
CALLBACKS = sorted(p.stem for p in (CONF_DIR / "callbacks").glob("*.yaml"))

# A misspelled and a mistyped key of each new schema, and the one line each gets.
REFUSALS = [
    (
        ["noise=rs_rp", "noise.epss=0.1"],
        "noise.epss is not a config key (noise has no 'epss'; did you mean noise.eps?)",
    ),
    (["noise=adv", "noise.steps=two"], "noise.steps='two' (must be an integer)"),
    (["noise=none", "noise.eps=0.1"], "noise.eps is not a config key (noise has no 'eps'; it has: _target_, name)"),
    (
        ["noise=code_switch", "noise.neighbours.kk=4"],
        "noise.neighbours.kk is not a config key (noise.neighbours has no 'kk'; did you mean noise.neighbours.k?)",
    ),
    (["noise=code_switch", "noise.neighbours.k=many"], "noise.neighbours.k='many' (must be an integer)"),
    (["noise=rs_da", "noise.text_fields=premise"], "noise.text_fields='premise' (must be a list or null)"),
    (
        ["intermediate=xnli", "intermediate.noise.eps=0.1"],
        "intermediate.noise.eps is not a config key (intermediate.noise has no 'eps'; it has: _target_, name)",
    ),
    (
        ["callbacks=early_stopping", "callbacks.early_stopping.patiense=3"],
        "callbacks.early_stopping.patiense is not a config key (callbacks.early_stopping has no 'patiense'; "
        "did you mean callbacks.early_stopping.patience?)",
    ),
    (
        ["callbacks.finite_loss_guard.check_every_n_steps=often"],
        "callbacks.finite_loss_guard.check_every_n_steps='often' (must be an integer)",
    ),
    (
        ["callbacks.model_checkpoint.save_last=[a]"],
        "callbacks.model_checkpoint.save_last=['a'] (must be true or false or a string or null)",
    ),
    (["seedd=1"], "seedd is not a config key (the root config has no 'seedd'; did you mean seed?)"),
    (["skip_completed=maybe"], "skip_completed='maybe' (must be true or false)"),
    (["ckpt_path=[1]"], "ckpt_path=[1] (must be a string or null)"),
    (
        ["checkpoint.keep_after_succes=all"],
        "checkpoint.keep_after_succes is not a config key (checkpoint has no 'keep_after_succes'; "
        "did you mean checkpoint.keep_after_success?)",
    ),
]


@pytest.mark.parametrize(("overrides", "line"), REFUSALS, ids=[o[-1] for o, _ in REFUSALS])
def test_a_bad_noise_callbacks_or_root_key_fails_at_composition_in_one_line(overrides, line):
    with pytest.raises(XrobustError) as caught:
        compose_config(overrides)
    assert str(caught.value) == f"invalid config: {line}"


@pytest.mark.parametrize("callbacks", CALLBACKS)
@pytest.mark.parametrize("noise", NOISES)
def test_every_noise_and_callbacks_option_composes_and_validates(noise, callbacks, tmp_path):
    cfg = compose_config([f"noise={noise}", f"callbacks={callbacks}"], output_dir=tmp_path)
    assert cfg.noise.name == noise and "model_checkpoint" in cfg.callbacks
    assert {key for key in OmegaConf.missing_keys(cfg) if not key.startswith("hydra.")} == set()
    validate(cfg)


def own_keys(path) -> tuple[dict, str]:
    """A YAML's keys without its defaults list, and the schema that list names first."""
    raw = OmegaConf.to_container(OmegaConf.load(path))
    return raw, raw.pop("defaults")[0].split("@")[0].removeprefix("schema/")


@pytest.mark.parametrize("noise", NOISES)
def test_each_noise_schema_is_what_its_class_takes_in_its_yamls_order(noise):
    raw, name = own_keys(CONF_DIR / "noise" / f"{noise}.yaml")
    schema = NOISE_SCHEMAS[name]
    assert list(raw) == [spec.name for spec in dataclasses.fields(schema)], "the composed keys keep their place"
    method = get_object(raw["_target_"])
    takes = {spec.name for spec in dataclasses.fields(method) if spec.init}
    assert {spec.name for spec in dataclasses.fields(schema)} - {"_target_"} == takes
    if "neighbours" in raw:
        nested = {spec.name: spec for spec in dataclasses.fields(schema)}["neighbours"].default_factory
        neighbours = dataclasses.fields(nested)
        assert list(raw["neighbours"]) == [spec.name for spec in neighbours]
        assert set(raw["neighbours"]) <= {spec.name for spec in dataclasses.fields(NeighbourSpec)}


@pytest.mark.parametrize("option", CALLBACKS)
def test_each_callback_schema_is_what_its_class_takes_in_its_yamls_order(option):
    raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "callbacks" / f"{option}.yaml"))
    typed = [entry.split("@")[1] for entry in raw.pop("defaults") if entry.startswith("schema/")]
    assert typed == list(raw), "every callback of the option is typed, in its order"
    for name, node in raw.items():
        schema = CALLBACK_SCHEMAS[name]
        assert list(node) == [spec.name for spec in dataclasses.fields(schema)], name
        takes = set(inspect.signature(get_object(node["_target_"])).parameters)
        assert set(node) - {"_target_"} <= takes, name


def test_the_root_schema_types_every_root_key_and_the_yamls_own_keys_first():
    own = [key for key in OmegaConf.load(CONF_DIR / "train.yaml") if key != "defaults"]
    fields = [spec.name for spec in dataclasses.fields(RootConfig)]
    assert fields[: len(own)] == own
    for overrides in ([], ["experiment=size_grid"], ["intermediate=xnli"]):
        assert set(compose_config(overrides)) - {"hydra"} <= set(fields)


def test_a_callback_can_still_be_dropped(tmp_path):
    cfg = compose_config(["~callbacks.model_checkpoint", "~callbacks.last_every"], output_dir=tmp_path)
    assert list(cfg.callbacks) == ["crash_checkpoint", "finite_loss_guard", "requeue"]
    validate(cfg)


def test_a_config_read_back_untyped_still_has_its_root_keys_typed(tmp_path):
    """xrobust-eval loads a job's config from its folder, untyped: the start-up check types seed there."""
    container = OmegaConf.to_container(compose_config([], output_dir=tmp_path))
    container.pop("hydra")
    untyped = OmegaConf.create({**container, "seed": "abc"})
    with pytest.raises(XrobustError, match=r"^invalid config: seed='abc' \(must be an integer\)$"):
        validate(untyped)


def test_an_unset_trainer_options_is_no_part_of_the_hash(tmp_path):
    """The root declares trainer_options (an experiment's) as null: jobs composed before keep their hash."""
    cfg = compose_config([], output_dir=tmp_path)
    assert cfg.trainer_options is None
    untyped = OmegaConf.create(OmegaConf.to_container(cfg))
    del untyped["trainer_options"]
    assert config_hash(untyped) == config_hash(cfg)
