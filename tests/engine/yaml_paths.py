"""Walking YAML data by path, for the tests that mutate definitions."""

from __future__ import annotations

from typing import Any


def containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every mapping and list in the data, the root included."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, (dict, list)):
        out.append(path)
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            out.extend(containers(child, (*path, key)))
    return out


def at(node: Any, path: tuple[Any, ...]) -> Any:
    """The node at a path."""
    for part in path:
        node = node[part]
    return node
