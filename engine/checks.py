"""The second pass: what a definition means. References, reachability, loop exits, templates, people, schedules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2.exceptions import TemplateSyntaxError

from pydantic import BaseModel, ValidationError

from . import expressions, kinds, router
from .case import CASE_ATTRIBUTES
from .durations import is_business
from .structure import analyse
from .errors import NotFoundError, Problem
from .schedule_rules import cron_problem, quoted, timezone_problem
from .spec import (
    ApprovalStep,
    CallStep,
    ChecklistStep,
    DecisionStep,
    FieldSpec,
    FormStep,
    HumanStepBase,
    JoinStep,
    NotifyStep,
    ParallelStep,
    ProcessSpec,
    RecordStep,
    StartStep,
    StepSpec,
    WaitStep,
    is_human,
)
from .suggest import closest, did_you_mean
from .team import TeamSpec, channel_problem
from .values import coerce, parse_moment
from .yaml_source import PathKey, SourceDocument, format_path

HUMAN_OUTPUTS = frozenset({"decision", "comment", "by", "approved_by", "rejected_by", "answered_at", "answers", "visit"})
CHECKLIST_OUTPUTS = frozenset({"score", "passed", "failed", "failed_items", "items"})
AUTOMATIC_OUTPUTS: dict[str, frozenset[str]] = {
    "decision": frozenset({"exit", "next"}),
    "notify": frozenset({"recipients", "subject", "sent_at", "messages"}),
    "start": frozenset({"case", "cases", "process", "outcomes", "outcome", "completed"}),
    "wait": frozenset({"until", "fired_at"}),
    "end": frozenset({"outcome"}),
    "parallel": frozenset({"branches"}),
    "join": frozenset({"arrived"}),
}
FOR_EACH_OUTPUTS = frozenset({"instances", "completed"})
EVERY_STEP_OUTPUTS = frozenset({"visit", "withdrawn"})
ITEM = "item"
"""The name a ``for_each`` step's templates see its element by."""
_LONGEST_RRULE = 1000
_LISTED = 12  # names a message lists before it says "and N more"
NOTIFICATION_NAMES = frozenset({"recipient", "step", "links", "answer_command", "answer_code", "message", "reason", "subject"})
SCOPE_ROOTS = frozenset({"inputs", "case", "now", "steps"})


