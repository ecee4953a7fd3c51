"""Reading YAML while keeping the line and column of every node."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

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
        raise DefinitionError([_syntax_problem(text, file, error)]) from error
    except YAMLError as error:
        raise DefinitionError([Problem(file, 1, 1, "", f"invalid YAML: {error}")]) from error
    document = SourceDocument(file=file, data=None)
    lc = getattr(root, "lc", None)
    # the top mapping starts at its first key, below any leading comments
    document.positions[()] = (lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else (1, 1)
    document.data = _plain(root, (), document)
    return document


def _syntax_problem(text: str, file: str, error: MarkedYAMLError) -> Problem:
    """A YAML error as a problem: where it was found, and where the construct it broke began."""
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    duplicate = re.match(r'found duplicate key "(.*)" with value "(.*)" \(original value: "(.*)"\)', str(error.problem or ""), re.DOTALL)
    if isinstance(error, DuplicateKeyError) and duplicate:
        key, _, original = duplicate.groups()
        found = _mapping_at(text, error.context_mark)
        where = format_path((*found[0], key)) if found else ""
        first = next((k.start_mark.line + 1 for k, _ in found[1].value if str(k.value) == key), None) if found else None
        said = f"line {first} has it already" if first else f"first given as {original!r}"
        return Problem(file, line, column, where, f"duplicate key {key!r}: {said}; a key may appear only once in a mapping")
    context = str(error.context or "")
    start = error.context_mark
    if context and start is not None and mark is not None and (start.line, start.column) != (mark.line, mark.column):
        context += f" (begun at line {start.line + 1}, column {start.column + 1})"
    message = ": ".join(part for part in (context, str(error.problem or "")) if part)
    if "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    return Problem(file, line, column, "", f"invalid YAML: {message}")


def _mapping_at(text: str, mark: Any) -> tuple[PathKey, MappingNode] | None:
    """The field path and node of the mapping that starts at ``mark`` (None when it cannot be found)."""
    if mark is None:
        return None
    try:
        root = _yaml().compose(text)
    except YAMLError:
        return None
    todo: list[tuple[Any, PathKey]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if node is None:
            continue
        if (node.start_mark.line, node.start_mark.column) == (mark.line, mark.column) and isinstance(node, MappingNode):
            return path, node
        if isinstance(node, MappingNode):
            todo.extend((value, (*path, str(key.value))) for key, value in node.value)
        elif isinstance(node, SequenceNode):
            todo.extend((item, (*path, index)) for index, item in enumerate(node.value))
    return None


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


def read_mapping_file(path: Path, what: str) -> SourceDocument:
    """Read a data file (inputs, answers) that must hold a mapping; an empty file holds an empty one.

    Raises:
        DefinitionError: the file is missing, unreadable, not YAML or JSON, or not a mapping.
    """
    if not path.is_file():
        raise DefinitionError([Problem(str(path), 0, 0, "", f"no such {what} file")])
    document = read_yaml(path)
    if document.data is None:
        document.data = {}
    if not isinstance(document.data, dict):
        raise DefinitionError([document.problem((), f"the {what} file must hold a mapping")])
    return document
