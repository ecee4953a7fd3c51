"""Reading YAML while keeping the line and column of every node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import DefinitionError, Problem

PathKey = tuple[str | int, ...]


@dataclass
class SourceDocument:
    """Plain data read from a YAML file and the position of each of its nodes.

    ``positions`` maps a field path (``("steps", 2, "next")``) to the 1-based
    (line, column) of its value; ``key_positions`` to that of its key.
    """

    file: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        """The closest known position for a path: the node itself or its nearest parent."""
        table = self.key_positions if key else self.positions
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.key_positions:
                return self.key_positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        """A problem pointing at ``path`` in this document."""
        line, column = self.position(path, key=key)
        return Problem(self.file, line, column, format_path(path), message)


def format_path(path: PathKey) -> str:
    """Render ``("steps", 2, "next")`` as ``steps[2].next``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def parse_yaml(text: str, file: str) -> SourceDocument:
    """Parse YAML text into plain data with positions.

    Raises:
        DefinitionError: the text is not valid YAML (with its position).
    """
    try:
        root = _yaml().load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise DefinitionError([Problem(file, line, column, "", f"invalid YAML: {message}")]) from error
    except YAMLError as error:
        raise DefinitionError([Problem(file, 1, 1, "", f"invalid YAML: {error}")]) from error
    document = SourceDocument(file=file, data=None)
    document.positions[()] = (1, 1)
    document.data = _plain(root, (), document)
    return document


def read_yaml(path: Path, display: str | None = None) -> SourceDocument:
    """Read and parse a YAML file; a file that cannot be read is a DefinitionError."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DefinitionError([Problem(name, 0, 0, "", f"cannot read file: {error}")]) from error
    return parse_yaml(text, name)


def _plain(node: Any, path: PathKey, document: SourceDocument) -> Any:
    """Convert ruamel's round-trip nodes to dicts/lists/scalars, recording positions."""
    if isinstance(node, CommentedMap):
        result: dict[Any, Any] = {}
        for key in node:
            child_path = (*path, str(key) if not isinstance(key, (str, int)) else key)
            try:
                key_line, key_col = node.lc.key(key)
                document.key_positions[child_path] = (key_line + 1, key_col + 1)
                value_line, value_col = node.lc.value(key)
                document.positions[child_path] = (value_line + 1, value_col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            result[key] = _plain(node[key], child_path, document)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            child_path = (*path, index)
            try:
                line, col = node.lc.item(index)
                document.positions[child_path] = (line + 1, col + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            items.append(_plain(item, child_path, document))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node
