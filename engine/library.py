"""Loading a whole folder of definitions with its team file, checking everything at once; the definition a case runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .checks import DefinitionChecker
from .errors import DefinitionError, NotFoundError, Problem
from .loader import (
    TEAM_FILE,
    Library,
    LoadedDefinition,
    definition_files,
    digest,
    find_team_file,
    load_team,
    parse_definition,
    validate_shape,
)
from .spec import ProcessSpec
from .team import TeamSpec
from .yaml_source import parse_yaml


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


DEFINITION_SUFFIXES = (".yaml", ".yml")


def process_argument(argument: str, folder: Path) -> tuple[Path, str]:
    """Where a command's ``PROCESS|FILE`` argument points: (the folder to load, the name to get from it).

    A definition file names its own folder; a process id is looked up in ``folder``.
    """
    target = Path(argument)
    if target.suffix in DEFINITION_SUFFIXES:
        return target.parent, target.name
    return folder, argument


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


# --- which definition a case runs ------------------------------------------------------------------

CURRENT = "current"
STORED = "stored"
FALLBACK = "fallback"


@dataclass(frozen=True)
class CaseDefinition:
    """The definition a case runs, and where it came from.

    Attributes:
        spec: the definition.
        source: ``current`` (the folder's file, unchanged since the case opened), ``stored``
            (the text the register kept when the case opened: the file changed since) or
            ``fallback`` (the register has no usable text: the folder's current file, with
            ``note`` saying so).
        note: why the fallback was taken.
    """

    spec: ProcessSpec
    source: str
    note: str | None = None


StoredText = Callable[[str], "str | None"]
"""The text the register kept under a definition hash, None when it has none."""


def definition_of_case(library: Library | None, process: str, definition_hash: str, stored_text: StoredText) -> CaseDefinition:
    """The one answer to "which definition does this case run" (running cases keep their version).

    The folder's definition when its hash is the case's; else the text the register kept
    under the case's hash; else, explicitly, the folder's current definition of the process.

    Args:
        library: the definitions folder, None where there is none (``aftercare answer`` on
            a machine that has only the register).
        process: the case's process.
        definition_hash: the hash of the definition the case opened with.
        stored_text: the register's text under a hash.

    Raises:
        NotFoundError: the folder has no such process and the register no text to fall back on.
    """
    loaded = library.definitions.get(process) if library is not None else None
    if loaded is not None and loaded.digest == definition_hash:
        return CaseDefinition(loaded.spec, CURRENT)
    text = stored_text(definition_hash)
    problem = f"the register has no text of {process} definition {definition_hash}"
    if text is not None:
        try:
            return CaseDefinition(_stored_spec(process, definition_hash, text), STORED)
        except DefinitionError as error:
            problem = f"the stored text of {process} definition {definition_hash} no longer loads ({error.problems[0]})"
    if loaded is None:
        where = f"in {library.root}" if library is not None else "folder of definitions here"
        raise NotFoundError(f"{problem}, and there is no process {process!r} {where}")
    return CaseDefinition(loaded.spec, FALLBACK, f"{problem}; using the current file {loaded.path.name}")


@lru_cache(maxsize=256)
def _stored_spec(process: str, definition_hash: str, text: str) -> ProcessSpec:
    spec: ProcessSpec = validate_shape(parse_yaml(text, f"{process}@{definition_hash}"), ProcessSpec)
    return spec