class DefinitionChecker:
    """Checks one definition's meaning against its team and the other definitions."""

    def __init__(
        self,
        spec: ProcessSpec,
        document: SourceDocument,
        team: TeamSpec | None,
        catalog: Mapping[str, ProcessSpec],
        templates: Mapping[str, str] | None = None,
        *,
        team_has_problems: bool = False,
        step_kinds: kinds.KindRegistry | None = None,
    ) -> None:
        """``team_has_problems``: there is a team file, but it did not load (its own problems say why),
        so references to people and roles go unchecked rather than reported as having no team.
        ``step_kinds``: the kinds ``call`` steps may name (default: the installed ones)."""
        self.spec = spec
        self.document = document
        self.team = team
        self.team_has_problems = team_has_problems
        self.catalog = catalog
        self.templates = templates
        self._step_kinds = step_kinds
        self.problems: list[Problem] = []
        self.step_path = {step.id: ("steps", index) for index, step in enumerate(spec.steps)}
        self.case_fields = {name for step in spec.steps if isinstance(step, RecordStep) for name in step.set}

    def run(self) -> list[Problem]:
        """Every problem of the definition (empty when it is sound)."""
        unique = self._unique_ids()
        self._jump_targets()
        if unique:  # with two steps of one id, "the step below" and every jump are ambiguous
            self._reachability_and_loops()
            self._structure()
        self._inputs_and_schedule()
        self._calendar()
        for index, step in enumerate(self.spec.steps):
            self._step(("steps", index), step)
        return sorted(self.problems, key=lambda p: (p.line, p.column, p.path))  # in the order of the file

    def _add(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.document.problem(path, message, key=key))

    # --- structure ---------------------------------------------------------------

    def _unique_ids(self) -> bool:
        seen: dict[str, int] = {}
        unique = True
        for index, step in enumerate(self.spec.steps):
            if step.id in seen:
                self._add(("steps", index, "id"), f"duplicate step id {step.id!r}; steps[{seen[step.id]}] has it already")
                unique = False
            else:
                seen[step.id] = index
        self.step_path = {step_id: ("steps", index) for step_id, index in seen.items()}
        return unique

    def _targets(self, step: StepSpec) -> Iterator[tuple[PathKey, str]]:
        if step.next:
            yield ("next",), step.next
        if isinstance(step, DecisionStep):
            for index, branch in enumerate(step.branches):
                yield ("branches", index, "next"), branch.next
            yield ("otherwise",), step.otherwise
        if isinstance(step, ApprovalStep) and step.on_reject:
            yield ("on_reject",), step.on_reject
        if isinstance(step, ChecklistStep) and step.on_fail:
            yield ("on_fail",), step.on_fail
        if isinstance(step, HumanStepBase) and step.on_timeout:
            yield ("on_timeout",), step.on_timeout
        if isinstance(step, ParallelStep):
            for index, target in enumerate(step.branches):
                yield ("branches", index), target
        if isinstance(step, CallStep) and step.on_error:
            yield ("on_error",), step.on_error

    def _jump_targets(self) -> None:
        for index, step in enumerate(self.spec.steps):
            for where, target in self._targets(step):
                if target not in self.step_path:
                    field_name = format_path(where)
                    self._add(("steps", index, *where), f"unknown step {target!r} in {field_name}{did_you_mean(target, self.step_path)}")

    def _graph(self) -> dict[str, list[str | None]]:
        """Step id -> the steps it may go to (None: the case ends).

        A misspelt target counts as the step it was meant to be, and one with no near
        name as a way out, so one typo is reported once, not again as an unreachable
        step or a loop with no exit.
        """
        graph: dict[str, list[str | None]] = {}
        for step in self.spec.steps:
            targets = [exit_.target for exit_ in router.exits(self.spec, step)]
            graph[step.id] = [t if t is None or t in self.step_path else self._meant(t) for t in targets]
        return graph

    def _meant(self, target: str) -> str | None:
        return closest(target, self.step_path)

    def _reachability_and_loops(self) -> None:
        graph = self._graph()
        start = self.spec.steps[0].id
        reached = {start}
        todo = [start]
        while todo:
            for target in graph[todo.pop()]:
                if target is not None and target not in reached:
                    reached.add(target)
                    todo.append(target)
        for step_id, path in self.step_path.items():
            if step_id not in reached:
                self._add((*path, "id"), f"step {step_id!r} is never reached: no step jumps to it and the one above never falls through to it")
        for component in strongly_connected(graph):
            cyclic = len(component) > 1 or any(node in graph[node] for node in component)
            if not cyclic:
                continue
            leaves = any(target is None or target not in component for node in component for target in graph[node])
            if not leaves:
                first = min(component, key=lambda node: self.step_path[node][1])
                ordered = sorted(component, key=lambda node: self.step_path[node][1])
                members = ", ".join(ordered[:_LISTED]) + (f" and {len(ordered) - _LISTED:,} more" if len(ordered) > _LISTED else "")
                self._add((*self.step_path[first], "id"), f"loop with no exit: steps {members} only lead to each other")

    def _structure(self) -> None:
        """Splits, joins and their regions (:mod:`.structure`); only once every jump target exists."""
        if any(target not in self.step_path for step in self.spec.steps for _, target in self._targets(step)):
            return
        _, problems = analyse(self.spec)
        for problem in problems:
            self._add((*self.step_path[problem.step], *problem.field), problem.message)

    # --- inputs and schedule ---------------------------------------------------------

    def _people(self) -> list[str]:
        return list(self.team.people) if self.team else []

    def _field(self, path: PathKey, name: str, field: FieldSpec) -> None:
        if field.default is not None:
            try:
                coerce(field, field.default, self._people())
            except ValueError as error:
                self._add((*path, "default"), f"default of {name!r}: {error}")

    def _inputs_and_schedule(self) -> None:
        for name, field in self.spec.inputs.items():
            self._field(("inputs", name), name, field)
        if self.spec.cancel_by:
            self._references(("cancel_by",), self.spec.cancel_by, people_only=True)
        sla = self.spec.sla
        if sla is not None and sla.escalate_to is not None:
            refs = (sla.escalate_to,) if isinstance(sla.escalate_to, str) else sla.escalate_to
            self._references(("sla", "escalate_to"), refs, people_only=False)
        schedule = self.spec.schedule
        if schedule is not None:
            zone = self._timezone(schedule.timezone)
            if schedule.cron is not None:
                self._cron(schedule.cron)
            if schedule.rrule is not None:
                self._rrule(schedule.rrule, zone)
            self._constant_inputs(("schedule", "inputs"), self.spec, schedule.inputs, "the schedule")

    def _calendar(self) -> None:
        """The calendar names one the team has; business durations have one; ``pause_while`` names steps that wait."""
        spec, team = self.spec, self.team
        calendars = team.team.calendars if team is not None else {}
        if spec.calendar is not None and team is not None and spec.calendar not in calendars:
            listed = f"; the team has {', '.join(sorted(calendars))}" if calendars else "; the team file has no calendars:"
            self._add(("calendar",), f"unknown calendar {spec.calendar!r}{did_you_mean(spec.calendar, calendars) or listed}")
        has_calendar = spec.calendar is not None or (team is not None and team.team.calendar is not None)
        if not has_calendar and team is not None:  # without a team (or one that did not load) its default is unknown
            for path, text in self._durations():
                if is_business(text):
                    self._add(path, f"{text!r} counts working time, but the process has no calendar; add calendar: NAME, or a default calendar: in the team file")
        if spec.sla is not None:
            for index, step_id in enumerate(spec.sla.pause_while):
                if step_id not in self.step_path:
                    self._add(("sla", "pause_while", index), f"unknown step {step_id!r}{did_you_mean(step_id, self.step_path)}")
                elif not (is_human(spec.step(step_id)) or isinstance(spec.step(step_id), WaitStep) or getattr(spec.step(step_id), "wait", None) is not None):
                    self._add(("sla", "pause_while", index), f"step {step_id!r} never waits, so the clock cannot stop there; name a human, wait or start-and-wait step")

    def _durations(self) -> Iterator[tuple[PathKey, str]]:
        """Every duration a calendar may count: ``sla.due``, each step's ``due``, ``remind_every``, ``wait.duration``."""
        if self.spec.sla is not None:
            yield ("sla", "due"), self.spec.sla.due
        for index, step in enumerate(self.spec.steps):
            for name in ("due", "remind_every", "duration"):
                value = getattr(step, name, None)
                if isinstance(value, str):
                    yield ("steps", index, name), value

    def _timezone(self, name: str) -> ZoneInfo | None:
        problem = timezone_problem(name)
        if problem:
            self._add(("schedule", "timezone"), problem)
            return None
        return ZoneInfo(name)

    def _cron(self, text: str) -> None:
        problem = cron_problem(text)
        if problem:
            self._add(("schedule", "cron"), problem)

    def _rrule(self, text: str, zone: ZoneInfo | None) -> None:
        from dateutil.rrule import rrulestr

        if len(text) > _LONGEST_RRULE:
            self._add(("schedule", "rrule"), f"invalid rrule {quoted(text)}: longer than {_LONGEST_RRULE} characters")
            return
        try:
            rrulestr(text, dtstart=datetime(2026, 1, 1, tzinfo=zone))
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as error:
            self._add(("schedule", "rrule"), f"invalid rrule {text!r}: {error}")

    def _constant_inputs(self, path: PathKey, target: ProcessSpec, given: Mapping[str, Any], who: str) -> None:
        for name, value in given.items():
            if name not in target.inputs:
                self._add((*path, name), f"{target.process!r} has no input {name!r}{did_you_mean(name, target.inputs)}", key=True)
            elif not expressions.is_template(value):
                try:
                    coerce(target.inputs[name], value, self._people())
                except ValueError as error:
                    self._add((*path, name), f"input {name!r} of {target.process!r}: {error}")
        for name, field in target.inputs.items():
            if field.required and field.default is None and name not in given:
                self._add(path if given else path[:-1], f"{who} does not give {target.process!r} its required input {name!r}")

    # --- steps -------------------------------------------------------------------------

    def _step(self, path: PathKey, step: StepSpec) -> None:
        extra = frozenset({ITEM}) if getattr(step, "for_each", None) is not None else frozenset()
        for name in ("title", "description"):
            value = getattr(step, name)
            if value is not None:
                self._template((*path, name), value, extra=extra)
        if is_human(step):
            self._human(path, step)  # type: ignore[arg-type]
        if isinstance(step, DecisionStep):
            for index, branch in enumerate(step.branches):
                self._template((*path, "branches", index, "when"), branch.when, expression=True)
        elif isinstance(step, NotifyStep):
            self._notify(path, step)
        elif isinstance(step, RecordStep):
            for name, value in step.set.items():
                self._templates_in((*path, "set", name), value)
        elif isinstance(step, StartStep):
            self._start(path, step)
        elif isinstance(step, CallStep):
            self._call(path, step)
        elif isinstance(step, WaitStep) and step.until is not None:
            if expressions.is_template(step.until):
                self._template((*path, "until"), step.until)
            else:
                self._until((*path, "until"), step.until)

    def _until(self, path: PathKey, text: str) -> None:
        """A literal ``until``: the date or datetime the runner will read (``values.parse_moment``)."""
        try:
            parse_moment(text)
        except ValueError as error:
            self._add(path, str(error))

    def _human(self, path: PathKey, step: ApprovalStep | FormStep | ChecklistStep) -> None:
        for name, field in step.form.items():
            self._field((*path, "form", name), name, field)
        extra = frozenset({ITEM}) if step.for_each is not None else frozenset()
        if step.for_each is not None:
            self._template((*path, "for_each"), step.for_each)
        before = len(self.problems)
        eligible = self._references((*path, "assignee"), step.assignees, people_only=True, extra=extra)
        eligible_known = len(self.problems) == before and self.team is not None  # an unknown role already said why nobody is eligible
        if isinstance(step, ApprovalStep) and eligible is not None and len(eligible) < step.quorum and eligible_known:
            self._add((*path, "quorum"), f"quorum {step.quorum} needs {step.quorum} distinct eligible people, but the assignee names only {len(eligible)} ({', '.join(eligible)})")
        if step.escalate_to is not None:
            refs = (step.escalate_to,) if isinstance(step.escalate_to, str) else step.escalate_to
            self._references((*path, "escalate_to"), refs, people_only=False)
            if step.due is None:
                self._add((*path, "escalate_to"), "escalate_to without due never fires; add due: DURATION")
        if step.on_timeout and step.due is None:
            self._add((*path, "on_timeout"), "on_timeout without due never fires; add due: DURATION")

    def _references(
        self, path: PathKey, references: tuple[str, ...], *, people_only: bool, extra: frozenset[str] = frozenset()
    ) -> list[str] | None:
        """Check role/person references; returns the eligible people when all are static."""
        people: list[str] = []
        static = True
        for index, reference in enumerate(references):
            where = path if len(references) == 1 and not isinstance(self._raw(path), list) else (*path, index)
            if expressions.is_template(reference):
                static = False
                self._template(where, reference, extra=extra)
                self._person_template(where, reference)
                continue
            kind, sep, name = reference.partition(":")
            if "://" in reference or (not people_only and not sep and reference in ("email", "console")):
                if people_only:
                    self._add(where, f"{reference!r} is a channel; an assignee is role:NAME or person:NAME")
                elif problem := channel_problem(reference):
                    self._add(where, problem)
                continue
            if not sep or kind not in ("role", "person"):
                self._add(where, f"{reference!r} is not a reference; write role:NAME or person:NAME" + ("" if people_only else ", or a channel URL"))
                continue
            if self.team is None:
                if not self.team_has_problems:
                    self._add(where, f"cannot check {reference!r}: no team.yaml beside the definition or in a folder above it")
                continue
            if kind == "role":
                if name not in self.team.roles:
                    self._add(where, f"unknown role {name!r}{_hint(name, self.team.roles, 'roles')}")
                else:
                    people.extend(self.team.roles[name].members)
            elif name not in self.team.people:
                self._add(where, f"unknown person {name!r}{_hint(name, self.team.people, 'people')}")
            else:
                people.append(name)
        return list(dict.fromkeys(people)) if static else None

    def _raw(self, path: PathKey) -> Any:
        node: Any = self.document.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node

    def _person_template(self, path: PathKey, reference: str) -> None:
        """``person:{{ x }}`` must take x from a person-typed input or form field."""
        kind, sep, rest = reference.partition(":")
        if not sep or kind not in ("person", "role") or not rest.strip().startswith("{{"):
            return
        try:
            uses = expressions.names_used(rest)
        except TemplateSyntaxError:
            return
        for use in uses:
            field = self._field_of(use.root, use.path)
            if kind == "person" and field is not None and field.type not in ("person", "choice"):
                self._add(path, f"{reference!r} takes a person from {use.root}.{'.'.join(use.path)}, a {field.type} field; make it type person")
            if kind == "person" and field is not None and field.type == "choice" and self.team:
                unknown = [c for c in field.choices or () if c not in self.team.people]
                if unknown:
                    self._add(path, f"{reference!r}: choices {unknown} of {use.root}.{'.'.join(use.path)} are not people of the team")

    def _field_of(self, root: str, path: tuple[str, ...]) -> FieldSpec | None:
        if root == "inputs" and path:
            return self.spec.inputs.get(path[0])
        if root == "steps" and path:
            root, path = path[0], path[1:]
        if root in self.step_path and path:
            step = self.spec.steps[self.step_path[root][1]]
            if is_human(step):
                return step.form.get(path[0])  # type: ignore[union-attr]
        return None

    def _notify(self, path: PathKey, step: NotifyStep) -> None:
        self._references((*path, "to"), step.to, people_only=False)
        if step.message is not None:
            self._template((*path, "message"), step.message)
        if step.subject is not None:
            self._template((*path, "subject"), step.subject)
        if step.template is not None and self.templates is not None:
            if step.template not in self.templates:
                self._add((*path, "template"), f"unknown template {step.template!r}{did_you_mean(step.template, self.templates)}")
            else:
                self._template((*path, "template"), self.templates[step.template], in_template=step.template)

    def _start(self, path: PathKey, step: StartStep) -> None:
        extra: frozenset[str] = frozenset()
        if step.for_each is not None:
            self._template((*path, "for_each"), step.for_each)
            extra = frozenset({"item"})
        for name, value in step.inputs.items():
            self._templates_in((*path, "inputs", name), value, extra=extra)
        target = self.catalog.get(step.process)
        if target is None:
            if self.catalog:
                self._add((*path, "process"), f"unknown process {step.process!r}{did_you_mean(step.process, self.catalog)}")
            return
        self._constant_inputs((*path, "inputs"), target, step.inputs, f"step {step.id!r}")

    @property
    def step_kinds(self) -> kinds.KindRegistry:
        """The kinds call steps may name (read when a definition has a call step)."""
        if self._step_kinds is None:
            self._step_kinds = kinds.installed()
        return self._step_kinds

    def _kind_of(self, step: CallStep) -> kinds.StepKind | None:
        return self.step_kinds.kinds.get(step.call)

    def _call(self, path: PathKey, step: CallStep) -> None:
        """A call step: its kind is installed, and ``with:`` fits the kind's Input (templates by the type they give, when known)."""
        for name, value in step.with_.items():
            self._templates_in((*path, "with", name), value)
        kind = self._kind_of(step)
        if kind is None:
            try:
                self.step_kinds.get(step.call)
            except NotFoundError as error:
                self._add((*path, "call"), str(error))
            return
        unknown: list[tuple[str | int, ...]] = []
        rendered: list[tuple[str | int, ...]] = []
        sample = self._sample(step.with_, (), unknown, rendered)
        try:
            kind.input_model.model_validate(sample)
        except ValidationError as error:
            items = [
                item for item in error.errors(include_url=False)
                if not any(tuple(item["loc"])[: len(u)] == u for u in unknown)  # a template whose type is known only when the case runs
                and not (tuple(item["loc"]) in rendered and not str(item["type"]).endswith(("_type", "_parsing")))  # its value, too
            ]
            fields = _field_names(kind.input_model)
            # a misspelt input is one problem, not also "needs" the input it was meant to be
            meant = {closest(str(item["loc"][-1]), fields) for item in items if item["type"] == "extra_forbidden" and len(item["loc"]) == 1}
            for item in items:
                if not (item["type"] == "missing" and len(item["loc"]) == 1 and item["loc"][0] in meant):
                    self._with_problem(path, kind, tuple(item["loc"]), item)

    def _with_problem(self, path: PathKey, kind: kinds.StepKind, loc: tuple[str | int, ...], item: Any) -> None:
        fields = _field_names(kind.input_model)
        dotted = ".".join(str(part) for part in loc)
        if item["type"] == "extra_forbidden":
            name = str(loc[-1])
            hint = did_you_mean(name, fields) or f"; {kind.name!r} takes {', '.join(fields)}"
            self._add((*path, "with", *loc), f"step kind {kind.name!r} has no input {name!r}{hint}", key=True)
        elif item["type"] == "missing":
            where = (*path, "with") if "with" in (self._raw(path) or {}) else (*path, "call")
            self._add(where, f"step kind {kind.name!r} needs input {dotted!r} in with:")
        else:
            raw = self._raw((*path, "with", *loc))
            shown = f" ({raw!r} gives {type(item.get('input')).__name__} here)" if expressions.is_template(raw) else f" (got {item.get('input')!r})"
            expected = re.findall(r"'([^']*)'", str(item.get("ctx", {}).get("expected", ""))) if item["type"] == "literal_error" else []
            hint = did_you_mean(str(item.get("input")), expected) if expected else ""
            self._add((*path, "with", *loc), f"with.{dotted} of step kind {kind.name!r}: {item['msg']}{shown}{hint}")

    def _sample(self, value: Any, at: tuple[str | int, ...], unknown: list[tuple[str | int, ...]], rendered: list[tuple[str | int, ...]]) -> Any:
        """``with:`` as the kind would get it, each template replaced by a value of the type it gives.

        A template of several parts renders to text (noted in ``rendered``); ``{{ x }}`` alone
        keeps x's type, known when x is a typed input or form field, else noted in ``unknown``.
        """
        if isinstance(value, dict):
            return {key: self._sample(item, (*at, key), unknown, rendered) for key, item in value.items()}
        if isinstance(value, list):
            return [self._sample(item, (*at, index), unknown, rendered) for index, item in enumerate(value)]
        if not isinstance(value, str) or not expressions.is_template(value):
            return value
        single = expressions.single_expression(value)
        field = self._read_field(single) if single is not None else None
        if single is None or (field is not None and field.type in ("string", "text", "person")):
            rendered.append(at)
            return "text"
        if field is None:
            unknown.append(at)
            return None
        rendered.append(at)  # typed, but its value (a choice, a number's range) only when the case runs
        return _SAMPLES[field.type](field)

    def _read_field(self, expression: str) -> FieldSpec | None:
        """The typed field an expression reads as it is (``inputs.count``, ``triage.priority``), else None."""
        try:
            uses = expressions.names_used(expression, expression=True)
        except TemplateSyntaxError:
            return None
        if len(uses) != 1 or ".".join((uses[0].root, *uses[0].path)) != expression.strip():
            return None
        return self._field_of(uses[0].root, uses[0].path) if len(uses[0].path) == 1 or uses[0].root == "steps" else None

    # --- templates ---------------------------------------------------------------------

    def _templates_in(self, path: PathKey, value: Any, extra: frozenset[str] = frozenset()) -> None:
        if isinstance(value, str):
            self._template(path, value, extra=extra)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._templates_in((*path, key), item, extra)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._templates_in((*path, index), item, extra)

    def _template(
        self, path: PathKey, source: str, *, expression: bool = False, extra: frozenset[str] = frozenset(), in_template: str | None = None
    ) -> None:
        if not expression and not expressions.is_template(source):
            return
        where = f" in template {in_template!r}" if in_template else ""
        try:
            uses = expressions.names_used(source, expression=expression)
        except TemplateSyntaxError as error:
            reason = str(error.message or error)
            if expression:  # the expression is parsed inside {{ }}; say so in its own terms
                reason = reason.replace("'end of print statement'", "end of the expression")
            self._add(path, f"{'expression' if expression else 'template'}{where} does not parse: {reason}")
            return
        refused = expressions.unsafe_attributes(source, expression=expression)
        for name in refused:
            self._add(
                path,
                f"{'expression' if expression else 'template'}{where} uses {name!r}, which the sandbox refuses"
                " (names starting with '_' and internal attributes are not available in templates)",
            )
        known_extra = extra | (NOTIFICATION_NAMES if in_template else frozenset())
        subtracted: set[str] = set()
        for names, attributes in expressions.hyphen_subtractions(source, expression=expression):
            step_id = "-".join(names)
            if step_id in self.step_path and not subtracted & set(names):
                subtracted.update(names)
                written = step_id + "".join(f".{name}" for name in attributes)
                right = f"steps[{step_id!r}]" + "".join(f".{name}" for name in attributes)
                self._add(path, f"{written!r} reads as a subtraction ({' - '.join(names)}); write {right}{where}")
        for use in uses:
            if use.root in subtracted:
                continue
            # the path up to a refused name: 'inputs.__dict__' is the sandbox's problem, not an unknown input
            path_read = next((use.path[:i] for i, name in enumerate(use.path) if name in refused), use.path)
            message = self._name_problem(use.root, path_read, known_extra)
            if message:
                self._add(path, message + where)
        kind = "expression" if expression else "template"
        for problem in expressions.template_problems(source, expression=expression, message_template=in_template is not None):
            self._add(path, f"{kind}{where} {problem}")
        # A step read before it can have run is empty (the undefined policy), which is legal
        # when some path runs it first. It is refused only when that is certain: no path of
        # the step graph leads from the step read to the step whose template reads it (itself
        # included, unless a loop comes back to it). The graph is built once per checker, and
        # only when every step id is unique and every jump target exists (else the other
        # problems come first).
        here = self.spec.steps[path[1]].id if path[:1] == ("steps",) and len(path) > 1 and isinstance(path[1], int) else None
        shadowed = known_extra | expressions.JINJA_GLOBALS | SCOPE_ROOTS  # names the scope gives before step ids
        read: list[str] = []
        for use in uses:
            read_id = (use.path[0] if use.path else None) if use.root == "steps" else None if use.root in shadowed | subtracted else use.root
            if read_id is not None and read_id in self.step_path and read_id not in read:
                read.append(read_id)
        if here is None or not read:
            return
        order: dict[str, Any] = self.__dict__.setdefault("_template_step_order", {})  # cached for every template of the definition
        if "reach" not in order:
            order["reach"] = None
            sound = len(self.step_path) == len(self.spec.steps) and all(t in self.step_path for step in self.spec.steps for _, t in self._targets(step))
            if sound:
                graph = {step.id: [exit_.target for exit_ in router.exits(self.spec, step)] for step in self.spec.steps}
                # per strongly connected component, the components one or more edges lead to, as bits;
                # Tarjan finds a component after every component it leads to, so theirs are known
                component_of: dict[str, int] = {}
                reach: list[int] = []
                for number, component in enumerate(strongly_connected(graph)):
                    component_of.update(dict.fromkeys(component, number))
                    bits = 0
                    for target in (t for member in component for t in graph[member] if t is not None):
                        other = component_of[target]
                        bits |= (1 << other) | (reach[other] if other != number else 0)
                    reach.append(bits)
                order["reach"] = (component_of, reach)
        if order["reach"] is None:
            return
        component_of, reach = order["reach"]
        for read_id in read:
            if not reach[component_of[read_id]] >> component_of[here] & 1:
                back = "back to it" if read_id == here else f"to {here!r}"
                self._add(path, f"{kind}{where} reads step {read_id!r}, which never runs before step {here!r}: no path leads from {read_id!r} {back}, so it is always empty here")

    def _name_problem(self, root: str, path: tuple[str, ...], extra: frozenset[str]) -> str | None:
        if root in expressions.JINJA_GLOBALS or root in extra:
            return None
        if root == ITEM and ITEM not in self.step_path:
            return f"{ITEM!r} exists only inside a for_each step (its templates see the element as item); this step has no for_each"
        if root == "now":
            return None
        if root == "inputs":
            if path and path[0] not in self.spec.inputs:
                return f"unknown input {path[0]!r}{did_you_mean(path[0], self.spec.inputs)}"
            return None
        if root == "case":
            if path and path[0] not in CASE_ATTRIBUTES and path[0] not in self.case_fields:
                return f"unknown case attribute {path[0]!r}{did_you_mean(path[0], CASE_ATTRIBUTES | self.case_fields)}"
            return None
        if root == "steps":
            if not path:
                return None
            root, path = path[0], path[1:]
            if root not in self.step_path:
                return f"unknown step {root!r} in steps[...]{did_you_mean(root, self.step_path)}"
        if root in self.step_path:
            if "-" in root and root not in extra:
                pass
            if path:
                return self._output_problem(root, path[0])
            return None
        known = sorted(SCOPE_ROOTS | {s for s in self.step_path if "-" not in s} | extra)
        return f"unknown name {root!r}{did_you_mean(root, known)}; templates see {', '.join(known)}"

    def _output_problem(self, step_id: str, name: str) -> str | None:
        step = self.spec.steps[self.step_path[step_id][1]]
        outputs = set(HUMAN_OUTPUTS) if is_human(step) else set(AUTOMATIC_OUTPUTS.get(step.type, frozenset()))
        if is_human(step):
            outputs |= set(step.form)  # type: ignore[union-attr]
            if step.for_each is not None:  # type: ignore[union-attr]
                outputs |= FOR_EACH_OUTPUTS
        if isinstance(step, ChecklistStep):
            outputs |= CHECKLIST_OUTPUTS
        if isinstance(step, RecordStep):
            outputs |= set(step.set)
        if isinstance(step, CallStep):
            kind = self._kind_of(step)
            if kind is None:
                return None  # the unknown kind is the problem, said at its call:
            outputs |= set(_field_names(kind.output_model)) | {"error"}
        outputs |= EVERY_STEP_OUTPUTS
        if name in outputs:
            return None
        return f"step {step_id!r} has no field {name!r}{did_you_mean(name, outputs)}; it has {', '.join(sorted(outputs))}"


def _field_names(model: type[BaseModel]) -> list[str]:
    """A model's fields as YAML and templates write them (by alias)."""
    return sorted(info.alias or name for name, info in model.model_fields.items())


_SAMPLES: dict[str, Any] = {
    "choice": lambda field: field.choices[0],
    "integer": lambda field: 1,
    "number": lambda field: 1.5,
    "boolean": lambda field: True,
    "date": lambda field: "2026-01-05",
    "datetime": lambda field: "2026-01-05T09:00:00+00:00",
    "list": lambda field: [],
}
"""A value of each field type, as a template reading such a field gives it (load-time checks of ``with:``)."""


def _hint(name: str, known: Mapping[str, Any], what: str) -> str:
    """A "did you mean", else the known names when they are few enough to read."""
    close = did_you_mean(name, known)
    if close or not known or len(known) > 12:
        return close
    return f"; team.yaml has {what} {', '.join(sorted(known))}"


def strongly_connected(graph: Mapping[str, list[str | None]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a graph (None targets are ways out), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [t for t in graph[node] if t is not None]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components
