"""Every bad input of issue #27 (4, 5, 8) is one line naming the key, file or line, refused before the model loads;
a run folder that stops taking writes after training keeps the trained model and says where."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT, compose_config, run_cli
from helpers.small_runs import overrides, small_sample
from helpers.tiny_models import tiny_checkpoint
from omegaconf import OmegaConf

from xrobust.config.checks import validate
from xrobust.data.sources import read_labelled_jsonl, read_labelled_tsv
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.run.results import RESULTS_FILE
from xrobust.train import run

# Each override and what its line must name.
BAD_CONFIG = [
    ("optim.lr=abc", "optim.lr='abc' (must be a finite number > 0)"),
    ("optim.lr=inf", "optim.lr=inf (must be a finite number > 0)"),
    ("data.batch_size=abc", "data.batch_size='abc' (must be an integer >= 1)"),
    ("data.batch_size=2.5", "data.batch_size=2.5 (must be an integer >= 1)"),
    ("trainer.max_epochs=abc", "trainer.max_epochs='abc' (must be an integer >= -1"),
    ("trainer.max_epochs=-3", "trainer.max_epochs=-3 (must be an integer >= -1"),
    ("eval.perturbation.eps=-1", "eval.perturbation.eps=-1 (must be a finite number >= 0)"),
    ("+noise.epss=0.1", "+noise.epss is not a config key (xrobust.noise.none.NoNoise takes no 'epss'"),
    ("+data.batch_sizee=4", "did you mean data.batch_size?"),
    ("+trainer.limit_test_batchs=2", "did you mean trainer.limit_test_batches?"),
    ("+foo=1", "+foo is not a config key (the root config has no 'foo'"),
    ("+optim.lrr=0.1", "+optim.lrr is not a config key (optim has no 'lrr'; did you mean optim.lr?)"),
    ("ckpt_path=/nonexistent.ckpt", "ckpt_path='/nonexistent.ckpt' (must be null, last or an existing"),
    ("data.dev_split=test", "data.dev_split='test' (must differ from data.test_split"),
]


@pytest.mark.parametrize(("override", "line"), BAD_CONFIG, ids=[o for o, _ in BAD_CONFIG])
def test_a_bad_config_value_or_key_is_one_line_naming_it(override, line, tmp_path):
    with pytest.raises(XrobustError) as caught:  # at composition (a typed group's schema) or at start-up
        validate(compose_config([override], output_dir=tmp_path))
    assert line in str(caught.value) and "\n" not in str(caught.value)


# A misspelled and a mistyped key of each group with a schema (xrobust/config/schemas.py): refused as Hydra composes.
SCHEMA_REFUSALS = [
    (
        "task.lable_names=[a,b]",
        "task.lable_names is not a config key (task has no 'lable_names'; did you mean task.label_names?)",
    ),
    ("task.source_tested=maybe", "task.source_tested='maybe' (must be true or false)"),
    (
        "data.val_fractoin=0.2",
        "data.val_fractoin is not a config key (data has no 'val_fractoin'; did you mean data.val_fraction?)",
    ),
    ("data.val_fraction=half", "data.val_fraction='half' (must be a finite number in (0, 1))"),
    (
        "eval.perturbation.epss=0.5",
        "eval.perturbation.epss is not a config key (eval.perturbation has no 'epss'; "
        "did you mean eval.perturbation.eps?)",
    ),
    ("eval.save_predictions=[a]", "eval.save_predictions=['a'] (must be true or false)"),
    (
        "optim.warmup_ratoi=0.2",
        "optim.warmup_ratoi is not a config key (optim has no 'warmup_ratoi'; did you mean optim.warmup_ratio?)",
    ),
    ("optim.weight_decay=lots", "optim.weight_decay='lots' (must be a finite number >= 0)"),
]


@pytest.mark.parametrize(("override", "line"), SCHEMA_REFUSALS, ids=[o for o, _ in SCHEMA_REFUSALS])
def test_a_typed_groups_bad_key_fails_at_composition_in_one_line(override, line):
    with pytest.raises(XrobustError) as caught:
        compose_config([override])
    assert str(caught.value) == f"invalid config: {line}"


def test_a_task_read_from_a_mapping_is_typed_by_the_same_schema():
    raw = {**OmegaConf.to_container(compose_config([]).task), "packaged": "maybe"}
    with pytest.raises(XrobustError, match=r"^task 'sample': invalid config: task\.packaged='maybe' \(must be true"):
        TaskSpec.from_config(raw)


@pytest.mark.parametrize(
    "good",
    [
        "+optim.optimizer.betas=[0.9,0.99]",  # AdamW takes it
        "+finetune.target_modules.bert=[query]",  # a free-form mapping
        "+task.revision=main",  # a TaskSpec field
        "data.heldout=true",  # with data.test_split=dev, the XTREME layout's setup: held-out train-en selects
        "+callbacks.timer._target_=pytorch_lightning.callbacks.Timer",  # a callback added whole
    ],
)
def test_keys_something_reads_are_accepted(good, tmp_path):
    validate(compose_config([good], output_dir=tmp_path))


def test_a_callback_added_whole_takes_only_what_its_target_takes(tmp_path):
    timer = "+callbacks.timer._target_=pytorch_lightning.callbacks.Timer"
    validate(compose_config([timer, "+callbacks.timer.interval=epoch"], output_dir=tmp_path))
    with pytest.raises(XrobustError, match=r"\+callbacks\.timer\.intervall is not a config key"):
        validate(compose_config([timer, "+callbacks.timer.intervall=epoch"], output_dir=tmp_path))


def test_a_stage_key_is_checked_against_the_root_config(tmp_path):
    validate(compose_config(["intermediate=xnli", "+intermediate.trainer.max_steps=3"], output_dir=tmp_path))
    with pytest.raises(XrobustError, match=r"\+intermediate\.data\.batch_sizee is not a config key"):
        validate(compose_config(["intermediate=xnli", "+intermediate.data.batch_sizee=3"], output_dir=tmp_path))


def test_an_unwritable_run_folder_is_refused_at_start_up(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(XrobustError, match=r"run folder .*file/run is not writable"):
        validate(compose_config([], output_dir=tmp_path / "file" / "run"))


@pytest.mark.parametrize(
    "override",
    [
        "optim.lr=abc",
        "+trainer.limit_test_batchs=2",
        "ckpt_path=/nonexistent.ckpt",
        "data.batch_sizee=4",
        "task.languages=en",
        "noise.epss=0.1",
        "callbacks.requeue.check_every_n_steps=often",
        "seedd=1",
    ],
)
def test_the_cli_prints_one_line_and_exits_2_before_the_model_loads(override, tmp_path):
    proc = run_cli(["logger=csv", "trainer.max_steps=2", f"hydra.run.dir={tmp_path}", override], cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrobust: error: ")]
    assert len(errors) == 1 and override.split("=")[0].lstrip("+") in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "csv").exists()


def test_a_run_folder_hydra_cannot_create_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_cli(["logger=csv", f"hydra.run.dir={tmp_path / 'file' / 'run'}"], cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip() == (
        f"xrobust: error: run folder {tmp_path / 'file' / 'run'} is not writable (Not a directory): "
        "choose another with hydra.run.dir=..."
    )


def sample_task() -> TaskSpec:
    return TaskSpec.from_config(compose_config([]).task)


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (["a\tb\t0", "c\td\t1", "a\tb\t0"], ":3: repeats line 1 (same text and label)"),
        (["a\tb\t0", "c\td\t\u0661"], ":2: unknown label '\u0661'"),  # Arabic-Indic one: not class 1
        (["a\tb\t\u00b2"], ":1: unknown label '\u00b2'"),  # superscript two: isdigit() but int() fails
    ],
)
def test_a_bad_tsv_row_is_one_line_with_file_and_line(rows, line, tmp_path):
    path = tmp_path / "test-de.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(XrobustError) as caught:
        read_labelled_tsv(path, sample_task())
    assert str(caught.value).startswith(str(path)) and line in str(caught.value)


def test_placeholder_rows_of_identical_text_stay_as_the_benchmark_ships_them(tmp_path):
    """PAWS-X's untranslated items are `NS<TAB>NS`, several per file: items, not one item counted twice."""
    path = tmp_path / "test-de.tsv"
    path.write_text("NS\tNS\t0\nx\ty\t1\nNS\tNS\t0\n", encoding="utf-8")
    assert read_labelled_tsv(path, sample_task())["id"] == [0, 1, 2]


