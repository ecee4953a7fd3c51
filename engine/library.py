"""Loading a whole folder of definitions with its team file, checking everything at once; the definition a case runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .checks import DefinitionChecker
from .errors import DefinitionError, NotFoundError, Problem
from .loader import (
    PRACTICES_FILE,
    TEAM_FILE,
    Library,
    LoadedDefinition,
    definition_files,
    digest,
    find_team_file,
    load_team,
    parse_definition,
    team_from_document,
    validate_shape,
)
from .scenarios import SCENARIOS_SUFFIX, ScenarioFile, ScenarioFileSpec, check_scenarios, definition_file_for
from .spec import ProcessSpec
from .team import TeamSpec
from .yaml_source import SourceDocument, parse_yaml, read_yaml


def validate(
    paths: Iterable[Path], templates: Mapping[str, str] | None = None, *, require_definitions: bool = True
) -> tuple[dict[Path, LoadedDefinition], list[Problem]]:
    """Load and check definitions named by files and folders.

    Definitions are checked against the team file beside them (or above), and
    ``start`` steps against the other definitions of their folder. A file given by name is
    checked as what it is: a team file (``team.yaml``, or ``team:`` at its top) with the
    team model, a scenario file (``NAME.scenarios.yaml``, or ``scenarios:`` at its top)
    against the definition beside it, anything else as a definition.

    Args:
        paths: files and folders.
        templates: the notification templates by name, to check notify steps against.
        require_definitions: a folder without definitions is a problem ("no definitions in X").

    Returns:
        The definitions that passed, and every problem found (all files, all problems).
    """
    problems: list[Problem] = []
    files: list[Path] = []
    documents: dict[Path, SourceDocument] = {}
    team_files: list[tuple[Path, SourceDocument]] = []
    scenario_files: list[tuple[Path, SourceDocument]] = []
    for path in paths:
        if path.is_dir():
            in_folder = definition_files([path])
            if not in_folder and require_definitions:
                problems.append(Problem(str(path), 0, 0, "", f"no definitions in {path}: a definition is a NAME.yaml beside {TEAM_FILE}"))
                if (path / TEAM_FILE).is_file():
                    files.append(path / TEAM_FILE)
            files.extend(in_folder)
        else:
            files.append(path)
    files = list(dict.fromkeys(files))
    for file in files:  # grows while read: the definition a scenario file tests joins the list
        try:
            document = read_yaml(file)
        except DefinitionError as error:
            problems.extend(error.problems)
            continue
        kind = _kind(file, document)
        if kind == "practices":
            continue  # the report's figures: checked where they are read (flows.reporting)
        if kind == "team":
            team_files.append((file, document))
        elif kind == "scenarios":
            scenario_files.append((file, document))
            definition = _scenarios_definition(file, document)
            if definition is not None and definition not in files and definition.is_file():
                files.append(definition)  # checked too: the scenarios are only as good as it is
        else:
            documents[file] = document
    teams: dict[Path, TeamSpec | None] = {}
    for file, document in team_files:
        teams[file.resolve()] = _team(document, problems)
    parsed: dict[Path, tuple[ProcessSpec, SourceDocument]] = {}
    for file in files:
        if file in documents:
            try:
                parsed[file] = (validate_shape(documents[file], ProcessSpec), documents[file])
            except DefinitionError as error:
                problems.extend(error.problems)
    catalogs: dict[Path, dict[str, ProcessSpec]] = {}
    loaded: dict[Path, LoadedDefinition] = {}
    for file, (spec, document) in parsed.items():
        folder = file.parent
        team_file = find_team_file(file)
        key = team_file.resolve() if team_file is not None else None
        if key is not None and key not in teams:
            teams[key] = _team(None, problems, team_file)
        team = teams.get(key) if key is not None else None
        if folder not in catalogs:
            catalogs[folder] = _catalog(folder, parsed)
        found = DefinitionChecker(spec, document, team, catalogs[folder], templates, team_has_problems=key is not None and team is None).run()
        if not found and team_file is None:
            found.append(Problem(str(file), 1, 1, "", f"no {TEAM_FILE} beside the definition or in a folder above it"))
        problems.extend(found)
        if not found and team is not None:
            text = file.read_text(encoding="utf-8")
            loaded[file] = LoadedDefinition(spec, file, document, digest(text))
    problems.extend(_duplicate_processes(loaded))
    for file, document in scenario_files:
        problems.extend(_check_scenarios(file, document, loaded, catalogs.get(file.parent) or _catalog(file.parent, parsed)))
    return loaded, problems


def check_definition(
    document: SourceDocument,
    team: TeamSpec | None,
    catalog: Mapping[str, ProcessSpec],
    templates: Mapping[str, str] | None = None,
) -> ProcessSpec:
    """Both passes over one parsed definition: its shape, then its meaning against a team and a catalog.

    Raises:
        DefinitionError: every problem of the definition, with positions.
    """
    spec: ProcessSpec = validate_shape(document, ProcessSpec)
    problems = DefinitionChecker(spec, document, team, catalog, templates).run()
    if problems:
        raise DefinitionError(problems)
    return spec


def _kind(file: Path, document: SourceDocument) -> str:
    """What a file given by name is: ``team``, ``practices``, ``scenarios`` or ``definition``."""
    data = document.data if isinstance(document.data, dict) else {}
    if file.name == PRACTICES_FILE or ("practices" in data and "steps" not in data):
        return "practices"
    if file.name == TEAM_FILE or ("team" in data and not {"process", "steps"} & set(data)):
        return "team"
    if file.name.endswith(SCENARIOS_SUFFIX) or ("scenarios" in data and "steps" not in data):
        return "scenarios"
    return "definition"


def _team(document: SourceDocument | None, problems: list[Problem], file: Path | None = None) -> TeamSpec | None:
    """A team file checked, its problems added to ``problems``; None when it has any."""
    try:
        return team_from_document(document) if document is not None else load_team(file)  # type: ignore[arg-type]
    except DefinitionError as error:
        problems.extend(error.problems)
        return None


def _scenarios_definition(file: Path, document: SourceDocument) -> Path | None:
    """The definition a scenario file tests: NAME.yaml beside NAME.scenarios.yaml, else the one its ``process:`` names."""
    if file.name.endswith(SCENARIOS_SUFFIX):
        return definition_file_for(file)
    process = document.data.get("process") if isinstance(document.data, dict) else None
    if isinstance(process, str):
        candidate = file.with_name(f"{process}.yaml")
        return candidate if candidate.is_file() else None
    return None


def _check_scenarios(
    file: Path, document: SourceDocument, loaded: Mapping[Path, LoadedDefinition], catalog: Mapping[str, ProcessSpec]
) -> list[Problem]:
    """A scenario file's shape, and what it names, against the definition it tests."""
    try:
        scenarios = ScenarioFile(file, validate_shape(document, ScenarioFileSpec), document)
    except DefinitionError as error:
        return error.problems
    definition = _scenarios_definition(file, document)
    if definition is None or not definition.is_file():
        wanted = definition.name if definition is not None else f"NAME.yaml for {file.name} (NAME{SCENARIOS_SUFFIX})"
        where = document.position(("process",)) if scenarios.spec.process else document.position(())
        return [Problem(str(file), *where, "", f"no definition {wanted} beside the scenarios, so they test nothing")]
    found = next((item for path, item in loaded.items() if path.resolve() == definition.resolve()), None)
    if found is None:
        return []  # the definition has problems of its own, reported with its name
    return check_scenarios(scenarios, found.spec, catalog)


def _catalog(folder: Path, parsed: Mapping[Path, tuple[ProcessSpec, SourceDocument]]) -> dict[str, ProcessSpec]:
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


def shipped_folder() -> Path:
    """The process library shipped as package data (``aftercare.processes``, a folder without code).

    Raises:
        NotFoundError: the package is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("aftercare.processes")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir() and (Path(location) / TEAM_FILE).is_file():
            return Path(location)
    raise NotFoundError("the shipped process library (aftercare.processes) is not installed")


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
    loaded, problems = validate([folder], templates, require_definitions=False)
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
        if library is None:
            raise NotFoundError(f"{problem}, and there is no folder of definitions here to take {process!r} from (set AFTERCARE_PROCESSES)")
        raise NotFoundError(f"{problem}, and there is no process {process!r} in {library.root}")
    return CaseDefinition(loaded.spec, FALLBACK, f"{problem}; using the current file {loaded.path.name}")


@lru_cache(maxsize=256)
def _stored_spec(process: str, definition_hash: str, text: str) -> ProcessSpec:
    spec: ProcessSpec = validate_shape(parse_yaml(text, f"{process}@{definition_hash}"), ProcessSpec)
    return spec
