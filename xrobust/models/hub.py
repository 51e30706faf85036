"""The model side of xrobust/hub_download.py: a checkpoint or tokenizer that fails to load from its folder or the
Hugging Face Hub becomes one line naming it and what to do, instead of transformers' multi-paragraph OSError.

- `hub_errors(pretrained)`: a context manager around `from_pretrained` calls that raises `XrobustError`.
- `load_tokenizer`: `AutoTokenizer.from_pretrained` under it, also naming the missing packages when a
  SentencePiece-only repo (mDeBERTa's spm.model, no tokenizer.json) cannot be converted without them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub.errors import HFValidationError

from xrobust.errors import XrobustError
from xrobust.hub_download import hub_error_message

LOCAL_FIX = "set model.pretrained=<local folder holding the repo's files>"
# What transformers needs to turn a bare SentencePiece model into a tokenizer: package -> module.
SENTENCEPIECE_PACKAGES = {"sentencepiece": "sentencepiece", "protobuf": "google.protobuf"}


def load_failure(pretrained: str, error: BaseException, field: str = "model.pretrained") -> str:
    """A local folder's problem in its own words; a hub id's with the Hub fixes (offline, login, the id)."""
    if Path(pretrained).expanduser().exists():
        return f"{field}={pretrained!r}: cannot load it: {' '.join(str(error).split()) or type(error).__name__}"
    return hub_error_message(pretrained, error, local_fix=LOCAL_FIX, repo_type="model")


@contextmanager
def hub_errors(pretrained: str | Path, field: str = "model.pretrained") -> Iterator[None]:
    """Turn a failed `from_pretrained` of `pretrained` into one `XrobustError` line. transformers raises every
    Hub failure (offline, unreachable, gated, unknown or malformed id, missing file) as an OSError."""
    try:
        yield
    except (OSError, HFValidationError) as error:
        raise XrobustError(load_failure(str(pretrained), error, field)) from error


def missing_sentencepiece_packages() -> list[str]:
    missing = []
    for package, module in SENTENCEPIECE_PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    return missing


def load_tokenizer(pretrained: str | Path, trust_remote_code: bool = False):
    """The model's tokenizer, from its folder or hub id."""
    from transformers import AutoTokenizer

    with hub_errors(pretrained):
        try:
            return AutoTokenizer.from_pretrained(str(pretrained), trust_remote_code=trust_remote_code)
        except (ValueError, ImportError) as error:
            missing = missing_sentencepiece_packages()
            if not missing:
                raise
            raise XrobustError(
                f"the tokenizer of model.pretrained={str(pretrained)!r} needs {' and '.join(missing)} to read its "
                f"SentencePiece model: pip install {' '.join(missing)}"
            ) from error
