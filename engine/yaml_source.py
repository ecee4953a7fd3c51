"""Reading YAML while keeping the line and column of every node, within limits that make hostile input cheap to refuse."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer, ComposerError, MaxDepthExceededError
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import MappingStartEvent, ScalarEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import RoundTripScanner, ScannerError

from .errors import DefinitionError, Problem

PathKey = tuple[str | int, ...]

MAX_FILE_BYTES = 1024 * 1024
"""A definition, team, inputs or answers file is a few kB; 1 MiB is a 5,000-step definition twice over."""
MAX_DEPTH = 64
"""Nesting levels of mappings and lists; a definition needs about six (steps[i].form.x.choices[j])."""
MAX_NODES = 100_000
"""Values in one file: a 5,000-step definition has about 50,000. Counted as the YAML is composed, so a
megabyte of ``[1,1,1,...]`` stops after 100,000 values (about 3 s) instead of half a million (20 s, 700 MB)."""
MAX_ALIASED = 10_000
"""Values reached through aliases (``*name``), counted as they are expanded: an alias bomb, each level
repeating the one below, stops here after a few MB instead of exhausting memory."""


_STANDARD = "tag:yaml.org,2002:"
_TAGS: dict[str, tuple[type, ...]] = {
    f"{_STANDARD}{name}": (ScalarEvent,) for name in ("str", "int", "float", "bool", "null", "timestamp")
} | {f"{_STANDARD}seq": (SequenceStartEvent,), f"{_STANDARD}map": (MappingStartEvent,)}
"""The explicit tags a file may use, and on which kind of node: the plain types, where they are."""


class _TooDeep(ScannerError):
    """Flow collections (``[`` and ``{``) nested more than :data:`MAX_DEPTH` deep."""


class _LimitedScanner(RoundTripScanner):
    """Scans as ruamel does, refusing flow collections nested past :data:`MAX_DEPTH` as soon as it meets them.

    ruamel scans ahead to the end of the outermost flow collection before it composes a
    node (any ``[`` may start a key), keeping every level's possible key: 10,000 ``[`` would
    take seconds before the composer's own depth limit is ever reached.
    """

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if len(self.flow_context) >= MAX_DEPTH:
            raise _TooDeep(None, None, "too deep", self.reader.get_mark())
        super().fetch_flow_collection_start(TokenClass, to_push)


class _Refused(ComposerError):
    """A document ruamel could read that a definition may not be: too many nodes, a tag it does not use."""


class _LimitedComposer(Composer):
    """Composes nodes as ruamel does, refusing more than :data:`MAX_NODES` nodes and tags outside :data:`_TAGS`."""

    composed = 0

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # YAML allows an anchor to be defined again; the later one counts

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.composed += 1
        event = self.parser.peek_event()
        if self.composed > MAX_NODES:
            raise _Refused(None, None, f"more than {MAX_NODES:,} values; a definition has a few hundred", event.start_mark)
        tag = getattr(event, "ctag", None)
        if tag is not None and str(tag) != "!" and not isinstance(event, _TAGS.get(str(tag), ())):
            shown = str(tag).replace(_STANDARD, "!!")
            raise _Refused(None, None, f"the YAML tag {shown!r} has no place here; remove it (a definition needs no tags)", event.start_mark)
        return super().compose_node(parent, index)


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


class _Constructor(RoundTripConstructor):
    """Round-trip construction, except that a scalar YAML cannot turn into its type stays text.

    ``2026-02-30`` looks like a date and ``9`` * 5000 like an integer, but neither can be one;
    kept as text, the field that reads them says what is wrong, with its position, and the
    other problems of the file are still reported.
    """

    def _or_text(self, construct: Any, node: ScalarNode) -> Any:
        try:
            return construct(self, node)
        except (ValueError, OverflowError, IndexError, KeyError, TypeError):  # `!!int ""`, `!!bool maybe`
            return str(node.value)

    def construct_text_if_not_int(self, node: ScalarNode) -> Any:
        return self._or_text(RoundTripConstructor.construct_yaml_int, node)

    def construct_text_if_not_float(self, node: ScalarNode) -> Any:
        return self._or_text(RoundTripConstructor.construct_yaml_float, node)

    def construct_text_if_not_timestamp(self, node: ScalarNode) -> Any:
        return self._or_text(RoundTripConstructor.construct_yaml_timestamp, node)

    def construct_text_if_not_bool(self, node: ScalarNode) -> Any:
        return self._or_text(RoundTripConstructor.construct_yaml_sbool, node)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_text_if_not_int)
_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_text_if_not_float)
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_text_if_not_timestamp)
_Constructor.add_constructor("tag:yaml.org,2002:bool", _Constructor.construct_text_if_not_bool)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Constructor = _Constructor
    yaml.Composer = _LimitedComposer
    yaml.Scanner = _LimitedScanner
    yaml.max_depth = MAX_DEPTH  # checked as each node is composed, before the recursion goes deeper
    return yaml


def parse_yaml(text: str, file: str) -> SourceDocument:
    """Parse YAML text into plain data with positions.

    Raises:
        DefinitionError: the text is not valid YAML (with its position), or it exceeds a limit:
            :data:`MAX_FILE_BYTES` characters, :data:`MAX_DEPTH` levels, :data:`MAX_NODES` values.
    """
    if len(text) > MAX_FILE_BYTES:
        raise DefinitionError([Problem(file, 1, 1, "", _too_large(None))])
    try:
        root = _yaml().load(text)
    except (MaxDepthExceededError, _TooDeep, _Refused) as error:
        mark = error.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        too_deep = isinstance(error, (MaxDepthExceededError, _TooDeep))
        message = f"nested more than {MAX_DEPTH} levels deep; a definition needs a handful" if too_deep else str(error.problem)
        raise DefinitionError([Problem(file, line, column, "", message)]) from None
    except MarkedYAMLError as error:
        raise DefinitionError([_syntax_problem(text, file, error)]) from error
    except ReaderError as error:
        position = error.position if isinstance(error.position, int) else 0
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        message = f"invalid YAML: the character {character} is not allowed in YAML ({error.reason}); remove it or write it as an escape in double quotes"
        raise DefinitionError([Problem(file, line, column, "", message)]) from None
    except YAMLError as error:
        raise DefinitionError([Problem(file, 1, 1, "", f"invalid YAML: {_one_line(str(error))}")]) from error
    document = SourceDocument(file=file, data=None)
    lc = getattr(root, "lc", None)
    # the top mapping starts at its first key, below any leading comments
    document.positions[()] = (lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else (1, 1)
    document.data = _Converter(document).plain(root, ())
    return document


def _too_large(size: int | None) -> str:
    shown = f" ({size:,} bytes)" if size is not None else ""
    return f"the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB{shown}; a definition is a few kB"


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
    message = _one_line(": ".join(part for part in (context, str(error.problem or "")) if part))
    if "'\\t'" in message:
        message += "; indent with spaces, not tabs"
    return Problem(file, line, column, "", f"invalid YAML: {message}")


def _one_line(message: str) -> str:
    """A YAML library's message on one line (they add the place on a line of its own, which problems say anyway)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip() and not part.strip().startswith('in "'))


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
    """Read and parse a YAML file; a file that cannot be read, or is too large, is a DefinitionError.

    At most :data:`MAX_FILE_BYTES` + 1 bytes are read, so ``/dev/zero`` or a huge file costs
    no more than a small one.
    """
    name = display or str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise DefinitionError([Problem(name, 0, 0, "", f"cannot read file: {error.strerror or error}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise DefinitionError([Problem(name, 1, 1, "", _too_large(_size(path, len(raw))))])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        message = f"not UTF-8 text: byte {raw[error.start:error.start + 1]!r} at offset {error.start}; save the file as UTF-8"
        raise DefinitionError([Problem(name, line, column, "", message)]) from None
    return parse_yaml(text, name)


def _size(path: Path, read: int) -> int | None:
    """The file's size when the file system knows it (a device such as /dev/zero reports 0)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return size if size >= read else None


class _Converter:
    """Converts ruamel's round-trip nodes to dicts/lists/scalars, recording positions.

    An alias makes ruamel hand out the same container again; the values copied through
    aliases are counted against :data:`MAX_ALIASED`.
    """

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        self.seen: set[int] = set()
        self.aliased = 0

    def plain(self, node: Any, path: PathKey, *, alias: PathKey | None = None) -> Any:
        """``alias``: where the alias this node was reached through is used, None outside aliases."""
        if isinstance(node, (CommentedMap, CommentedSeq)):
            if alias is None and id(node) in self.seen:
                alias = path
            self.seen.add(id(node))
        if alias is not None:
            self.aliased += 1
            if self.aliased > MAX_ALIASED:
                line, column = self.document.position(alias)
                message = f"aliases expand to more than {MAX_ALIASED:,} values; write the values out, or use fewer aliases"
                raise DefinitionError([Problem(self.document.file, line, column, format_path(alias), message)])
        document = self.document
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
                result[key] = self.plain(node[key], child_path, alias=alias)
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
                items.append(self.plain(item, child_path, alias=alias))
            return items
        if isinstance(node, TaggedScalar):  # !!str 3: the text as written
            return str(node.value)
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
