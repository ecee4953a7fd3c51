"""Loading a whole folder of definitions with its team file, checking everything at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from .checks import DefinitionChecker
from .errors import DefinitionError, Problem
from .loader import (
    TEAM_FILE,
    Library,
    LoadedDefinition,
    definition_files,
    digest,
    find_team_file,
    load_team,
    parse_definition,
)
from .spec import ProcessSpec
from .team import TeamSpec


def validate(paths: Iterable[Path], templates: Mapping[str, str] | None = None) -> tuple[dict[Path, LoadedDefinition], list[Problem]]:
    """Load and check definitions named by files and folders.

    Definitions are checked against the team file beside them (or above), and
    ``start`` steps against the other definitions of their folder.

    Returns:
        The definitions that passed, and every problem found (all files, all problems).
    """
    files = definition_files(list(paths))
    problems: list[Problem] = []
    teams: dict[Path, TeamSpec | None] = {}
    parsed: dict[Path, tuple[ProcessSpec, object]] = {}
    for file in files:
        try:
            parsed[file] = parse_definition(file)
        except DefinitionError as error:
            problems.extend(error.problems)
    catalogs: dict[Path, dict[str, ProcessSpec]] = {}
    loaded: dict[Path, LoadedDefinition] = {}
    for file, (spec, document) in parsed.items():
        folder = file.parent
        team_file = find_team_file(file)
        if team_file not in teams and team_file is not None:
            try:
                teams[team_file] = load_team(team_file)
            except DefinitionError as error:
                problems.extend(error.problems)
                teams[team_file] = None
        team = teams.get(team_file) if team_file else None
        if folder not in catalogs:
            catalogs[folder] = _catalog(folder, parsed)
        found = DefinitionChecker(spec, document, team, catalogs[folder], templates).run()  # type: ignore[arg-type]
        if not found and team_file is None:
            found.append(Problem(str(file), 1, 1, "", f"no {TEAM_FILE} beside the definition or in a folder above it"))
        problems.extend(found)
        if not found:
            text = file.read_text(encoding="utf-8")
            loaded[file] = LoadedDefinition(spec, file, document, digest(text))  # type: ignore[arg-type]
    problems.extend(_duplicate_processes(loaded))
    return loaded, problems


def _catalog(folder: Path, parsed: Mapping[Path, tuple[ProcessSpec, object]]) -> dict[str, ProcessSpec]:
    """The processes a definition in ``folder`` may start: every definition in that folder."""
    catalog = {spec.process: spec for file, (spec, _) in parsed.items() if file.parent == folder}
    for file in definition_files([folder]):
        if file not in parsed:
            try:
                spec, _ = parse_definition(file)
            except DefinitionError:
                continue
            catalog.setdefault(spec.process, spec)
    return catalog


def _duplicate_processes(loaded: Mapping[Path, LoadedDefinition]) -> list[Problem]:
    seen: dict[str, Path] = {}
    problems = []
    for file, definition in sorted(loaded.items()):
        owner = seen.setdefault(definition.spec.process, file)
        if owner != file:
            line, column = definition.document.position(("process",))
            problems.append(Problem(str(file), line, column, "process", f"process id {definition.spec.process!r} is also used by {owner}"))
    return problems


def load_library(folder: Path, templates: Mapping[str, str] | None = None) -> Library:
    """Load every definition of a folder and its team file.

    Raises:
        DefinitionError: with every problem of every file, when any file has one.
    """
    team_file = folder / TEAM_FILE
    if not team_file.is_file():
        raise DefinitionError([Problem(str(team_file), 0, 0, "", f"no {TEAM_FILE} in {folder}")])
    loaded, problems = validate([folder], templates)
    if problems:
        raise DefinitionError(problems)
    library = Library(team=load_team(team_file), root=folder)
    for definition in loaded.values():
        library.definitions[definition.spec.process] = definition
    return library
