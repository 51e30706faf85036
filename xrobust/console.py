"""A quiet console: the known-harmless notices of the libraries, filtered one by one at their source, so every
other warning still shows; and the project's own lines, each written whole."""

from __future__ import annotations

import logging
import re
import sys
import warnings

# Python warnings, by the start of their message.
HARMLESS_WARNINGS = (
    # Every fresh run: resuming is the default (ckpt_path=last), there is simply nothing to resume yet.
    r'\.\w+\(ckpt_path="last"\) is set, but there is no last checkpoint available',
    # CrashCheckpoint counts as a checkpoint callback; "best" is the ModelCheckpoint's, listed first.
    r'`\.\w+\(ckpt_path="best"\)` is called with Trainer configured with multiple `ModelCheckpoint`',
    # Lightning's own use of a torch API it will replace, nothing a user can change.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
# Lightning's advertisement printed at every Trainer start.
LIGHTNING_TIPS = re.compile(r"💡 Tip:")
# A transformers load report that only says what fine-tuning expects: the new classification head was initialised,
# the pre-training head was dropped.
REPORT_ROW = re.compile(r"^(\S+)\s*\|\s*(MISSING|UNEXPECTED)\s*\|", re.MULTILINE)
EXPECTED_ROWS = {
    "MISSING": ("classifier.", "score.", "pre_classifier.", "qa_outputs."),
    "UNEXPECTED": ("lm_head.", "cls.", "pooler."),
}


def expected_load_report(message: str) -> bool:
    """True when a LOAD REPORT lists only the head swap of fine-tuning (no mismatched or missing encoder weight)."""
    if "LOAD REPORT" not in message or "MISMATCH" in message or "CONVERSION" in message:
        return False
    rows = REPORT_ROW.findall(message)
    return bool(rows) and all(key.startswith(EXPECTED_ROWS[status]) for key, status in rows)


class DropMessages(logging.Filter):
    """A logger filter dropping the records its predicate recognises."""

    def __init__(self, predicate) -> None:
        super().__init__()
        self.predicate = predicate

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.predicate(record.getMessage())


def quiet_known_warnings() -> None:
    """Install the filters (idempotent: a filter equal to an installed one is not added twice)."""
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name, predicate in (
        ("transformers.modeling_utils", expected_load_report),
        ("pytorch_lightning.utilities.rank_zero", lambda text: bool(LIGHTNING_TIPS.match(text))),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(predicate))


def say(line: str) -> None:
    """One line on stderr in one write: the ranks of a distributed job print theirs at once, and print()'s separate
    write of the newline (stderr is unbuffered) ran two ranks' lines together."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
