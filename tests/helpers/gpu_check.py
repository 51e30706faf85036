"""`make gpu-check`: run on a new cluster node before a grid. Proves xrobust's GPU path in a few minutes, offline.

Every model family (tiny random checkpoints in the Hub layout, built here) and the embedded encoder train for a
few steps on one device, under DDP, FSDP2 and FSDP1 on one rank (NCCL on a GPU; FSDP1 on a GPU only), at the
precision the node resolves (bf16-mixed on Ampere and later), with fused AdamW and gradient clipping; each noise
method trains; a run stopped by SIGTERM mid-epoch resumes to the uninterrupted run's predictions (RNG and noise
state from the checkpoint); the selected checkpoint is reloaded for testing and results.json written. On a GPU it
then trains a mid-size XLM-R XL-shaped model and sets its peak memory beside xrobust-plan's estimate, and times
packed against padded batches (data.packing=true, benchmarks/packed_vs_padded.py). One line per check, OK or what
failed; exit 1 on any failure. Without a GPU it says so and runs the CPU part (which `make test` runs too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# Deterministic cuBLAS for the bit-for-bit resume check; must be set before CUDA initialises.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from helpers import ROOT  # noqa: E402
from helpers.small_runs import QUIET, small_sample, varied_tiny_checkpoint  # noqa: E402
from helpers.tiny_models import MODEL_TYPES, tiny_checkpoint  # noqa: E402
from xrobust.config.checks import CONF_DIR  # noqa: E402
from xrobust.models.embedded import ensure_embedded_model  # noqa: E402

NOISES = ("rs_rp", "code_switch", "adv")  # code_switch: rs_da's augmentation, no synonym file to download
# FSDP1 (trainer=fsdp) runs on a GPU only: Lightning's FSDPStrategy refuses the CPU.
STRATEGIES = {"single": [], "ddp": ["trainer=ddp"], "fsdp2": ["trainer=fsdp2"], "fsdp": ["trainer=fsdp"]}
SIGTERM_AT_STEP = 3  # mid-epoch: the small sample has 8 batches of 8 per epoch
# What a family's own model config sets beyond the defaults (conf/model/mdeberta-v3-base.yaml: no SDPA in DeBERTa-v2).
FAMILY_OVERRIDES = {"deberta-v2": ["model.attn_implementation=eager"]}
CALIBRATION = {"hidden_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 16, "intermediate_size": 4096}
# benchmarks/packed_vs_padded.py's size on a GPU: both runs in a minute or two (../shared/data/xnli, else the sample).
PACKING_RUN = ["--steps", "40", "--warmup-steps", "5", "--rounds", "1", "--max-eval-examples", "200"]


class SigtermAt(pl.Callback):
    """Sends this process SIGTERM after training step `step`, as SLURM pre-emption would."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class PeakMemory(pl.Callback):
    """Writes the device's peak allocated memory over training (GiB) to `path`."""

    def __init__(self, path: str):
        self.path = path

    def on_train_start(self, trainer, pl_module) -> None:
        torch.cuda.reset_peak_memory_stats()

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.path).write_text(str(torch.cuda.max_memory_allocated() / 2**30))


class Node:
    """What the checks share: the accelerator, a scratch folder, the sample, the checkpoints built once."""

    def __init__(self, scratch: Path, accelerator: str):
        self.scratch, self.accelerator = scratch, accelerator
        self.data = small_sample(self._folder("sample"))
        self._models: dict[str, Path] = {}

    def _folder(self, name: str) -> Path:
        folder = self.scratch / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def model(self, family: str) -> Path:
        if family not in self._models:
            if family == "me5-small":
                self._models[family] = ensure_embedded_model("me5-small")
            elif family == "xlm-roberta":  # weights scaled so that predictions differ between items
                self._models[family] = varied_tiny_checkpoint(self._folder("tiny-xlm-roberta"))
            else:
                self._models[family] = tiny_checkpoint(self._folder(f"tiny-{family}"), family)
        return self._models[family]

    def overrides(self, family: str, *extra: str) -> list[str]:
        model = [f"model.pretrained={self.model(family)}", "model.embedded=null", "model.architecture=null"]
        model += FAMILY_OVERRIDES.get(family, [])
        data = ["task=sample", f"data.local_dir={self.data}", "data.batch_size=8", "data.max_length=48"]
        schedule = ["trainer.max_steps=6", "trainer.val_check_interval=2", "trainer.limit_val_batches=2"]
        device = [f"trainer.accelerator={self.accelerator}", "trainer.devices=1", "trainer.limit_test_batches=2"]
        return [*QUIET, *model, *data, *schedule, *extra, *device]

    def train(self, name: str, overrides: list[str], callbacks: dict | None = None) -> dict:
        """One job in this process, as `python -m xrobust.train` runs it; returns its results.json."""
        from xrobust.train import run

        run_dir = self._folder(name)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            for key, node in (callbacks or {}).items():
                cfg.callbacks[key] = node
        HydraConfig.instance().set_config(cfg)
        run(cfg)
        return json.loads((run_dir / "results.json").read_text())


