"""xrobust's modules import one another without a cycle, counting every import statement (the ones under
`if TYPE_CHECKING:` and inside functions too): each module can be read knowing only those below it."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "xrobust"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load (a `from a import b` may load module a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parent = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join([*parent, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Each xrobust module -> the xrobust modules it imports (a name resolves to its longest module prefix)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for dotted in imported(node, name, path.name == "__init__.py"):
                    while dotted and dotted not in paths:
                        dotted = dotted.rpartition(".")[0]
                    if dotted and dotted != name:
                        targets.add(dotted)
        graph[name] = targets
    return graph


def test_the_graph_sees_type_checking_and_function_level_imports():
    graph = import_graph()
    assert "xrobust.data.task_fields" in graph["xrobust.kinds.base"]  # under TYPE_CHECKING
    assert "xrobust.run.job" in graph["xrobust.run.results"]  # under TYPE_CHECKING
    assert "xrobust.models.loading" in graph["xrobust.plan.inventory"]  # inside a function


def test_no_import_cycle():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None
