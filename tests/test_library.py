"""The shipped library: enough definitions, schedules with a timezone, scenarios for each, links as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aftercare.engine.library import validate
from aftercare.engine.loader import LoadedDefinition, load_team
from aftercare.engine.scenarios import load_scenarios, scenario_file_for
from aftercare.engine.spec import ApprovalStep, ChecklistStep, DecisionStep, EndStep, FormStep, NotifyStep, ProcessSpec, StartStep

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ROOT / "processes"
PRACTICES = ROOT / "docs" / "practices.md"

HEADINGS = [
    "持续沟通", "制定维护计划", "监控项目绩效", "用户培训与支持", "问题管理", "知识管理", "持续改进", "客户关系管理", "风险管理",
    "文档管理", "质量管理", "团队管理", "技术支持", "成本管理", "项目评估", "环境管理", "创新管理", "处理变更请求",
]
CORE = ("issue-resolution", "risk-response", "improvement-cycle", "quality-improvement")


@pytest.fixture(scope="module")
def library() -> dict[str, LoadedDefinition]:
    loaded, problems = validate([PROCESSES])
    assert not problems, "\n".join(str(p) for p in problems)
    return {definition.spec.process: definition for definition in loaded.values()}


def _starts(spec: ProcessSpec) -> set[str]:
    return {step.process for step in spec.steps if isinstance(step, StartStep)}


def _table(heading: str) -> list[list[str]]:
    """The rows of the Markdown table under a ``## heading`` of docs/practices.md, cells stripped."""
    text = PRACTICES.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def _names(cell: str) -> list[str]:
    return re.findall(r"`([a-z][a-z0-9-]*)`", cell)


def _links(cell: str) -> set[tuple[str, str]]:
    """``a` → `b`, `c`; `d` → `e``` as {(a, b), (a, c), (d, e)}."""
    out: set[tuple[str, str]] = set()
    for part in cell.split(";"):
        if "→" in part:
            source, targets = part.split("→", 1)
            (origin,) = _names(source)
            out.update((origin, target) for target in _names(targets))
    return out


class TestDefinitions:
    def test_at_least_twenty(self, library: dict[str, LoadedDefinition]) -> None:
        assert len(library) >= 20, sorted(library)

    def test_keys_are_unique(self, library: dict[str, LoadedDefinition]) -> None:
        keys = [definition.spec.key for definition in library.values()]
        assert len(keys) == len(set(keys))

    def test_at_least_six_schedules_each_with_a_timezone(self, library: dict[str, LoadedDefinition]) -> None:
        scheduled = [d for d in library.values() if d.spec.schedule is not None]
        assert len(scheduled) >= 6, [d.spec.process for d in scheduled]
        for definition in scheduled:
            written = definition.document.data["schedule"]
            assert "timezone" in written, f"{definition.path}: the schedule relies on the default timezone"
            assert definition.spec.schedule is not None and definition.spec.schedule.timezone == "Asia/Shanghai"

    def test_the_required_rhythms(self, library: dict[str, LoadedDefinition]) -> None:
        def cron(process: str) -> str | None:
            schedule = library[process].spec.schedule
            return schedule.cron if schedule else None

        assert cron("maintenance-check") == "0 9 * * *"
        assert cron("review-meeting") == "0 10 * * MON"
        assert cron("kpi-review") == "0 9 1 * *"
        assert cron("cost-review") == "0 9 1 * *"
        assert cron("satisfaction-survey") == "0 10 1 1,4,7,10 *"
        assert cron("document-archive") == "0 9 10 1,4,7,10 *"

    def test_the_core_processes_approve_decide_and_notify(self, library: dict[str, LoadedDefinition]) -> None:
        for process in CORE:
            kinds = {type(step) for step in library[process].spec.steps}
            assert {ApprovalStep, DecisionStep, NotifyStep} <= kinds, process

    def test_risk_scores_likelihood_times_impact(self, library: dict[str, LoadedDefinition]) -> None:
        spec = library["risk-response"].spec
        assess = spec.step("assess")
        assert isinstance(assess, FormStep)
        for name in ("likelihood", "impact"):
            field = assess.form[name]
            assert (field.type, field.minimum, field.maximum) == ("integer", 1, 5)
        assert "assess.likelihood * assess.impact" in str(spec.step("rate").set["score"])  # type: ignore[union-attr]

    def test_quality_inspection_is_a_checklist_with_a_pass_mark(self, library: dict[str, LoadedDefinition]) -> None:
        inspect = library["quality-improvement"].spec.step("inspect")
        assert isinstance(inspect, ChecklistStep) and inspect.on_fail and 0 < inspect.pass_mark < 100

    def test_human_steps_have_due_dates_and_escalations(self, library: dict[str, LoadedDefinition]) -> None:
        missing = [
            f"{process}.{step.id}"
            for process, definition in library.items()
            for step in definition.spec.steps
            if isinstance(step, (ApprovalStep, FormStep, ChecklistStep)) and (step.due is None or (step.escalate_to is None and step.on_timeout is None))
        ]
        assert missing == []

    def test_every_definition_names_its_practice_in_chinese(self, library: dict[str, LoadedDefinition]) -> None:
        for process, definition in library.items():
            text = f"{definition.spec.title} {definition.spec.description}"
            assert re.search(r"[\u4e00-\u9fff]", text), process


