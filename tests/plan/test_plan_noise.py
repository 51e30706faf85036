"""The noise methods' declared step costs, and the planner's noise-aware activation memory against the measured
peak of real CPU training steps (none, adv, rs_rp with two noisy copies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from helpers import ROOT, compose_config
from hydra.utils import instantiate

from xrobust.noise.step_cost import StepMemory, StepPasses
from xrobust.plan import estimate, setup_from_config

GIB = 2**30
# The planner's stated tolerance on activations (xrobust/plan/activations.py).
TOLERANCE = 0.30
NOISES = {"none": ["noise=none"], "adv": ["noise=adv"], "rs_rp x2": ["noise=rs_rp", "noise.num_samples=2"]}
# 32 pairs cut at 32 pieces: nearly every batch of the sample is 32 x 32, and the activations (~0.2 GB for plain
# fine-tuning of the 6-layer encoder) stand well above the allocator's noise. Checkpointing and the test loop are
# cut down to what the run needs to reach its second step.
RUN = [
    "model=me5-small-6l",
    "task=sample",
    # fp32, as the planner's activation model was checked: CPU bf16 autocast keeps fp32 copies a GPU plan has not
    "trainer.precision=32-true",
    "logger=none",
    "trainer.max_steps=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.enable_checkpointing=false",
    "~callbacks.model_checkpoint",
    "~callbacks.last_every",
    "~callbacks.crash_checkpoint",
    "trainer.limit_test_batches=1",
    "data.eval_batch_size=8",
    "data.batch_size=32",
    "data.max_length=32",
    "data.group_by_length=false",
]


def method(*overrides: str):
    return instantiate(compose_config(list(overrides)).noise, _partial_=True)()


def test_each_method_declares_what_its_step_keeps_and_computes():
    assert method("noise=none").step_memory() == StepMemory() and method("noise=none").step_passes() == StepPasses()
    assert method("noise=rs_da").step_memory() == StepMemory()  # the text changes, not the step
    # PGD with the clean term: K = 2 attack steps (forward + backward to delta), then the adversarial and the clean
    # graph together in one backward.
    assert method("noise=adv").step_memory() == StepMemory(graphs=2, embedding_copies=2)
    assert method("noise=adv").step_passes() == StepPasses(forward=4, input_backward=2, backward=2)
    assert method("noise=adv", "noise.clean_weight=0").step_memory().graphs == 1
    freelb = method("noise=adv", "noise.variant=freelb", "noise.steps=3", "noise.clean_weight=0")
    assert freelb.step_memory() == StepMemory(graphs=3, embedding_copies=4)
    assert freelb.step_passes() == StepPasses(forward=3, input_backward=2, backward=3)
    rs_rp = method("noise=rs_rp", "noise.num_samples=4", "noise.smoothed_prediction=true")
    assert rs_rp.step_memory() == StepMemory(batch_copies=4, embedding_copies=12)
    assert rs_rp.step_passes() == StepPasses(forward=4, backward=4, eval_forward=8)


def _status(key: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024


class StepPeak(pl.Callback):
    """The second training step's own peak: at its start the resident set is the baseline and the kernel's high
    water mark is reset to it (/proc/self/clear_refs 5); at its end the mark is read. By then the weights, the
    previous step's gradients and AdamW's state all exist, so the rise is the step's activations and the noise
    method's tensors (the gradients are freed by zero_grad before the backward rebuilds them)."""

    def __init__(self, out: str):
        self.out = Path(out)
        self.start: dict = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 1:
            Path("/proc/self/clear_refs").write_text("5")
            self.start = {"base": _status("VmRSS"), "shape": list(batch["input_ids"].shape)}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 2:
            self.out.write_text(json.dumps({**self.start, "peak": _status("VmHWM")}))


def measure(out_dir: str) -> None:
    """In a fresh process (`python -c`): one short real run per noise method, each step's peak to out_dir."""
    from xrobust.train import run

    for name, noise in NOISES.items():
        folder = Path(out_dir) / name.replace(" ", "_")
        callback = ["+callbacks.step_peak._target_=test_plan_noise.StepPeak", f"+callbacks.step_peak.out={folder}.json"]
        run(compose_config([*RUN, *noise, *callback], folder))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_planned_activations_match_the_measured_step_peak(me5_dir, tmp_path):
    from xrobust.models.embedded import ensure_embedded_model

    ensure_embedded_model("me5-small-6l")
    # glibc returns freed blocks above a fixed 128 KiB to the OS at once (a fixed threshold also stops it from
    # growing and keeping freed tensors in the heap), so the resident set follows the live tensors.
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(Path(__file__).parent)]),
        "HF_HUB_OFFLINE": "1",
    }
    code = f"import test_plan_noise; test_plan_noise.measure({str(tmp_path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    measured, planned = {}, {}
    for name, noise in NOISES.items():
        step = json.loads((tmp_path / f"{name.replace(' ', '_')}.json").read_text())
        batch, seq = step["shape"]
        cfg = compose_config([*RUN, *noise, f"data.batch_size={batch}", f"data.max_length={seq}"])
        measured[name] = (step["peak"] - step["base"]) / GIB
        planned[name] = estimate(setup_from_config(cfg)).parts["activations"]
    report = {name: f"{measured[name]:.3f} GiB measured, {planned[name]:.3f} planned" for name in NOISES}
    print(report)
    for name in NOISES:
        assert abs(measured[name] - planned[name]) <= TOLERANCE * planned[name], report
    # A planner blind to the noise method would plan adv and rs_rp x2 like none, and be off by ~2x.
    assert measured["adv"] > 1.6 * measured["none"] and measured["rs_rp x2"] > 1.6 * measured["none"], report
