"""Loading definitions and team files: YAML with positions, then pydantic for shape, then the checks for meaning."""

from __future__ import annotations

import hashlib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import spec as spec_module
from .errors import DefinitionError, NotFoundError, Problem
from .spec import STEP_TYPES, ProcessSpec
from .suggest import did_you_mean
from .team import TeamSpec, repeated_weekdays
from .yaml_source import PathKey, SourceDocument, read_yaml

TEAM_FILE = "team.yaml"
PRACTICES_FILE = "practices.yaml"
"""What the report measures per practice (flows.reporting reads it); beside the definitions, not one of them."""


@dataclass
class LoadedDefinition:
    """A definition that passed both passes, with where it came from."""

    spec: ProcessSpec
    path: Path
    document: SourceDocument
    digest: str


@dataclass
class Library:
    """A folder of definitions and its team file."""

    team: TeamSpec
    definitions: dict[str, LoadedDefinition] = field(default_factory=dict)
    root: Path | None = None

    def get(self, process_or_file: str) -> LoadedDefinition:
        """A definition by process id or file name.

        Raises:
            NotFoundError: no such process or file, with a "did you mean" when a near name exists.
        """
        if process_or_file in self.definitions:
            return self.definitions[process_or_file]
        for loaded in self.definitions.values():
            if loaded.path.name == process_or_file or str(loaded.path) == process_or_file:
                return loaded
        where = f" in {self.root}" if self.root is not None else ""
        raise NotFoundError(f"no process {process_or_file!r}{where}{did_you_mean(process_or_file, self.definitions)}")


def shape_problems(document: SourceDocument, model: type[BaseModel], error: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into problems that point at the YAML."""
    items = error.errors(include_url=False)
    locs = [tuple(item["loc"]) for item in items]
    explained: list[tuple[PathKey, str, bool]] = []
    for item in items:
        loc = tuple(item["loc"])
        if item["type"] == "too_short" and any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs):
            continue  # "0 items after validation" only repeats that its items are wrong
        explained.append(_explain(document, model, item))
    # a misspelt field is one problem, not also "missing required field" of its right spelling
    suggested = {(path[:-1], _suggestion(message)) for path, message, at_key in explained if at_key}
    by_path: dict[tuple[PathKey, bool], list[str]] = {}
    for path, message, at_key in explained:
        if message.startswith("missing required field") and (path, message.split("'")[1]) in suggested:
            continue
        messages = by_path.setdefault((path, at_key), [])
        if message not in messages:
            messages.append(message)
    problems: list[Problem] = []
    for (path, at_key), messages in by_path.items():
        for message in _merge_alternatives(messages):
            problems.append(document.problem(path, message, key=at_key))
    return problems


def _suggestion(message: str) -> str | None:
    found = re.search(r"did you mean '([^']*)'\?", message)
    return found.group(1) if found else None


def _merge_alternatives(messages: list[str]) -> list[str]:
    """``expected text (got 5)`` and ``expected a list (got 5)`` from a union become one message."""
    expected = [m for m in messages if m.startswith("expected ") and " (got " in m]
    if len(expected) < 2:
        return messages
    got = expected[0][expected[0].index(" (got ") :]
    kinds = [m[len("expected ") : m.index(" (got ")] for m in expected]
    merged = f"expected {' or '.join(dict.fromkeys(kinds))}{got}"
    return [merged, *(m for m in messages if m not in expected)]


_PATTERNS = {
    spec_module.KEBAB: "kebab-case: lower-case letters and digits in words joined by '-', such as issue-resolution",
    spec_module.IDENTIFIER: "an identifier: a lower-case letter, then lower-case letters, digits, '_' or '-', such as tell-reporter",
    r"^[A-Z][A-Z0-9]{1,7}$": "a case key prefix: 2 to 8 upper-case letters or digits, starting with a letter, such as ISS",
}

_PLAIN_MESSAGES = {
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def _explain(document: SourceDocument, model: type[BaseModel], item: Any) -> tuple[PathKey, str, bool]:
    loc = tuple(item["loc"])
    kind = item["type"]
    if kind == "invalid_key" or (loc and loc[-1] == "[key]"):
        key_loc = loc[:-1] if loc[-1] == "[key]" else loc
        if kind == "value_error":  # a name refused by its own rule (an input named 'from')
            return _data_path(document.data, key_loc), str(item["msg"]).removeprefix("Value error, "), True
        # a number, date or list used as a mapping key
        return _data_path(document.data, key_loc), f"a key must be text, got {_shown(item.get('input'))}; quote it", True
    path = _data_path(document.data, loc)
    if kind == "extra_forbidden":
        owner = _model_at(model, document.data, path[:-1])
        allowed = sorted(info.alias or name for name, info in owner.model_fields.items()) if owner else []
        name = str(path[-1])
        hint = did_you_mean(name, allowed) or (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return path, f"unknown field {name!r}{hint}", True
    if kind == "missing":
        return path[:-1] if path and path[-1] == loc[-1] and not _has(document.data, path) else path, f"missing required field {loc[-1]!r}", False
    if kind == "union_tag_invalid":
        given = item.get("input", {}).get("type") if isinstance(item.get("input"), dict) else None
        return (*path, "type"), f"unknown step type {given!r}{did_you_mean(str(given), STEP_TYPES)}; allowed: {', '.join(STEP_TYPES)}", False
    if kind == "union_tag_not_found":
        return path, f"a step needs a 'type': one of {', '.join(STEP_TYPES)}", False
    message = str(item["msg"]).removeprefix("Value error, ")
    value = item.get("input")
    if kind == "literal_error" and loc and loc[-1] == "type":
        message = f"unknown type {value!r}{did_you_mean(str(value), spec_module.FIELD_TYPES)}; allowed: {', '.join(spec_module.FIELD_TYPES)}"
    elif kind == "string_pattern_mismatch":
        pattern = item["ctx"]["pattern"]
        described = _PATTERNS.get(pattern)
        message = f"{value!r} is not {described} (pattern {pattern})" if described else f"{value!r} does not match the pattern {pattern}"
    elif kind in _PLAIN_MESSAGES:
        message = f"{_PLAIN_MESSAGES[kind]} (got {_shown(value)})"
        if kind == "string_type" and isinstance(value, date):
            message += "; quote it to keep it as text"
    elif not isinstance(value, (dict, list)) and kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {_shown(value)})"
    return path, message, False


def _shown(value: Any) -> str:
    """A value as messages quote it: its repr, cut to 60 characters; a YAML date as the text it was."""
    if isinstance(value, date):  # a datetime too
        return repr(value.isoformat())
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _has(data: Any, path: PathKey) -> bool:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _data_path(data: Any, loc: tuple[Any, ...]) -> PathKey:
    """Drop pydantic's own loc parts (union tags, 'function-after', ...) that are not in the data."""
    path: list[str | int] = []
    node = data
    tag_skipped: Any = None
    for part in loc:
        if isinstance(node, dict) and part == node.get("type") and tag_skipped is not node:
            tag_skipped = node  # the discriminated union's tag comes right after the step itself
            continue
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, (dict, list)) and isinstance(part, (str, int)) and part == loc[-1]:
            path.append(part)
            node = None
    return tuple(path)


