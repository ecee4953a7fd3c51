"""Loading definitions and team files: YAML with positions, then pydantic for shape, then the checks for meaning."""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import spec as spec_module
from .errors import DefinitionError, Problem
from .spec import STEP_TYPES, ProcessSpec
from .suggest import did_you_mean
from .team import TeamSpec
from .yaml_source import PathKey, SourceDocument, read_yaml

TEAM_FILE = "team.yaml"


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
            KeyError: with a "did you mean" when a near name exists.
        """
        if process_or_file in self.definitions:
            return self.definitions[process_or_file]
        for loaded in self.definitions.values():
            if loaded.path.name == process_or_file or str(loaded.path) == process_or_file:
                return loaded
        raise KeyError(f"no process {process_or_file!r}{did_you_mean(process_or_file, self.definitions)}")


def shape_problems(document: SourceDocument, model: type[BaseModel], error: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into problems that point at the YAML."""
    problems: list[Problem] = []
    seen: set[tuple[PathKey, str]] = set()
    for item in error.errors(include_url=False):
        path, message, at_key = _explain(document, model, item)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        problems.append(document.problem(path, message, key=at_key))
    return problems


def _explain(document: SourceDocument, model: type[BaseModel], item: Any) -> tuple[PathKey, str, bool]:
    loc = tuple(item["loc"])
    path = _data_path(document.data, loc)
    kind = item["type"]
    if kind == "extra_forbidden":
        owner = _model_at(model, document.data, path[:-1])
        allowed = sorted(owner.model_fields) if owner else []
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
        message = f"{value!r} does not match the pattern {item['ctx']['pattern']}"
    elif not isinstance(value, (dict, list)) and kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {value!r})"
    return path, message, False


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
    for part in loc:
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
    """The pydantic model that validates the mapping at ``path``."""
    current: Any = model
    node = data
    for part in path:
        node = node[part] if isinstance(node, (dict, list)) else None
        current = _descend(current, part, node)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _descend(annotation: Any, part: str | int, node: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(str(part))
        return _unwrap(info.annotation, node) if info else None
    return _unwrap(annotation, node)


def _unwrap(annotation: Any, node: Any) -> Any:
    """Pick the member of a container or union type that fits the node."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap(args[0], node)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if isinstance(node, dict) and "type" in node:
            for candidate in args:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    literal = candidate.model_fields.get("type")
                    if literal is not None and node["type"] in typing.get_args(literal.annotation):
                        return candidate
        for candidate in args:
            if candidate is not type(None):
                return _unwrap(candidate, node)
    if origin in (dict, Mapping):
        return args[1] if args else None
    if origin in (tuple, list):
        return args[0] if args else None
    return annotation


def validate_shape(document: SourceDocument, model: type[BaseModel]) -> Any:
    """First pass: pydantic checks the shape; all problems of the file at once."""
    if not isinstance(document.data, dict):
        raise DefinitionError([document.problem((), f"expected a mapping at the top of the file, got {type(document.data).__name__}")])
    try:
        return model.model_validate(document.data)
    except ValidationError as error:
        raise DefinitionError(shape_problems(document, model, error)) from None


def load_team(path: Path, display: str | None = None) -> TeamSpec:
    """Load a team file.

    Raises:
        DefinitionError: every problem of the file, with positions.
    """
    document = read_yaml(path, display)
    team: TeamSpec = validate_shape(document, TeamSpec)
    problems: list[Problem] = []
    for role, role_spec in team.roles.items():
        for index, member in enumerate(role_spec.members):
            if member not in team.people:
                raw = document.data["team"]["roles"][role]
                where: PathKey = ("team", "roles", role, index) if isinstance(raw, list) else ("team", "roles", role, "members", index)
                problems.append(document.problem(where, f"unknown person {member!r}{did_you_mean(member, team.people)}"))
    if problems:
        raise DefinitionError(problems)
    return team


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
    """The definition files named by files and folders (team files and scenario files left out)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(p for p in path.glob("*.yaml") if p.name != TEAM_FILE and not p.name.endswith(".scenarios.yaml"))
            )
        else:
            out.append(path)
    return out
