"""Which classifier each read-out of a run is: with `noise=rs_rp noise.smoothed_prediction=true` the standard
(clean) accuracy is the smoothed classifier's majority vote over noisy copies, while eval.perturbed's read-out
is the plain classifier on one perturbed input. Perturbed minus clean then compares two classifiers, so the
tidy rows name both and the report notes every setting where they differ.
"""

from __future__ import annotations

from xrobust.report.collect import Job
from xrobust.report.identity import setting_text

PLAIN = "plain"


def classifiers(job: Job) -> tuple[str, str | None]:
    """(the clean read-out's classifier, the perturbed read-out's; None without eval.perturbed)."""
    clean = PLAIN
    if job.flat_config.get("noise.smoothed_prediction") == "true":
        clean = f"smoothed vote of {job.flat_config.get('noise.num_test_samples', '?')} noisy copies"
    return clean, (PLAIN if job.perturbed_accuracy else None)


def classifier_notes(jobs: list[Job]) -> list[str]:
    """One note per task and setting whose clean and perturbed read-outs come from different classifiers."""
    found: dict[str, tuple[str, str]] = {}
    for job in jobs:
        clean, perturbed = classifiers(job)
        if clean != PLAIN:
            what = f"{job.task}/{setting_text(job.labels)}"
            found.setdefault(what, (clean, perturbed))
    return [
        f"{what}: the accuracy read-out is the {clean}"
        + (", the perturbed read-out the plain classifier on one perturbed input: two classifiers" if perturbed else "")
        for what, (clean, perturbed) in found.items()
    ]
