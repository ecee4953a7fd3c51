"""``aftercare test [PATH] [--min-coverage N]``: run the scenarios beside the definitions and report coverage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aftercare.engine.errors import Problem


def add_parsers(sub: Any) -> None:
    """Add the ``test`` parser."""
    p = sub.add_parser(
        "test",
        help="run the scenarios beside the definitions; step and branch coverage per definition",
        description=(
            "Run every NAME.scenarios.yaml beside its definition NAME.yaml through the simulator, "
            "print scenarios passed/failed and step and branch coverage per definition and in total, "
            "and exit 1 when a scenario fails or coverage is below --min-coverage."
        ),
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="a folder, a definition or a scenario file (default: AFTERCARE_PROCESSES or ./processes)")
    p.add_argument("--min-coverage", type=float, default=0.0, metavar="N", help="the step and branch coverage (%%) every definition and the total must reach")
    p.set_defaults(handler=test)


def _targets(path: Path) -> tuple[Path, set[Path] | None]:
    """The folder to load and, for a single file, the definition to test."""
    if path.is_dir():
        return path, None
    from aftercare.engine.scenarios import SCENARIOS_SUFFIX, definition_file_for

    definition = definition_file_for(path) if path.name.endswith(SCENARIOS_SUFFIX) else path
    return path.parent, {definition.resolve()}


def test(args: argparse.Namespace) -> int:
    """Run the scenarios; print results and coverage; exit 1 on a failure or coverage below the minimum."""
    from aftercare.engine import settings
    from aftercare.engine.library import validate
    from aftercare.engine.loader import Library, find_team_file, load_team
    from aftercare.engine.scenarios import SCENARIOS_SUFFIX, DefinitionReport, definition_file_for, percent, run_definition_scenarios
    from aftercare.notifications import Composer, template_sources

    path = Path(args.path) if args.path else settings.processes_folder()
    if not path.exists():
        print(f"{path}:0:0: no such file or folder", file=sys.stderr)
        return 1
    folder, only = _targets(path)
    if only is not None and not any(p.is_file() for p in only):
        print(f"{path}:0:0: no definition {next(iter(only)).name} beside it", file=sys.stderr)
        return 1
    loaded, problems = validate([folder], template_sources([folder]))
    team_file = find_team_file(folder)
    if team_file is None:
        problems.append(Problem(str(folder), 0, 0, "", "no team.yaml in the folder or above it"))
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"aftercare test: {len(problems)} problem(s) in the definitions; fix them first (aftercare validate {folder})", file=sys.stderr)
        return 1
    assert team_file is not None
    team = load_team(team_file)
    catalog = {item.spec.process: item.spec for item in loaded.values()}
    library = Library(team=team, root=folder, definitions={item.spec.process: item for item in loaded.values()})
    composer = Composer.for_library(library)

    orphans = []
    if only is None:
        known = {file.resolve() for file in loaded}
        orphans = [file for file in sorted(folder.glob(f"*{SCENARIOS_SUFFIX}")) if definition_file_for(file).resolve() not in known]

    reports: list[DefinitionReport] = []
    for file, definition in sorted(loaded.items(), key=lambda item: item[1].spec.process):
        if only is not None and file.resolve() not in only:
            continue
        scenario_file = path if only is not None and path.name.endswith(SCENARIOS_SUFFIX) else None
        reports.append(run_definition_scenarios(definition.spec, file, team, catalog, composer, scenario_file))

    minimum = args.min_coverage
    failed_scenarios = 0
    file_problems = 0
    below: list[str] = []
    for report in reports:
        assert report.coverage is not None
        coverage = report.coverage
        where = report.scenario_file or "no scenarios file"
        print(
            f"{report.spec.process} ({where}): {report.passed} passed, {report.failed} failed; "
            f"steps {coverage.step_percent:.1f}% ({coverage.steps_covered}/{len(coverage.steps)}), "
            f"branches {coverage.branch_percent:.1f}% ({coverage.exits_covered}/{len(coverage.exits)})"
        )
        for problem in report.problems:
            print(f"  {problem}")
        file_problems += len(report.problems)
        if report.scenario_file is None:
            print(f"  no scenarios: write {definition_scenarios_name(report.definition)}")
        for result in report.results:
            for failure in result.failures:
                print(f"  FAIL {failure}")
        failed_scenarios += report.failed
        if coverage.missed_steps:
            print(f"  steps not visited: {', '.join(coverage.missed_steps)}")
        if coverage.missed_exits:
            print(f"  exits not taken: {', '.join(coverage.missed_exits)}")
        if coverage.step_percent < minimum or coverage.branch_percent < minimum:
            below.append(f"{report.spec.process} (steps {coverage.step_percent:.1f}%, branches {coverage.branch_percent:.1f}%)")
    for orphan in orphans:
        print(f"{orphan}:1:1: no definition {definition_file_for(orphan).name} beside these scenarios")
        file_problems += 1

    steps = sum(len(r.coverage.steps) for r in reports if r.coverage)
    visited = sum(r.coverage.steps_covered for r in reports if r.coverage)
    exits = sum(len(r.coverage.exits) for r in reports if r.coverage)
    taken = sum(r.coverage.exits_covered for r in reports if r.coverage)
    passed = sum(r.passed for r in reports)
    step_total, branch_total = percent(visited, steps), percent(taken, exits)
    print(
        f"total: {len(reports)} definition(s), {passed + failed_scenarios} scenario(s): {passed} passed, {failed_scenarios} failed; "
        f"steps {step_total:.1f}% ({visited}/{steps}), branches {branch_total:.1f}% ({taken}/{exits})"
    )

    verdict = 0
    if failed_scenarios or file_problems:
        parts = [f"{failed_scenarios} scenario(s) failed"] if failed_scenarios else []
        parts += [f"{file_problems} problem(s) in scenario files"] if file_problems else []
        print(f"aftercare test: {', '.join(parts)}", file=sys.stderr)
        verdict = 1
    if step_total < minimum or branch_total < minimum:
        below.insert(0, f"total (steps {step_total:.1f}%, branches {branch_total:.1f}%)")
    if below:
        print(f"aftercare test: coverage below {minimum:g}%: {'; '.join(below)}", file=sys.stderr)
        verdict = 1
    return verdict


def definition_scenarios_name(definition: Path) -> str:
    """The scenario file a definition is missing, for the hint."""
    from aftercare.engine.scenarios import scenario_file_for

    return str(scenario_file_for(definition))

