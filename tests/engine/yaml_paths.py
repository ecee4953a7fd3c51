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


def edit_lines(draw: Any, text: str, operation: str) -> str:
    """One edit of a text's lines: ``duplicate-line`` (a repeated key, most of the time),
    ``delete-line``, ``indent`` or ``swap-lines``; ``draw`` is Hypothesis's."""
    from hypothesis import strategies as st

    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    index = draw(st.integers(0, len(lines) - 1))
    if operation == "duplicate-line":
        lines.insert(index, lines[index])
    elif operation == "delete-line":
        del lines[index]
    elif operation == "indent":
        lines[index] = " " * draw(st.integers(1, 3)) + lines[index]
    else:
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    return "".join(lines)
