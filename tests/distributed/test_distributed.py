"""Several ranks give one process's results: every test item counted once, one results.json, the NaN guard
stopping every rank together (exit 2, one line each), a sweep that would relaunch itself refused, training batches
dealt whole.

Real processes: 2 ranks on CPU with gloo, against 1 process of the same config on the same weights.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import FAST, ROOT, run_cli
from helpers.tiny_models import tiny_checkpoint
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DistributedSampler
from transformers import AutoModelForMaskedLM

from xrobust.data.sampling import LengthGroupedSampler
from xrobust.report.cli import main as report_main
from xrobust.report.collect import collect

LANGUAGES = ["en", "de", "fr", "es", "ru", "zh", "ar"]
ITEMS_PER_LANGUAGE = 7  # odd: 2 ranks get 4 + 4, one of them a repeat, unless results count each item once
MIXED_PAIRS = ["en_de", "de_en"]  # eval.generalized over en and de: test sets of their own, counted the same way

# Each multi-rank setup below is compared with one process on the same weights: add a strategy to compare it too.
MULTI_RANK = {"ddp": ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]}


@dataclass
class Job:
    folder: Path
    results: dict
    log: str


def run_job(folder: Path, *overrides: str) -> Job:
    """One job through the CLI, as a user runs it; its results.json and everything it printed."""
    proc = run_cli([*overrides, f"hydra.run.dir={folder}"], cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Job(folder, json.loads((folder / "results.json").read_text()), proc.stdout + proc.stderr)


def predictions(folder: Path) -> list[list[str]]:
    return [line.split("\t") for line in (folder / "predictions.tsv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def varied_tiny_model(tmp_path_factory) -> Path:
    """The tiny checkpoint with its weights drawn at std 0.5: at the usual 0.02 every input gets one label, and
    comparing accuracies would compare constants."""
    folder = tiny_checkpoint(tmp_path_factory.mktemp("tiny-varied"))
    model = AutoModelForMaskedLM.from_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.5, generator=generator)
    model.config.initializer_range = 0.5  # the classification head is drawn when the classifier loads
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The packaged sample cut down, in the XTREME layout: 7 test items per language, 24 train, 8 dev."""
    sample = ROOT / "xrobust" / "data" / "sample"
    folder = tmp_path_factory.mktemp("data")
    sizes = {"train-en": 24, "dev-en": 8} | {f"test-{lang}": ITEMS_PER_LANGUAGE for lang in LANGUAGES}
    for name, size in sizes.items():
        lines = (sample / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[:size]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def job_config(varied_tiny_model, data_dir) -> list[str]:
    """No training step (max_steps=0): the head is drawn from the seed, so every run tests the same weights."""
    return [
        *FAST,
        "trainer.max_steps=0",
        "trainer.precision=32-true",  # as the ranks run (MULTI_RANK), whatever this machine's default
        f"data.local_dir={data_dir}",
        f"model.pretrained={varied_tiny_model}",
        "model.embedded=null",
        "model.name=tiny-xlmr",
        "data.eval_batch_size=2",  # several batches per rank
        "eval.generalized=true",
        "eval.generalized_languages=[en,de]",
        "eval.perturbed=true",
        "eval.perturbation.eps=0",  # perturbed predictions then equal the clean ones, item by item
    ]


@pytest.fixture(scope="module")
def one_process(job_config, tmp_path_factory) -> Job:
    return run_job(tmp_path_factory.mktemp("one-process"), *job_config)


@pytest.fixture(scope="module", params=sorted(MULTI_RANK))
def multi_rank(request, job_config, tmp_path_factory) -> Job:
    return run_job(tmp_path_factory.mktemp(request.param), *job_config, *MULTI_RANK[request.param])


def test_two_ranks_ran(multi_rank):
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in multi_rank.log and "GLOBAL_RANK: 1, MEMBER: 2/2" in multi_rank.log
    assert "distributed_backend=gloo" in multi_rank.log
    assert (multi_rank.folder / "train_ddp_process_1.log").exists()  # rank 1's own Hydra job log


def test_every_test_item_is_counted_once(multi_rank, one_process):
    rows = predictions(multi_rank.folder)
    for name in [*LANGUAGES, *MIXED_PAIRS]:
        ids = [int(i) for lang, i, *_ in rows if lang == name]
        assert sorted(ids) == list(range(ITEMS_PER_LANGUAGE)), name
    assert multi_rank.results["n_examples"] == dict.fromkeys(LANGUAGES, ITEMS_PER_LANGUAGE)
    assert multi_rank.results["n_examples"] == one_process.results["n_examples"]


def test_accuracy_equals_one_process_on_the_same_weights(multi_rank, one_process):
    assert len({pred for *_, pred in predictions(one_process.folder)}) > 1  # not a constant classifier
    assert predictions(multi_rank.folder) == predictions(one_process.folder)
    for key in ("accuracy", "perturbed_accuracy", "generalized", "majority_class_accuracy", "target_mean"):
        assert multi_rank.results[key] == one_process.results[key], key
    # eps=0: the perturbed pass predicts what the clean one does, so both count the same unique rows.
    assert multi_rank.results["perturbed_accuracy"] == multi_rank.results["accuracy"]


def test_results_are_written_once(multi_rank):
    assert [p.name for p in multi_rank.folder.rglob("results.json")] == ["results.json"]
    assert multi_rank.log.count("results: ") == 1  # printed by global rank 0 only


def test_the_report_accepts_the_job(multi_rank, tmp_path):
    (job,) = collect(multi_rank.folder)
    job.predictions()  # checks n and accuracy per language against predictions.tsv
    report_main([str(multi_rank.folder), "--out", str(tmp_path), "--n-boot", "10"])
    assert (tmp_path / "results.md").is_file()


def test_multirun_with_several_devices_on_the_basic_launcher_is_refused(tmp_path):
    proc = run_cli(["-m", "seed=1,2", *MULTI_RANK["ddp"], f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrobust: error:")]
    assert len(errors) == 1 and "hydra/launcher=slurm" in errors[0]
    assert not list(tmp_path.rglob("results.json"))


def test_an_error_met_after_the_process_group_started_exits_2_on_every_rank(job_config, tmp_path):
    """A loss gone NaN in xrobust.train on 2 ranks: each rank prints its `xrobust: error:` line and the job exits
    2, without a traceback and without the abort (-6) that finalizing beside live process-group threads risks."""
    diverging = ["trainer.max_steps=4", "optim.lr=1e38", "optim.warmup_ratio=0", "trainer.limit_val_batches=1"]
    args = [*job_config, *MULTI_RANK["ddp"], *diverging, f"hydra.run.dir={tmp_path}"]
    proc = run_cli(args, cwd=ROOT, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrobust: error:")]
    assert len(errors) == 2 and all("training loss became nan" in line for line in errors), output[-3000:]
    assert "Traceback" not in output and "terminate called" not in output
    assert not (tmp_path / "results.json").exists()


# A NaN on rank 1 only, at step 2: every rank must stop there, none may wait in the gradient all-reduce.
NAN_ON_ONE_RANK = """
import os

import pytorch_lightning as pl
import torch

from xrobust.lightning.callbacks import FiniteLossGuard, NonFiniteLoss


class Regression(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        return loss * float("nan") if self.global_rank == 1 and self.global_step == 2 else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


rows = torch.utils.data.TensorDataset(torch.randn(64, 4))
trainer = pl.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_steps=6, callbacks=[FiniteLossGuard()], logger=False,
    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
)
try:
    trainer.fit(Regression(), torch.utils.data.DataLoader(rows, batch_size=4))
except NonFiniteLoss as err:
    # One write per line (atomic on a pipe): both ranks print at once, and print() may interleave them.
    os.write(1, f"rank {trainer.global_rank} stopped: {err}\\n".encode())
"""


def test_a_nan_on_one_rank_stops_every_rank(tmp_path):
    script = tmp_path / "nan_on_one_rank.py"
    script.write_text(NAN_ON_ONE_RANK)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    stopped = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert len(stopped) == 2, proc.stdout + proc.stderr[-3000:]
    assert stopped[0].startswith("rank 0 stopped: training loss became non-finite on another rank at step 2")
    assert stopped[1].startswith("rank 1 stopped: training loss became nan at step 2")


# ------------------------------------------------------------------------------------------ the training sampler


@pytest.fixture
def lengths() -> list[int]:
    rng = random.Random(0)
    return [rng.randint(8, 128) for _ in range(1000)]


def rank_batches(sampler, batch_size: int) -> list[list[int]]:
    """The batches a DataLoader cuts from this rank's sampler."""
    order = list(sampler)
    assert len(order) == len(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padding_ratio(batches: list[list[int]], lengths: list[int]) -> float:
    """Tokens in the padded batches over the real tokens."""
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return padded / sum(lengths[i] for batch in batches for i in batch)


def test_sampler_deals_the_one_process_batches_whole_to_ranks(lengths):
    # 1000 items in batches of 48: 20 full and one of 40, an odd count, so one rank also gets a repeat.
    alone = rank_batches(LengthGroupedSampler(lengths, 48, seed=1), 48)
    ranks = [rank_batches(LengthGroupedSampler(lengths, 48, seed=1, num_replicas=2, rank=r), 48) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 11  # as many steps on every rank
    dealt = [tuple(batch) for batches in ranks for batch in batches]
    assert sorted(dealt) == sorted([tuple(batch) for batch in alone] + [tuple(alone[0])])
    for batches in ranks:
        assert all(len(batch) == 48 for batch in batches[:-1])  # only a rank's last batch may be partial


def test_lightning_keeps_the_sampler_and_its_padding_stays_low_on_two_ranks(lengths):
    """Lightning wraps a sampler unless it is a DistributedSampler; the wrapper it would use reshuffles the
    items across batches, which is what this sampler avoids."""
    assert isinstance(LengthGroupedSampler(lengths, 32, seed=1, num_replicas=2, rank=0), DistributedSampler)
    alone = padding_ratio(rank_batches(LengthGroupedSampler(lengths, 32, seed=1), 32), lengths)
    for rank in (0, 1):
        dealt = LengthGroupedSampler(lengths, 32, seed=1, num_replicas=2, rank=rank)
        wrapped = DistributedSamplerWrapper(LengthGroupedSampler(lengths, 32, seed=1), num_replicas=2, rank=rank)
        assert padding_ratio(rank_batches(dealt, 32), lengths) < 1.02 * alone
        assert padding_ratio(rank_batches(wrapped, 32), lengths) > 1.5 * alone
