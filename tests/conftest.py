"""Shared fixtures (the embedded model, the optional real benchmark data) and the suite's offline setting; what
the tests import (paths, the debug config, composing and running the CLIs) is in tests/helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import SHARED_DATA

# The suite runs offline, in this process too (huggingface_hub reads it once, on import, which comes later).
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def me5_dir() -> Path:
    """The converted multilingual-e5-small (built once into XROBUST_HOME, a no-op when already there)."""
    from xrobust.models.embedded import ensure_embedded_model

    return ensure_embedded_model("me5-small")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA} (it sits beside the checkout on CI)")
    return SHARED_DATA
