"""The README's layout names every package and module of xrobust/, and no module name means two things: a name
that repeats across packages is one idea seen from each (listed below with why), never two ideas that collide."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "xrobust"
# A layout line: indent, one or more names (`x.py` or `x/`, comma-separated), then what they are.
ENTRY = re.compile(r"^(?P<indent> *)(?P<names>[\w.]+(?:/|\.py)(?:, [\w.]+(?:/|\.py))*)(?: +(?P<what>.*))?$")

# Names used in more than one package for the same idea from each side.
SAME_IDEA = {
    "base": "each plug-in package's interface (kinds/base.py TaskKind, noise/base.py NoiseMethod)",
    "cli": "each command's entry point (xrobust-plan, xrobust-report)",
    "config": "the typed, checked config (config/) and the read-outs' share of it (diagnostics/config.py)",
    "data": "a job's data (data/) and the planner's figures of it (plan/data.py)",
    "halving": "hydra/sweeper=halving's rule (sweep/halving.py) and its plan (plan/halving.py)",
    "packing": "packed batches (data/packing.py) and the forward over them (models/packing.py)",
    "seq2seq": "the text-to-text head (models/seq2seq.py) and its share of a plan (plan/seq2seq.py)",
    "sweep": "Hydra sweeps (sweep/) and a sweep planned (plan/sweep.py)",
    "templates": "prompt templates (data/templates.py) and the report over a template sweep (report/templates.py)",
}
# The collisions issue #29 found, each now one name per idea.
RENAMED = {
    "xrobust/selection.py": "xrobust/lightning/latest_best.py",
    "xrobust/hub.py": "xrobust/hub_download.py",
    "xrobust/noise/cost.py": "xrobust/noise/step_cost.py",
    "xrobust/report/compare.py": "xrobust/report/pairing.py",
    "xrobust/report/comparison.py": "xrobust/report/contrast_estimate.py",
    "xrobust/report/contrasts.py": "xrobust/report/item_contrasts.py",
    "xrobust/models/families.py": "xrobust/models/model_types.py",
}


def readme_layout() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout\n") :]
    return section.split("```\n")[1].splitlines()


def named_in_layout() -> set[str]:
    """Every path the layout block names, e.g. 'xrobust/run/stages.py' and 'xrobust/run/'."""
    named: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indent, folder) of the enclosing entries
    for line in readme_layout():
        entry = ENTRY.match(line)
        if entry is None:
            continue  # a description's continuation
        indent = len(entry["indent"])
        while parents and parents[-1][0] >= indent:
            parents.pop()
        prefix = "".join(folder for _, folder in parents)
        names = entry["names"].split(", ")
        named.update(prefix + name for name in names)
        if len(names) == 1 and names[0].endswith("/"):
            parents.append((indent, names[0]))
    return named


def modules() -> list[str]:
    """Every package (as 'x/') and module of xrobust/, relative to the repository root."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py":
            if path.parent != PACKAGE:
                found.append(relative.removesuffix("__init__.py"))
        else:
            found.append(relative)
    return found


def test_the_readme_layout_names_every_package_and_module():
    named = named_in_layout()
    missing = [path for path in modules() if path not in named]
    assert not missing, f"README.md's layout does not name: {', '.join(missing)}"
    gone = sorted(path for path in named if path.startswith("xrobust/") and not (ROOT / path).exists())
    assert not gone, f"README.md's layout names what is not there: {', '.join(gone)}"


def test_no_name_means_two_things():
    places = defaultdict(list)
    for path in modules():
        stem = path.rstrip("/").rpartition("/")[2].removesuffix(".py")
        if not stem.startswith("__"):
            places[stem].append(path)
    repeated = {stem: paths for stem, paths in places.items() if len(paths) > 1}
    unexplained = {stem: paths for stem, paths in repeated.items() if stem not in SAME_IDEA}
    assert not unexplained, f"one name for two things (rename one, or say why it is one idea): {unexplained}"


def test_the_collisions_issue_29_found_are_gone():
    for old, new in RENAMED.items():
        assert not (ROOT / old).exists() and (ROOT / new).exists(), (old, new)
    assert not any(PACKAGE.rglob("famil*.py")), "'family' is model.family, the report's comparison group"


def module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defines(source: Path, name: str) -> bool:
    """`name` is defined or imported at the top of `source` (a class, function, constant or re-export)."""
    pattern = rf"^(?:class|def) {name}\b|^{name}\b\s*[:=]|^from \S+ import .*\b{name}\b"
    return re.search(pattern, source.read_text(), re.MULTILINE) is not None


def test_docs_extending_names_files_and_objects_that_exist():
    text = (ROOT / "docs" / "extending.md").read_text()
    files = set(re.findall(r"`(xrobust/[\w/]+\.py)`", text))
    assert files, "docs/extending.md names no xrobust/ file"
    assert not [path for path in files if not (ROOT / path).exists()]
    objects = set(re.findall(r"`(xrobust(?:\.\w+)+)`", text))
    for line in re.findall(r"^from (xrobust[\w.]*) import (.+)$", text, re.MULTILINE):
        objects.update(f"{line[0]}.{name.strip()}" for name in line[1].split(","))
    assert objects, "docs/extending.md names no xrobust object"
    missing = []
    for dotted in sorted(objects):
        module, _, name = dotted.rpartition(".")
        source = module_file(module)
        if module_file(dotted) is None and (source is None or not defines(source, name)):
            missing.append(dotted)
    assert not missing, f"docs/extending.md names what the code does not have: {missing}"