def test_a_repeated_item_id_names_the_file_and_both_lines(tmp_path):
    task = TaskSpec.from_config(compose_config(["task=xcopa"]).task)
    row = '{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 0, "idx": 7}'
    path = tmp_path / "test-et.jsonl"
    path.write_text(f"{row}\n{row.replace('7', '8')}\n{row}\n", encoding="utf-8")
    with pytest.raises(XrobustError, match=rf"^{path}:3: idx 7 repeats line 1"):
        read_labelled_jsonl(path, task)


def test_a_folder_that_stops_taking_writes_keeps_the_trained_model_and_says_where(tmp_path):
    """results.json cannot be written (a directory stands in its way, as a read-only folder would for root): one
    line names the file and the kept checkpoint; nothing is cut down; the same command then finishes the job."""
    (tmp_path / "data").mkdir()
    args = [
        *overrides(tiny_checkpoint(tmp_path / "tiny"), small_sample(tmp_path / "data")),
        *("trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1"),
    ]
    out = tmp_path / "run"
    (out / RESULTS_FILE).mkdir(parents=True)
    with pytest.raises(XrobustError) as caught:
        run(compose_config(args, output_dir=out))
    message = str(caught.value)
    assert f"could not write {out / RESULTS_FILE}" in message and "the trained model is kept in " in message
    kept = Path(message.split("the trained model is kept in ")[1].split(":")[0])
    assert kept.name == "best-step2.ckpt" and kept.is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    (out / RESULTS_FILE).rmdir()
    results = run(compose_config(args, output_dir=out))
    assert results["model_selection"]["steps_run"] == 2 and (out / RESULTS_FILE).is_file()
