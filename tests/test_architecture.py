"""The one direction of imports (DESIGN.md "Layout and the one direction of data"), read from the code.

The graph counts every import: at module level, inside functions and under
``TYPE_CHECKING``. It must have no cycle, and every arrow must point down the layers:

    flows (the Prefect layer, the CLI)  ->  notifications  ->  engine.register  ->  the language's plain types
                                                           ->  engine (the language and its pure runtime)

``python -m tests.test_architecture`` prints the arrows between packages.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from aftercare.engine.checks import strongly_connected

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"engine": "aftercare.engine", "notifications": "aftercare.notifications", "flows": "aftercare.flows"}
LANGUAGE = "aftercare.engine"
REGISTER = "aftercare.engine.register"
NOTIFICATIONS = "aftercare.notifications"
FLOWS = "aftercare.flows"
CLI = "aftercare.flows.cli"
REGISTER_MAY_USE = {"aftercare.engine.errors", "aftercare.engine.clock", "aftercare.engine.settings", "aftercare.engine.suggest"}
"""The language's plain parts the register may import: errors, the clock, the settings, "did you mean"."""
PREFECT_IN_NOTIFICATIONS = {"aftercare.notifications.channels"}
"""Reads a Prefect Secret block for ``${prefect-secret:NAME}`` (lazily, DESIGN.md)."""


def modules() -> dict[str, Path]:
    """Every module of the three packages by dotted name."""
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import statement of a module, wherever it is."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in known else target), node.lineno


def graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module of the three packages, or ``prefect``: first line}."""
    found = modules()
    known = set(found)
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in found.items():
        edges[name]
        for target, line in _imports(name, path, known):
            if target == "prefect" or target.startswith("prefect."):
                edges[name].setdefault("prefect", line)
            elif target in known and target != name:
                edges[name].setdefault(target, line)
    return edges


def _layer(module: str) -> str:
    if module == "prefect":
        return "prefect"
    if module == CLI or module.startswith(CLI + "."):
        return "cli"
    for prefix, layer in ((FLOWS, "flows"), (NOTIFICATIONS, "notifications"), (REGISTER, "register"), (LANGUAGE, "language")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise ValueError(module)


def wrong_arrows(edges: dict[str, dict[str, int]]) -> list[str]:
    """Every import against the direction of DESIGN.md."""
    allowed = {
        "language": {"language"},
        "register": {"register"},
        "notifications": {"notifications", "register", "language"},
        "flows": {"flows", "notifications", "register", "language", "prefect", "cli"},
        "cli": {"cli", "flows", "notifications", "register", "language", "prefect"},
    }
    found = []
    for source, targets in edges.items():
        here = _layer(source)
        for target, line in targets.items():
            there = _layer(target)
            fine = there in allowed[here]
            if here == "register" and there == "language":
                fine = target in REGISTER_MAY_USE
            if here == "notifications" and there == "prefect":
                fine = source in PREFECT_IN_NOTIFICATIONS
            if here == "flows" and there == "cli":
                fine = False  # the runtime never learns from the command line
            if here == "cli" and there == "cli" and _is_command(source) and _is_command(target):
                fine = False  # command modules never import each other
            if not fine:
                found.append(f"{source} (line {line}) imports {target}: {here} may not depend on {there}")
    return sorted(found)


def _is_command(module: str) -> bool:
    return module.startswith(CLI + ".") and module != f"{CLI}.__main__"


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (the checks' own Tarjan)."""
    graph: dict[str, list[str | None]] = {n: [t for t in targets if t != "prefect"] for n, targets in edges.items() if n != "prefect"}
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(str(target), [])
    return sorted(sorted(c) for c in strongly_connected(graph) if len(c) > 1)


def package_arrows(edges: dict[str, dict[str, int]]) -> dict[tuple[str, str], int]:
    """How many module imports go from one layer to another."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for source, targets in edges.items():
        for target in targets:
            if _layer(source) != _layer(target):
                counts[(_layer(source), _layer(target))] += 1
    return dict(sorted(counts.items()))


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_every_import_points_down_the_layers() -> None:
    assert wrong_arrows(graph()) == []


def test_the_language_never_imports_prefect() -> None:
    edges = graph()
    assert [m for m, targets in edges.items() if "prefect" in targets and _layer(m) in ("language", "register")] == []


def test_the_checks_see_a_cycle_and_a_wrong_arrow() -> None:
    """The rules above can fail: a made-up graph with both mistakes is caught."""
    made_up = {
        "aftercare.engine.router": {"aftercare.engine.answers": 1},
        "aftercare.engine.answers": {"aftercare.engine.router": 2, "aftercare.engine.register.steps": 3},
        "aftercare.engine.register.steps": {"aftercare.engine.spec": 4},
        "aftercare.engine.spec": {},
        "aftercare.flows.cli.run": {"aftercare.flows.cli.answer": 5},
        "aftercare.flows.cli.answer": {},
        "aftercare.flows.executor": {"aftercare.flows.cli": 6},
        "aftercare.flows.cli": {},
        "aftercare.notifications.outbox": {"prefect": 7, "aftercare.flows.executor": 8},
    }
    assert cycles(made_up) == [["aftercare.engine.answers", "aftercare.engine.router"]]
    assert [line.split(" imports ")[0] for line in wrong_arrows(made_up)] == [
        "aftercare.engine.answers (line 3)",
        "aftercare.engine.register.steps (line 4)",
        "aftercare.flows.cli.run (line 5)",
        "aftercare.flows.executor (line 6)",
        "aftercare.notifications.outbox (line 7)",
        "aftercare.notifications.outbox (line 8)",
    ]


if __name__ == "__main__":
    edges = graph()
    for (source, target), count in package_arrows(edges).items():
        print(f"{source:>13} -> {target:<13} {count} import(s)")
    problems = wrong_arrows(edges) + [" <-> ".join(c) for c in cycles(edges)]
    print("\n".join(problems) or "no cycle, no arrow against the direction")
    sys.exit(1 if problems else 0)
