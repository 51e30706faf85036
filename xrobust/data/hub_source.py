"""Examples from a Hugging Face Hub dataset with one config per language (facebook/xnli, paws-x, ...).

Only the split a run asks for is downloaded and prepared: `load_dataset(..., split=...)` alone would download and
convert every split of the config (XNLI's 392k-row train split for every test language), so each split's files
are named through `data_files` (the task's `hub_data_files` pattern), as datasets' docs do for a subset of files.

Downloading is `prepare` (the datamodule's `prepare_data`: one process per node), which records the prepared Arrow
files in a small JSON beside datasets' cache; `load` (`setup`, every rank) reads those files and asks the Hub
nothing, so N ranks do not query the Hub N times at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets

from xrobust.atomic import atomic_write_text
from xrobust.data.task import TaskSpec, is_local_folder
from xrobust.errors import XrobustError
from xrobust.hub_download import HUB_ERRORS, hub_error_message

LOCAL_FIX = "set data.local_dir=<folder of {split}-{lang} files>, or task.hub_id=<local copy in the Hub layout>"


@dataclass(frozen=True)
class HubSplit:
    """Where one split of one language lives: dataset id (or local copy), config, split name, revision, files."""

    dataset: str
    config: str | None
    split: str
    revision: str | None
    data_files: str

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.config}" if self.config else self.dataset


class HubSource:
    """A Hub dataset (or a local copy in its layout); `provenance` records what each loaded split came from.

    A task's `source_hub` supplies its English splits from another dataset (COPA for XCOPA, XNLI for AmericasNLI).
    """

    def __init__(self, task: TaskSpec, cache_dir: str | None = None):
        if not task.hub_id:
            raise XrobustError(f"task '{task.name}' has no hub_id: set data.local_dir to a folder of TSV files")
        self.task = task
        self.cache_dir = cache_dir
        self.provenance: dict[str, dict] = {}

    def describe(self) -> str:
        return f"hub:{self.task.hub_id}"

    def where(self, split: str, lang: str) -> HubSplit | None:
        """The Hub split holding `split` of `lang`, or None when the dataset has no such split."""
        source = self.task.source_hub
        if source is not None and lang == self.task.source_language:
            dataset, config, names = source["id"], source.get("config"), source["splits"]
            revision = source.get("revision")
        else:
            dataset, names, revision = self.task.hub_id, self.task.hub_splits, self.task.revision
            config = (self.task.hub_config or "{lang}").format(lang=lang)
        name = names.get(split)
        if not name:
            return None
        files = self.task.hub_data_files.format(config=config or "", split=name).lstrip("/")
        return HubSplit(str(dataset), config, name, None if is_local_folder(str(dataset)) else revision, files)

    def has(self, split: str, lang: str) -> bool:
        return self.where(split, lang) is not None

    def _located(self, split: str, lang: str) -> HubSplit:
        self.task.check_language(lang)
        where = self.where(split, lang)
        if where is None:
            raise XrobustError(f"task '{self.task.name}' has no split {split!r} for {lang!r} on the hub")
        return where

    def record_path(self, where: HubSplit) -> Path:
        """Where `prepare` records the Arrow files of one split, keyed by everything that names it."""
        key = hashlib.sha256(json.dumps(asdict(where), sort_keys=True).encode()).hexdigest()[:16]
        return Path(self.cache_dir or datasets.config.HF_DATASETS_CACHE) / "xrobust-prepared" / f"{key}.json"

    def prepare(self, split: str, lang: str) -> None:
        """Download and prepare one split (the Hub is asked here only) and record its files for `load`."""
        where = self._located(split, lang)
        rows, resolved = self._download(where)
        files = [entry["filename"] for entry in rows.cache_files]
        atomic_write_text(self.record_path(where), json.dumps({"files": files, "resolved_revision": resolved}))

    def _prepared(self, where: HubSplit) -> tuple[datasets.Dataset, str | None] | None:
        """The split as `prepare` recorded it, or None when it was not prepared (or its files are gone)."""
        path = self.record_path(where)
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if not record or not all(Path(file).is_file() for file in record["files"]):
            return None
        parts = [datasets.Dataset.from_file(file) for file in record["files"]]
        return datasets.concatenate_datasets(parts), record["resolved_revision"]

    def load(self, split: str, lang: str) -> datasets.Dataset:
        """Read one split from the files `prepare` recorded; an unprepared split is prepared first."""
        where = self._located(split, lang)
        prepared = self._prepared(where)
        if prepared is None:
            self.prepare(split, lang)
            prepared = self._prepared(where)
        rows, resolved = prepared
        rows = self._label_indices(rows, where)
        self._check(rows, where)
        self.provenance[f"{split}-{lang}"] = {
            "dataset": where.dataset,
            "config": where.config,
            "split": where.split,
            "revision": where.revision,
            # The commit datasets loaded (from the Hub), or its hash of a local copy's files.
            "resolved_revision": resolved,
            "data_files": where.data_files,
            "num_rows": len(rows),
            "fingerprint": rows._fingerprint,
        }
        rows = rows.select_columns([*self.task.input_fields, "label"])
        rows = rows.add_column("id", list(range(len(rows))))
        return rows.add_column("lang", [lang] * len(rows))

    def _download(self, where: HubSplit) -> tuple[datasets.Dataset, str | None]:
        """Download and prepare this one split; any Hub failure becomes one line naming the repo and the fix."""
        try:
            builder = datasets.load_dataset_builder(
                where.dataset,
                where.config,
                data_files={where.split: where.data_files},
                revision=where.revision,
                cache_dir=self.cache_dir,
            )
            builder.download_and_prepare()
            return builder.as_dataset(split=where.split), builder.hash
        except HUB_ERRORS as err:
            detail = f"(config {where.config}, split {where.split}, files {where.data_files})"
            if is_local_folder(where.dataset):
                cause = " ".join(str(err).split())
                raise XrobustError(
                    f"could not read the local copy {where.dataset} {detail}: {cause}; it needs the Hub layout "
                    "(a README.md listing its configs, the split's files matching task.hub_data_files)"
                ) from None
            message = hub_error_message(where.dataset, err, local_fix=LOCAL_FIX, revision=where.revision, detail=detail)
            raise XrobustError(message) from None
        except RuntimeError as err:
            if "scripts are no longer supported" not in str(err):
                raise
            raise XrobustError(
                f"{where.dataset} at revision {where.revision} still holds a loading script, which datasets no longer "
                "runs: set task.revision=null (the newest commit) or a later commit holding Parquet files"
            ) from None

    def _label_indices(self, rows: datasets.Dataset, where: HubSplit) -> datasets.Dataset:
        """A string label column (Social IQa's '1'/'2'/'3') as label indices, read as local files read it
        (task.label_names, label_aliases); an unknown label stops the run with one line."""
        label = rows.features.get("label")
        if not isinstance(label, datasets.Value) or label.dtype not in ("string", "large_string"):
            return rows
        indices = [self.task.label_index(str(value)) for value in rows["label"]]
        if None in indices:
            bad = rows["label"][indices.index(None)]
            known = ", ".join([*self.task.label_names, *self.task.label_aliases])
            raise XrobustError(f"{where.name} split {where.split!r}: unknown label {bad!r} (known: {known})")
        return rows.remove_columns("label").add_column("label", indices)

    def _check(self, rows: datasets.Dataset, where: HubSplit) -> None:
        """Columns, label order and labels present, so a changed or mislabelled repo stops the run up front."""
        missing = [c for c in (*self.task.input_fields, "label") if c not in rows.column_names]
        if missing:
            raise XrobustError(f"{where.name}: missing column(s) {missing} (has {rows.column_names})")
        label = rows.features["label"]
        if isinstance(label, datasets.ClassLabel):
            order = [self.task.label_index(name) for name in label.names]
            if order != list(range(len(self.task.label_names))):
                raise XrobustError(
                    f"{where.name}: its labels {label.names} do not map in order onto task.label_names "
                    f"{list(self.task.label_names)}"
                )
        if any(value is None or value < 0 for value in rows["label"]):
            raise XrobustError(f"{where.name} split {where.split!r} has no labels: cannot train or evaluate on it")
        question = self.task.question_field
        if question and self.task.question_prompts:
            unknown = sorted(set(rows[question]) - set(self.task.question_prompts))
            if unknown:
                allowed = ", ".join(self.task.question_prompts)
                raise XrobustError(f"{where.name}: unknown {question} {unknown[0]!r} (allowed: {allowed})")