def _model_at(model: type[BaseModel], data: Any, path: PathKey) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (an input field, a branch, a checklist item...)."""
    current: Any = model
    node = data
    for part in path:
        current = _resolve(current, node)
        if isinstance(node, dict):
            child = node.get(part)
        else:
            child = node[part] if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) else None
        current = _member(current, part)
        if current is None:
            return None
        node = child
    current = _resolve(current, node)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _member(annotation: Any, part: str | int) -> Any:
    """The type of one member of a model (its field), of a mapping (its values) or of a list (its items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(str(part))
        return info.annotation if info else None
    origin = typing.get_origin(annotation)
    args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
    if origin in (dict, Mapping):
        return args[1] if len(args) > 1 else None
    if origin in (tuple, list):
        return args[0] if args else None
    return None


def _resolve(annotation: Any, node: Any) -> Any:
    """Strip ``Annotated`` and pick the member of a union that fits the node (a step by its ``type``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _resolve(args[0], node)
    if origin in (typing.Union, types.UnionType):
        members = [candidate for candidate in args if candidate is not type(None)]
        if isinstance(node, dict) and "type" in node:
            for candidate in members:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    literal = candidate.model_fields.get("type")
                    if literal is not None and node["type"] in typing.get_args(literal.annotation):
                        return candidate
        fitting: tuple[Any, ...] = (dict, Mapping) if isinstance(node, dict) else (tuple, list) if isinstance(node, list) else ()
        for candidate in members:  # str | tuple[str, ...]: the one the node is
            model = isinstance(candidate, type) and issubclass(candidate, BaseModel)
            if typing.get_origin(candidate) in fitting or (model and isinstance(node, dict)):
                return _resolve(candidate, node)
        return _resolve(members[0], node) if members else None
    return annotation


def validate_shape(document: SourceDocument, model: type[BaseModel]) -> Any:
    """First pass: pydantic checks the shape; all problems of the file at once."""
    if not isinstance(document.data, dict):
        got = {type(None): "nothing (the file is empty)", list: "a list", str: "text"}.get(type(document.data), type(document.data).__name__)
        raise DefinitionError([document.problem((), f"expected a mapping at the top of the file, got {got}")])
    try:
        return model.model_validate(document.data)
    except ValidationError as error:
        raise DefinitionError(shape_problems(document, model, error)) from None


def load_team(path: Path, display: str | None = None) -> TeamSpec:
    """Load a team file.

    Raises:
        DefinitionError: every problem of the file, with positions.
    """
    return team_from_document(read_yaml(path, display))


def team_from_document(document: SourceDocument) -> TeamSpec:
    """A team file's shape, then its roles' members: every problem of the file at once.

    Raises:
        DefinitionError: every problem of the file, with positions.
    """
    try:
        team: TeamSpec = validate_shape(document, TeamSpec)
    except DefinitionError as error:
        raise DefinitionError([*error.problems, *_unknown_members(document), *_unknown_recipients(document), *_calendar_problems(document)]) from None
    if problems := [*_unknown_members(document), *_unknown_recipients(document), *_calendar_problems(document)]:
        raise DefinitionError(problems)
    return team


def _unknown_recipients(document: SourceDocument) -> list[Problem]:
    """The digest's ``to`` naming a role or person the team does not have, read from the file as written."""
    body = document.data.get("team") if isinstance(document.data, dict) else None
    digest = body.get("digest") if isinstance(body, dict) else None
    listed = digest.get("to") if isinstance(digest, dict) else None
    if not isinstance(listed, list):
        return []
    known = {"role": body.get("roles") or {}, "person": body.get("people") or {}}  # type: ignore[union-attr]
    problems: list[Problem] = []
    for index, reference in enumerate(listed):
        kind, separator, name = reference.partition(":") if isinstance(reference, str) else ("", "", "")
        names = known.get(kind)
        if separator and isinstance(names, dict) and name.strip() and name.strip() not in names:
            problems.append(document.problem(("team", "digest", "to", index), f"unknown {kind} {name.strip()!r}{did_you_mean(name.strip(), names)}"))
    return problems


def _calendar_problems(document: SourceDocument) -> list[Problem]:
    """A weekday given twice in a calendar's ``hours``; the default ``calendar:`` naming none of ``calendars:`` (the file as written)."""
    body = document.data.get("team") if isinstance(document.data, dict) else None
    calendars = body.get("calendars") if isinstance(body, dict) else None
    known: dict[str, Any] = calendars if isinstance(calendars, dict) else {}
    problems: list[Problem] = []
    for name, calendar in known.items():
        hours = calendar.get("hours") if isinstance(calendar, dict) else None
        keys = [str(key) for key in hours] if isinstance(hours, dict) else []
        for index, message in repeated_weekdays(keys):
            problems.append(document.problem(("team", "calendars", name, "hours", keys[index]), message, key=True))
    default = body.get("calendar") if isinstance(body, dict) else None
    if isinstance(default, str) and default not in known:
        listed = did_you_mean(default, known) or (f"; the team has {', '.join(sorted(known))}" if known else "; add it under calendars:")
        problems.append(document.problem(("team", "calendar"), f"unknown calendar {default!r}{listed}"))
    return problems


def _unknown_members(document: SourceDocument) -> list[Problem]:
    """Role members who are not people of the team, read from the file as written (its shape may be wrong elsewhere)."""
    body = document.data.get("team") if isinstance(document.data, dict) else None
    people = body.get("people") if isinstance(body, dict) else None
    roles = body.get("roles") if isinstance(body, dict) else None
    if not isinstance(people, dict) or not isinstance(roles, dict):
        return []
    problems: list[Problem] = []
    for role, raw in roles.items():
        listed, where = (raw, ("team", "roles", role)) if isinstance(raw, list) else (raw.get("members") if isinstance(raw, dict) else None, ("team", "roles", role, "members"))
        if not isinstance(listed, list):
            continue
        for index, member in enumerate(listed):
            if isinstance(member, str) and member not in people:
                problems.append(document.problem((*where, index), f"unknown person {member!r}{did_you_mean(member, people)}"))
    return problems


def find_team_file(start: Path) -> Path | None:
    """The team file beside a definition, or in the nearest folder above it."""
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.resolve().parents):
        if (candidate / TEAM_FILE).is_file():
            return candidate / TEAM_FILE
    return None


def digest(text: str) -> str:
    """The hash that ties a case to the exact definition it runs."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_definition(path: Path, display: str | None = None) -> tuple[ProcessSpec, SourceDocument]:
    """First pass only: a definition's shape (no team, no cross-references)."""
    document = read_yaml(path, display)
    return validate_shape(document, ProcessSpec), document


def definition_files(paths: Iterable[Path]) -> list[Path]:
    """The definition files named by files and folders (team, practices and scenario files left out)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.glob("*.yaml")
                    if p.name not in (TEAM_FILE, PRACTICES_FILE) and not p.name.endswith(".scenarios.yaml")
                )
            )
        else:
            out.append(path)
    return out