def check_family(node: Node, family: str, strategy: str) -> str:
    results = node.train(f"{family}-{strategy}", node.overrides(family, *STRATEGIES[strategy]))
    steps = results["model_selection"]["steps_run"]
    if steps != 6:
        raise AssertionError(f"ran {steps} steps, not 6")
    precision = results["precision"]
    if node.accelerator == "gpu" and precision != "bf16-mixed" and torch.cuda.get_device_capability() >= (8, 0):
        raise AssertionError(f"precision resolved to {precision} on a bf16 GPU")
    return f"{precision}, target mean {results['target_mean']:.3f}"


def check_noise(node: Node, noise: str, strategy: str) -> str:
    results = node.train(
        f"noise-{noise}-{strategy}", node.overrides("xlm-roberta", f"noise={noise}", *STRATEGIES[strategy])
    )
    return f"{results['noise']['name']}, {results['model_selection']['steps_run']} steps"


def check_resume(node: Node, strategy: str) -> str:
    """SIGTERM mid-epoch, the same command again, and the uninterrupted run's predictions, item for item."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    args = node.overrides("xlm-roberta", "noise=rs_rp", "trainer.deterministic=true", *STRATEGIES[strategy])
    args.append("checkpoint.keep_after_success=all")
    reference = node.train(f"resume-reference-{strategy}", args)
    stop = {"sigterm": {"_target_": f"{__name__}.SigtermAt", "step": SIGTERM_AT_STEP}}
    try:
        node.train(f"resume-{strategy}", args, callbacks=stop)
        raise AssertionError(f"SIGTERM after step {SIGTERM_AT_STEP} did not stop the run")
    except SIGTERMException:
        pass
    resumed = node.train(f"resume-{strategy}", args)
    same = [
        (node.scratch / f"resume-{name}" / "predictions.tsv").read_text().splitlines()
        for name in (f"reference-{strategy}", strategy)
    ]
    differ = sum(a != b for a, b in zip(*same, strict=True))
    if differ or resumed["accuracy"] != reference["accuracy"]:
        raise AssertionError(f"{differ} of {len(same[0])} predictions differ from the uninterrupted run")
    best = list((node.scratch / f"resume-{strategy}" / "checkpoints").glob("best*"))
    if not best:
        raise AssertionError("no best checkpoint kept for the reload")
    return f"stopped at step {SIGTERM_AT_STEP}, resumed to {resumed['model_selection']['steps_run']}, same predictions"


def check_memory_calibration(node: Node) -> str:
    """A mid-size XLM-R XL-shaped model, every batch at full length: measured peak memory vs the planner's."""
    from transformers import XLMRobertaXLConfig, XLMRobertaXLForMaskedLM

    from xrobust.plan.search import plan_from_config

    folder = node.model("xlm-roberta-xl")
    mid = node.scratch / "mid-xlmr-xl"
    config = XLMRobertaXLConfig.from_pretrained(folder, **CALIBRATION)
    XLMRobertaXLForMaskedLM(config).save_pretrained(mid)
    for name in folder.iterdir():
        if "token" in name.name or name.suffix == ".model":
            (mid / name.name).write_bytes(name.read_bytes())
    long_data = node._folder("long-sample")
    for tsv in node.data.glob("*.tsv"):
        rows = [line.split("\t") for line in tsv.read_text(encoding="utf-8").splitlines()]
        (long_data / tsv.name).write_text("".join(f"{r[0]}\t{(r[1] + ' ') * 20}\t{r[2]}\t{r[3]}\n" for r in rows))
    args = node.overrides("xlm-roberta", f"model.pretrained={mid}", f"data.local_dir={long_data}")
    args += ["data.max_length=128", "data.batch_size=16", "trainer.max_steps=3", "trainer.limit_val_batches=1"]
    peak_file = node.scratch / "peak.txt"
    node.train("calibration", args, callbacks={"peak": {"_target_": f"{__name__}.PeakMemory", "path": str(peak_file)}})
    measured = float(peak_file.read_text())
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        plan = plan_from_config(compose("plan", overrides=[*args, f"model.architecture={mid / 'config.json'}"]))
    planned = plan.total_gib - plan.setup.reserve_gib
    ratio = planned / measured
    return f"peak {measured:.2f} GiB measured, {planned:.2f} GiB planned (reserve excluded): ratio {ratio:.2f}"


