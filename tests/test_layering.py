"""The reports and notification layering, read from the source (imports inside functions count).

- The modules of ``rollcall.reports`` import each other without a cycle, and
  so do the modules of ``rollcall.cli`` (one per command group).
- No module imports another module's private (``_``-prefixed) name.
- The outbox queue (``rollcall.store.outbox``) sits under reports, notify,
  pipeline and plugins: it imports none of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rollcall"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, tuple(alias.name for alias in node.names)))
    return found


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def edges(modules: dict[str, Path], within: str) -> dict[str, set[str]]:
    """Module -> the modules of ``within`` it imports (``from pkg import mod`` included)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if not name.startswith(within):
            continue
        targets = set()
        for module, names in imports_of(path):
            for candidate in (module, *(f"{module}.{n}" for n in names)):
                if candidate in modules and candidate.startswith(within) and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_reports_modules_form_no_import_cycle() -> None:
    graph = edges(project_modules(), "rollcall.reports.")
    assert "rollcall.reports.html" in graph
    assert find_cycle(graph) is None


def test_cli_modules_form_no_import_cycle() -> None:
    graph = edges(project_modules(), "rollcall.cli.")
    assert {"rollcall.cli.main", "rollcall.cli.reports", "rollcall.cli.analyze"} <= set(graph)
    assert "rollcall.cli.main" not in set().union(*graph.values())  # only the entry point
    assert find_cycle(graph) is None


def test_no_module_imports_a_private_name_of_another() -> None:
    offenders = [
        f"{module_name(path)} imports {module}.{name}"
        for path in PACKAGE.rglob("*.py")
        for module, names in imports_of(path)
        if module.startswith("rollcall")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_outbox_queue_imports_no_higher_layer() -> None:
    higher = ("rollcall.reports", "rollcall.notify", "rollcall.pipeline", "rollcall.plugins")
    imported = [module for module, _ in imports_of(PACKAGE / "store" / "outbox.py")]
    assert [m for m in imported if m.startswith(higher)] == []
