"""One line for a failed Hugging Face Hub download: which repo, why, and what the user can do about it.

Shared by the data and the model loaders. Every Hub failure (HF_HUB_OFFLINE, no network, a gated repo, an
unknown id or revision, a malformed id) reaches us from huggingface_hub, datasets or transformers as an OSError
or a ValueError, so `HUB_ERRORS` is what a caller catches around the one call that downloads.
"""

from __future__ import annotations

from huggingface_hub import constants
from huggingface_hub.errors import GatedRepoError, RevisionNotFoundError

HUB_ERRORS = (OSError, ValueError)


def hub_error_message(
    repo_id: str,
    err: BaseException,
    *,
    local_fix: str,
    repo_type: str = "dataset",
    revision: str | None = None,
    detail: str = "",
) -> str:
    """`could not load <repo_type> <repo_id>[@revision][ detail] from the Hub: <cause>; <what to do>`, one line.

    local_fix: the offline alternative in the caller's words, e.g. "set data.local_dir=<folder of TSV files>";
    detail: what was being loaded, e.g. "(config en, split test)".
    """
    cause = " ".join(str(err).split()) or type(err).__name__
    fix = _fix(repo_id, err, cause, local_fix, repo_type)
    at = f"@{revision}" if revision else ""
    detail = f" {detail}" if detail else ""
    return f"could not load {repo_type} {repo_id}{at}{detail} from the Hub: {cause}; {fix}"


def _fix(repo_id: str, err: BaseException, cause: str, local_fix: str, repo_type: str) -> str:
    page = f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    if isinstance(err, GatedRepoError) or "gated" in cause.lower():
        return f"it is gated: accept its terms on {page}, then log in with `hf auth login` (or set HF_TOKEN)"
    if constants.HF_HUB_OFFLINE:
        return f"HF_HUB_OFFLINE is set: unset it (`unset HF_HUB_OFFLINE`) to download, or {local_fix}"
    if isinstance(err, ConnectionError):
        return f"the Hub is unreachable from here: check the network (and HF_ENDPOINT), or {local_fix}"
    if isinstance(err, RevisionNotFoundError) or "revision" in cause.lower():
        return f"check the revision (a branch, tag or commit of {page}), or {local_fix}"
    return (
        f"check the id (namespace/name, as in {page}); a private repo needs `hf auth login` (or HF_TOKEN); "
        f"or {local_fix}"
    )