def check_packing(node: Node) -> str:
    """Packed against padded batches on this device, side by side (examples/s, real tokens/s), by the benchmark
    `make bench` prints on a CPU; it fails if packing lost examples or did not pack (its --check)."""
    report = node.scratch / "packing.json"
    command = ["-m", "benchmarks.packed_vs_padded", "--accelerator", node.accelerator, "--check", "--out", str(report)]
    # benchmarks/ is not installed: it runs from the repository root; its output goes to this check's log
    done = subprocess.run([sys.executable, *command, *PACKING_RUN], cwd=ROOT, check=False)
    if done.returncode:
        raise AssertionError(f"benchmarks.packed_vs_padded exited {done.returncode} (its output is in the log)")
    return json.loads(report.read_text())["summary"]


def checks(accelerator: str) -> list[tuple[str, Callable[[Node], str]]]:
    """Single-device runs first, then DDP, FSDP2 and (on a GPU) FSDP1: the one-rank process group, once up, serves
    them all. On CPU the embedded encoder (20 s a run there) trains on one device only."""
    out = []
    for strategy in STRATEGIES if accelerator == "gpu" else [s for s in STRATEGIES if s != "fsdp"]:
        families = (*MODEL_TYPES, "me5-small") if accelerator == "gpu" or strategy == "single" else MODEL_TYPES
        out += [(f"{f} {strategy}", lambda n, f=f, s=strategy: check_family(n, f, s)) for f in families]
        if strategy != "ddp":
            out += [(f"noise {x} {strategy}", lambda n, x=x, s=strategy: check_noise(n, x, s)) for x in NOISES]
        out.append((f"resume after SIGTERM {strategy}", lambda n, s=strategy: check_resume(n, s)))
    if accelerator == "gpu":
        out.append(("memory calibration (xlm-roberta-xl shape)", check_memory_calibration))
        out.append(("packed vs padded batches (me5-small)", check_packing))
    return out


@contextlib.contextmanager
def output_to(log: Path):
    """Every write to file descriptors 1 and 2 (Lightning, transformers, the job's own table) goes to `log`, so
    the terminal shows one line per check."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1), os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run the CPU part even where a GPU is present")
    parser.add_argument("-k", default="", help="only the checks whose name contains this")
    parser.add_argument("--log", type=Path, default=Path("gpu-check.log"), help="the runs' own output")
    args = parser.parse_args(argv)
    accelerator = "gpu" if torch.cuda.is_available() and not args.cpu else "cpu"
    if accelerator == "gpu":
        props = torch.cuda.get_device_properties(0)
        print(
            f"gpu-check: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}, torch {torch.__version__}, NCCL {torch.cuda.nccl.version()}"
        )
    else:
        print("gpu-check: no CUDA GPU here (torch.cuda.is_available() is False or --cpu): running the CPU part only")
    failed = 0
    args.log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="xrobust-gpu-check-") as scratch:
        node = Node(Path(scratch), accelerator)
        for name, check in checks(accelerator):
            if args.k not in name:
                continue
            started = time.perf_counter()
            try:
                with output_to(args.log):
                    detail = check(node)
                print(f"OK    {name} ({time.perf_counter() - started:.0f} s): {detail}", flush=True)
            except BaseException as err:  # noqa: BLE001 - every failure is one line, and the checks go on
                if isinstance(err, KeyboardInterrupt):
                    raise
                failed += 1
                where = traceback.extract_tb(err.__traceback__)[-1]
                text = " ".join(str(err).split())[:300]
                print(
                    f"FAIL  {name}: {type(err).__name__}: {text} ({Path(where.filename).name}:{where.lineno})",
                    flush=True,
                )
    verdict = "all checks passed" if not failed else f"{failed} check(s) failed"
    print(f"gpu-check: {verdict} on {accelerator}; the runs' output: {args.log}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
