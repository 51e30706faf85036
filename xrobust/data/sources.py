"""Where examples come from: one interface, three sources (a local XTREME folder, the packaged sample, the Hub).

Every source returns a `datasets.Dataset` with the columns `id` (item index, the same for the translations of
one item in a parallel set), `lang`, one column per text field, and `label` (an index into the task's labels).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Protocol

import datasets

from xrobust.data.hub_source import HubSource
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError

LAYOUT_HINT = "expected the XTREME layout {split}-{lang}.{ext}, e.g. train-en.{ext}, dev-en.{ext}, dev-de.{ext}"


class ExampleSource(Protocol):
    # What each loaded split ("test-de") came from: files or Hub repo, revision, rows, datasets' fingerprint.
    provenance: dict[str, dict]

    def has(self, split: str, lang: str) -> bool: ...

    def load(self, split: str, lang: str) -> datasets.Dataset: ...

    def describe(self) -> str: ...


class LocalFolderSource:
    """A folder of `{split}-{lang}.tsv` (text fields then label, tab-separated, no header) or `.jsonl` files.

    A task's `local_train_files` glob (XCOPA's `train-en-from-*.jsonl`) names several English training files;
    they are read in name order and concatenated.
    """

    def __init__(self, task: TaskSpec, folder: str | Path):
        self.task = task
        self.folder = Path(folder)
        self.provenance: dict[str, dict] = {}
        self.hint = LAYOUT_HINT.format(split="{split}", lang="{lang}", ext=task.local_format)
        if not self.folder.is_dir():
            raise XrobustError(f"data folder {self.folder} does not exist ({self.hint})")

    def describe(self) -> str:
        return str(self.folder)

    def paths(self, split: str, lang: str) -> list[Path]:
        if split == "train" and lang == self.task.source_language and self.task.local_train_files:
            return sorted(self.folder.glob(self.task.local_train_files))
        path = self.folder / f"{split}-{lang}.{self.task.local_format}"
        return [path] if path.is_file() else []

    def has(self, split: str, lang: str) -> bool:
        return bool(self.paths(split, lang))

    def load(self, split: str, lang: str) -> datasets.Dataset:
        self.task.check_language(lang)
        paths = self.paths(split, lang)
        if not paths:
            wanted = self.task.local_train_files if split == "train" and self.task.local_train_files else None
            name = wanted or f"{split}-{lang}.{self.task.local_format}"
            raise XrobustError(f"missing data file {self.folder / name} ({self.hint})")
        read = read_labelled_jsonl if self.task.local_format == "jsonl" else read_labelled_tsv
        parts = [read(path, self.task) for path in paths]
        columns = {key: [value for part in parts for value in part[key]] for key in parts[0]}
        columns["lang"] = [lang] * len(columns["label"])
        rows = datasets.Dataset.from_dict(columns)
        self.provenance[f"{split}-{lang}"] = {
            "files": [str(path) for path in paths],
            "num_rows": len(rows),
            "fingerprint": rows._fingerprint,
        }
        return rows


class PackagedSampleSource(LocalFolderSource):
    """The parallel NLI sample that ships inside the package, so the default run needs no data at all."""

    def __init__(self, task: TaskSpec):
        super().__init__(task, Path(str(resources.files("xrobust.data") / "sample")))


def make_source(task: TaskSpec, local_dir: str | None, cache_dir: str | None = None) -> ExampleSource:
    """data.local_dir wins; otherwise the packaged sample for packaged tasks, else the Hub (cached in cache_dir)."""
    if local_dir:
        return LocalFolderSource(task, local_dir)
    if task.packaged:
        return PackagedSampleSource(task)
    return HubSource(task, cache_dir)


def read_labelled_jsonl(path: Path, task: TaskSpec) -> dict[str, list]:
    """JSON lines with the task's fields and a label; `idx` (the item in a parallel set) becomes the id."""
    fields = task.input_fields
    columns: dict[str, list] = {"id": [], **{name: [] for name in fields}, "label": []}
    first_line: dict[int, int] = {}  # idx -> the line that gave it
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise XrobustError(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
        except json.JSONDecodeError as err:
            raise XrobustError(f"{where}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict):
            raise XrobustError(f"{where}: not a JSON object")
        for name in fields:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                raise XrobustError(f"{where}: missing or empty {name!r}")
            columns[name].append(value)
        if task.question_field and task.question_prompts and row[task.question_field] not in task.question_prompts:
            raise XrobustError(
                f"{where}: unknown {task.question_field} {row[task.question_field]!r} "
                f"(allowed: {', '.join(task.question_prompts)})"
            )
        label = task.label_index(str(row.get("label", "")))
        if label is None:
            raise XrobustError(f"{where}: unknown label {row.get('label')!r} (allowed: 0-{len(task.label_names) - 1})")
        columns["label"].append(label)
        idx = row.get("idx", number - 1)
        idx = idx if isinstance(idx, int) else number - 1
        if idx in first_line:
            raise XrobustError(
                f"{where}: idx {idx} repeats line {first_line[idx]}; each item of a file needs its own idx"
            )
        first_line[idx] = number
        columns["id"].append(idx)
    if not columns["label"]:
        raise XrobustError(f"{path}: empty file, no examples")
    return columns


def read_labelled_tsv(path: Path, task: TaskSpec) -> dict[str, list]:
    """Parse a TSV into columns, refusing (with file:line) anything that would otherwise be silently wrong."""
    n_text = len(task.text_fields)
    columns: dict[str, list] = {"id": [], **{name: [] for name in task.text_fields}, "label": []}
    raw_lines = path.read_bytes().splitlines()
    first_line: dict[tuple[str, ...], int] = {}  # row -> the line it first appeared on
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise XrobustError(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
        if not line.strip():
            raise XrobustError(f"{where}: empty line")
        fields = line.split("\t")
        if len(fields) == n_text:
            raise XrobustError(
                f"{where}: row has no label column: this split is unlabelled and cannot be used for training or "
                "evaluation (XTREME ships its test sets this way; use data.test_split=dev data.heldout=true)"
            )
        if len(fields) != n_text + 1:
            raise XrobustError(
                f"{where}: expected {n_text + 1} tab-separated fields "
                f"({', '.join(task.text_fields)}, label), found {len(fields)}"
            )
        for name, text in zip(task.text_fields, fields[:n_text], strict=True):
            if not text.strip():
                raise XrobustError(f"{where}: empty {name}")
            columns[name].append(text)
        label = task.label_index(fields[n_text])
        if label is None:
            raise XrobustError(
                f"{where}: unknown label {fields[n_text].strip()!r} (allowed: {', '.join(task.label_names)})"
            )
        _refuse_repeated_row(tuple(fields[:n_text]), label, number, first_line, where)
        columns["label"].append(label)
        columns["id"].append(number - 1)
    if not columns["label"]:
        raise XrobustError(f"{path}: empty file, no examples")
    return columns


def _refuse_repeated_row(
    texts: tuple[str, ...], label: int, number: int, first_line: dict[tuple, int], where: str
) -> None:
    """A row repeating an earlier one (same text, same label) is one item counted twice. Rows whose text fields
    are all the same string are placeholders, not items (PAWS-X's untranslated `NS<TAB>NS`), and are kept as the
    benchmark ships them."""
    if len(texts) > 1 and len(set(texts)) == 1:
        return
    key = (*texts, str(label))
    if key in first_line:
        raise XrobustError(f"{where}: repeats line {first_line[key]} (same text and label): one item counted twice")
    first_line[key] = number