class TestScenarios:
    def test_every_definition_has_scenarios(self, library: dict[str, LoadedDefinition]) -> None:
        missing = [str(scenario_file_for(d.path)) for d in library.values() if not scenario_file_for(d.path).is_file()]
        assert missing == []

    def test_every_schedule_is_run_by_a_scenario(self, library: dict[str, LoadedDefinition]) -> None:
        for definition in library.values():
            if definition.spec.schedule is not None:
                scenarios = load_scenarios(scenario_file_for(definition.path)).spec.scenarios
                assert any(s.from_schedule for s in scenarios), f"{definition.spec.process}: no scenario starts from the schedule's inputs"

    def test_scenario_answers_come_from_the_team(self) -> None:
        people = set(load_team(PROCESSES / "team.yaml").people)
        for file in sorted(PROCESSES.glob("*.scenarios.yaml")):
            for scenario in load_scenarios(file).spec.scenarios:
                for step, answers in scenario.answers.items():
                    for answer in answers if isinstance(answers, list) else [answers]:
                        linked_case_ending = set(answer) <= {"outcome", "after"}  # a start with wait: how a case it waits for ends
                        call_script = set(answer) in ({"output"}, {"error"})  # a call step: what its kind gives
                        assert answer.get("timeout") or linked_case_ending or call_script or answer.get("by") in people, f"{file.name}: {scenario.name}: {step}"


class TestLinks:
    def test_the_definitions_table_matches_the_definitions(self, library: dict[str, LoadedDefinition]) -> None:
        rows = _table("Definitions")
        assert sorted(_names(row[0])[0] for row in rows) == sorted(library)
        for process_cell, key, title, schedule, opens in rows:
            spec = library[_names(process_cell)[0]].spec
            assert key == spec.key, spec.process
            assert title == spec.title, spec.process
            expected = f"`{spec.schedule.cron}` {spec.schedule.timezone}" if spec.schedule else "—"
            assert schedule == expected, spec.process
            assert set(_names(opens)) == _starts(spec), spec.process

    def test_the_practices_table_has_every_heading(self) -> None:
        rows = _table("Practices")
        assert [row[1] for row in rows] == HEADINGS

    def test_the_practices_table_names_real_definitions_and_links(self, library: dict[str, LoadedDefinition]) -> None:
        covered: set[str] = set()
        for row in _table("Practices"):
            definitions = set(_names(row[3]))
            assert definitions <= set(library), row[1]
            assert definitions, row[1]
            covered |= definitions
            listed = _links(row[5])
            actual = {(source, target) for source in definitions for target in _starts(library[source].spec)}
            assert listed == actual, f"{row[1]}: the table lists {sorted(listed)}, the definitions start {sorted(actual)}"
        assert covered == set(library), f"in no practice: {sorted(set(library) - covered)}"

    def test_the_links_the_work_needs(self, library: dict[str, LoadedDefinition]) -> None:
        def start(process: str, target: str) -> StartStep:
            found = [s for s in library[process].spec.steps if isinstance(s, StartStep) and s.process == target]
            assert found, f"{process} does not start {target}"
            return found[0]

        assert start("satisfaction-survey", "issue-resolution")
        assert start("kpi-review", "improvement-cycle").for_each
        assert "minutes.action_items" in str(start("review-meeting", "action-item").for_each)
        assert "failed_items" in str(start("maintenance-check", "issue-resolution").for_each)
        for kind in ("issue-resolution", "change-request", "support-request"):
            assert start("customer-feedback", kind)
        assert start("support-request", "issue-resolution")
        # an emergency ends with its post-incident improvement
        steps = library["emergency-response"].spec.steps
        position = next(i for i, s in enumerate(steps) if isinstance(s, StartStep) and s.process == "improvement-cycle")
        assert isinstance(steps[position + 1], EndStep)
