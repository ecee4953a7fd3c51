"""The report's figures as JSON-ready data: :func:`build_report` and :func:`report_summary`.

The register computes the figures in SQL (``engine/register/metrics.py``); this module
knows the definitions: process titles, which steps wait on people, the team's roles, and
``practices.yaml``, the data file that says which outcomes, steps and fields carry each
practice's figures. ``docs/report.md`` defines every key, in the sentences of
:data:`DEFINITIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aftercare.engine.clock import UTC, utc_now
from aftercare.engine.errors import DefinitionError, Problem
from aftercare.engine.library import shipped_folder
from aftercare.engine.loader import PRACTICES_FILE, Library, validate_shape
from aftercare.engine.register import Register
from aftercare.engine.register.metrics import (
    AGING_BUCKETS,
    MONTH,
    WEEK,
    Attention,
    FieldSource,
    MetricWindow,
    Percentiles,
    RiskSource,
)
from aftercare.engine.spec import ChecklistStep, EndStep, HumanStepBase, ProcessSpec, RecordStep, is_human
from aftercare.engine.suggest import did_you_mean
from aftercare.engine.yaml_source import PathKey, SourceDocument, read_yaml
from aftercare.notifications.links import run_url

DEFAULT_DAYS = 90
"""Without ``since``, the report covers the 90 days before ``until``."""
WEEKLY_UP_TO = timedelta(weeks=8)
"""A window up to eight weeks long is shown by week, a longer one by month."""
STALE_AFTER = timedelta(days=5)
ATTENTION_LIMIT = 20
CASE_END_OUTCOMES = ("completed", "cancelled", "failed")
"""Outcomes every process may close with besides its own ``end`` steps'."""

DEFINITIONS: dict[str, str] = {
    "opened": "Cases of the process opened in the window (every other figure of a process counts these cases).",
    "closed": "Of the cases opened in the window, those closed by the end of the window (cancelled ones included).",
    "open": "Of the cases opened in the window, those still open at the end of the window.",
    "cancelled": "Of the cases opened in the window, those cancelled by the end of the window.",
    "outcomes": "Closed cases per outcome (the outcome of the end step they reached, or completed, cancelled, failed).",
    "cycle_time": "Time from opening to closing of the closed cases, cancelled ones left out: median and 90th percentile by nearest rank, in seconds.",
    "sla": "Cases with a case due, cancelled ones left out: met when closed by the due, breached when closed after it or still open past it; met_pct is met ÷ (met + breached) in %.",
    "rework": "Cases that entered some step a second time (a loop went back: a reopened fix, a re-planned improvement, a redone review).",
    "reopen_rate": "Closed cases whose verification step (practices.yaml, verification) was rejected at least once, in % of the closed cases; null for a process without a verification step.",
    "first_answer": "Time from a case's opening to the first answer any person gave to one of its steps: median and 90th percentile, in seconds.",
    "people_time": "Seconds the closed cases spent waiting on people (an approval, form or checklist step open), summed over the cases; steps waiting side by side count their overlap once.",
    "automatic_time": "Seconds of the closed cases' lives not spent waiting on people (timers, notifications, records, linked cases, the engine): cycle time minus people_time, summed over the cases.",
    "by_period": "Per period of the cases' opening time: cases opened, of them closed, and their median cycle time.",
    "backlog_aging": "Every case open at the end of the window, whenever it opened, by its age then: under 1 day, 1–3, 3–7, 7–30, over 30 days.",
    "steps": "Per step: visits entered (for_each instances count with their step's visit, not apart), the median and 90th percentile of the finished visits (entered → done, withdrawn ones left out), overdue visits of steps waiting on people (finished after their due, or still open past it), and their sla (met: finished by the due).",
    "approvals": "Time from a step's start to each answer a person gave to it, per person and per role of the team file (a person counts in each role they have): answers, median and 90th percentile in seconds.",
    "stale": "Open cases nobody touched for 5 days or more: no audit event, step entered or finished, or answer since; idlest first.",
    "attention": "Open cases to look at first: overdue ones (a case or people's step due passed; earliest due first), then the highest open risks (likelihood × impact), then the oldest.",
    "satisfaction": "Mean of the satisfaction scores (practices.yaml, satisfaction: the survey's overall score and the visit's satisfaction, 1–10) per period, with how many scores.",
    "risks": "Open risk cases by their latest rating (likelihood and impact, 1–5 each): the heat map counts them per cell, open lists them by score.",
    "improvements": "Improvement cycles: adopted (closed adopted), re-planned (went back to planning at least once; a case can be both), other (closed otherwise).",
    "quality": "Mean quality inspection score (0–100, every inspection and re-inspection) per period, with how many inspections.",
    "cancellations": "Cases opened in the window and cancelled by its end, in total and per process.",
    "practices": "Each of the seventeen practices of post-handover management with the figures a manager asks for, per period and in total (practices.yaml says what each figure counts).",
}


# --- practices.yaml -----------------------------------------------------------------------------

Measure = Literal["opened", "closed", "outcome", "step", "rate", "mean", "sum", "cycle-time"]
Unit = Literal["count", "score", "pct", "seconds"]
_UNITS: dict[str, Unit] = {
    "opened": "count", "closed": "count", "outcome": "count", "step": "count",
    "rate": "pct", "mean": "score", "sum": "count", "cycle-time": "seconds",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FigureSpec(_Model):
    """One figure of a practice: what it counts in which process."""

    label: str = Field(min_length=1)
    process: str
    measure: Measure
    outcome: tuple[str, ...] = ()
    step: str | None = None
    visit: int = Field(default=1, ge=1)
    field: str | None = None
    unit: Unit | None = None

    @model_validator(mode="after")
    def _needs(self) -> FigureSpec:
        if self.measure in ("outcome", "rate") and not self.outcome:
            raise ValueError(f"measure {self.measure!r} needs outcome: [the outcomes counted]")
        if self.measure in ("step", "mean", "sum") and self.step is None:
            raise ValueError(f"measure {self.measure!r} needs step: STEP")
        if self.measure in ("mean", "sum") and self.field is None:
            raise ValueError(f"measure {self.measure!r} needs field: FIELD (a number of the step's answer or result)")
        return self

    @property
    def shown_unit(self) -> Unit:
        """The unit given, else the measure's."""
        return self.unit or _UNITS[self.measure]


class PracticeSpec(_Model):
    """A practice of the source text and its figures."""

    number: int = Field(ge=1, le=17)
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str
    figures: tuple[FigureSpec, ...] = Field(min_length=1)


class FieldSourceSpec(_Model):
    """A number in the results of a step: ``{process, step, field}``."""

    process: str
    step: str
    field: str


class RiskSpec(_Model):
    """Where open risks are rated."""

    process: str
    step: str
    likelihood: str
    impact: str


class ImprovementSpec(_Model):
    """How improvement cycles end."""

    process: str
    adopted: tuple[str, ...] = Field(min_length=1)
    replanned_step: str


class PracticesSpec(_Model):
    """``practices.yaml``: the figures of the seventeen practices and where scores, risks and improvements live."""

    practices: tuple[PracticeSpec, ...] = Field(min_length=17, max_length=17)
    verification: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    satisfaction: tuple[FieldSourceSpec, ...] = ()
    quality: tuple[FieldSourceSpec, ...] = ()
    risks: RiskSpec | None = None
    improvements: ImprovementSpec | None = None

    @model_validator(mode="after")
    def _numbered(self) -> PracticesSpec:
        numbers = sorted(p.number for p in self.practices)
        if numbers != list(range(1, 18)):
            missing = sorted(set(range(1, 18)) - set(numbers))
            raise ValueError(f"the practices must be numbered 1 to 17 once each; missing {missing}")
        return self


def practices_file(library: Library) -> Path:
    """The practices file of a library's folder, else the one shipped with Aftercare."""
    if library.root is not None and (library.root / PRACTICES_FILE).is_file():
        return library.root / PRACTICES_FILE
    return shipped_folder() / PRACTICES_FILE


def practices_for(library: Library) -> PracticesSpec:
    """The practices a library's report shows.

    A folder's own ``practices.yaml`` is checked strictly (a wrong name is an error). A folder
    without one (a team with its own vocabulary) gets the shipped file fitted to it: only the
    figures and sources whose processes, steps, fields and outcomes its definitions have.
    """
    path = practices_file(library)
    if library.root is not None and path.parent == library.root:
        return load_practices(path, library)
    stat = path.stat()
    document, spec = _read_practices(path, stat.st_mtime_ns, stat.st_size)
    checker = _PracticesChecker(document, {name: item.spec for name, item in library.definitions.items()})

    def fits(check: Callable[[], object]) -> bool:
        before = len(checker.problems)
        check()
        return len(checker.problems) == before

    def figure_fits(figure: FigureSpec) -> bool:
        fitted = spec.model_copy(update={
            "practices": (spec.practices[0].model_copy(update={"figures": (figure,)}),), "verification": {}, "satisfaction": (),
            "quality": (), "risks": None, "improvements": None,
        })
        return fits(lambda: checker.check(fitted))

    def part_fits(**update: Any) -> bool:
        empty = {"practices": (), "verification": {}, "satisfaction": (), "quality": (), "risks": None, "improvements": None}
        return fits(lambda: checker.check(spec.model_copy(update={**empty, **update})))

    return spec.model_copy(update={
        "practices": tuple(
            practice.model_copy(update={"figures": tuple(f for f in practice.figures if figure_fits(f))}) for practice in spec.practices
        ),
        "verification": {p: steps for p, steps in spec.verification.items() if part_fits(verification={p: steps})},
        "satisfaction": tuple(s for s in spec.satisfaction if part_fits(satisfaction=(s,))),
        "quality": tuple(s for s in spec.quality if part_fits(quality=(s,))),
        "risks": spec.risks if spec.risks is not None and part_fits(risks=spec.risks) else None,
        "improvements": spec.improvements if spec.improvements is not None and part_fits(improvements=spec.improvements) else None,
    })


def load_practices(path: Path, library: Library | None = None) -> PracticesSpec:
    """Read ``practices.yaml``: its shape, then every process, step, field and outcome it names against ``library``.

    Raises:
        DefinitionError: every problem of the file, each as FILE:LINE:COL: path: message.
    """
    stat = path.stat()
    document, spec = _read_practices(path, stat.st_mtime_ns, stat.st_size)
    if library is not None:
        problems = _PracticesChecker(document, {name: item.spec for name, item in library.definitions.items()}).check(spec)
        if problems:
            raise DefinitionError(problems)
    return spec


def practices_problems(path: Path, definitions: Mapping[str, ProcessSpec]) -> list[Problem]:
    """Every problem of a practices file against these definitions (``aftercare validate``); none when it is right."""
    try:
        stat = path.stat()
        document, spec = _read_practices(path, stat.st_mtime_ns, stat.st_size)
    except DefinitionError as error:
        return list(error.problems)
    return _PracticesChecker(document, definitions).check(spec)


@lru_cache(maxsize=16)
def _read_practices(path: Path, mtime_ns: int, size: int) -> tuple[SourceDocument, PracticesSpec]:
    """The file parsed and its shape checked, once per version of it (YAML parsing is the slow part)."""
    document = read_yaml(path)
    spec: PracticesSpec = validate_shape(document, PracticesSpec)
    return document, spec


class _PracticesChecker:
    """The second pass: every name in practices.yaml exists in the definitions."""

    def __init__(self, document: SourceDocument, definitions: Mapping[str, ProcessSpec]) -> None:
        self.document = document
        self.specs = dict(definitions)
        self.problems: list[Problem] = []

    def check(self, spec: PracticesSpec) -> list[Problem]:
        for p_index, practice in enumerate(spec.practices):
            for f_index, figure in enumerate(practice.figures):
                at: PathKey = ("practices", p_index, "figures", f_index)
                process = self._process(figure.process, (*at, "process"))
                if process is None:
                    continue
                for o_index, outcome in enumerate(figure.outcome):
                    self._outcome(process, outcome, (*at, "outcome", o_index))
                if figure.step is not None:
                    step = self._step(process, figure.step, (*at, "step"))
                    if step is not None and figure.field is not None:
                        self._field(process, figure.step, figure.field, (*at, "field"))
        for process_id, steps in spec.verification.items():
            process = self._process(process_id, ("verification", process_id), key=True)
            for index, step_id in enumerate(steps):
                if process is not None:
                    self._step(process, step_id, ("verification", process_id, index))
        for section in ("satisfaction", "quality"):
            for index, source in enumerate(getattr(spec, section)):
                self._source(source.process, source.step, (source.field,), (section, index))
        if spec.risks is not None:
            self._source(spec.risks.process, spec.risks.step, (spec.risks.likelihood, spec.risks.impact), ("risks",))
        if spec.improvements is not None:
            at = ("improvements",)
            process = self._process(spec.improvements.process, (*at, "process"))
            if process is not None:
                for index, outcome in enumerate(spec.improvements.adopted):
                    self._outcome(process, outcome, (*at, "adopted", index))
                self._step(process, spec.improvements.replanned_step, (*at, "replanned_step"))
        return self.problems

    def _source(self, process_id: str, step_id: str, fields: Sequence[str], at: PathKey) -> None:
        process = self._process(process_id, (*at, "process"))
        if process is None or self._step(process, step_id, (*at, "step")) is None:
            return
        names = ("field",) if len(fields) == 1 else ("likelihood", "impact")
        for name, field_name in zip(names, fields):
            self._field(process, step_id, field_name, (*at, name))

    def _problem(self, at: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.document.problem(at, message, key=key))

    def _process(self, process_id: str, at: PathKey, *, key: bool = False) -> ProcessSpec | None:
        if process_id in self.specs:
            return self.specs[process_id]
        self._problem(at, f"unknown process {process_id!r}{did_you_mean(process_id, self.specs)}", key=key)
        return None

    def _step(self, process: ProcessSpec, step_id: str, at: PathKey) -> Any:
        if step_id in process.step_ids:
            return process.step(step_id)
        self._problem(at, f"{process.process} has no step {step_id!r}{did_you_mean(step_id, process.step_ids)}")
        return None

    def _outcome(self, process: ProcessSpec, outcome: str, at: PathKey) -> None:
        known = outcomes_of(process)
        if outcome not in known:
            self._problem(at, f"{process.process} never closes with outcome {outcome!r}{did_you_mean(outcome, known)}")

    def _field(self, process: ProcessSpec, step_id: str, field_name: str, at: PathKey) -> None:
        known = result_fields(process.step(step_id))
        if field_name not in known:
            self._problem(at, f"step {step_id!r} of {process.process} has no field {field_name!r}{did_you_mean(field_name, known)}")


def outcomes_of(process: ProcessSpec) -> list[str]:
    """Every outcome a case of the process can close with."""
    return [*dict.fromkeys(step.outcome for step in process.steps if isinstance(step, EndStep)), *CASE_END_OUTCOMES]


def result_fields(step: Any) -> list[str]:
    """The fields a step's result holds that a figure may read."""
    if isinstance(step, HumanStepBase):
        extra = ["score"] if isinstance(step, ChecklistStep) else []
        return [*step.form, *extra]
    if isinstance(step, RecordStep):
        return list(step.set)
    return []


# --- the report --------------------------------------------------------------------------------


def report_window(
    since: datetime | None, until: datetime | None, process: str | None, now: datetime
) -> MetricWindow:
    """The window of a report: ``until`` defaults to now, ``since`` to 90 days before it."""
    until = _utc(until) if until is not None else now
    since = _utc(since) if since is not None else until - timedelta(days=DEFAULT_DAYS)
    period = WEEK if until - since <= WEEKLY_UP_TO else MONTH
    return MetricWindow(since=since, until=until, as_at=min(until, now), period=period, process=process, current=until >= now)


def build_report(
    register: Register,
    library: Library,
    *,
    since: datetime | None,
    until: datetime | None,
    process: str | None,
    now: datetime | None = None,
    practices: PracticesSpec | None = None,
) -> dict[str, Any]:
    """Every figure of the report as JSON-ready data (the layout of docs/report.md).

    Args:
        register: the register the figures are computed in.
        library: the definitions (titles, people's steps) and the team (roles).
        since: the window's start (default: 90 days before ``until``).
        until: the window's end, exclusive (default: now).
        process: only this process (its id or its file's name).
        now: the moment the report is made (default: the clock).
        practices: the practices file (default: the library folder's, else the shipped one).

    Raises:
        NotFoundError: ``process`` is not in the library.
        DefinitionError: a bad practices file.
        ValueError: ``since`` is not before ``until``.
    """
    if process is not None:
        process = library.get(process).spec.process  # by id or file; a misspelt one gets a "did you mean"
    now = _utc(now) if now is not None else utc_now()
    window = report_window(since, until, process, now)
    spec = practices or practices_for(library)
    human = human_steps(library)
    labels = window.labels()
    report: dict[str, Any] = {
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
        "generated_at": now.isoformat(),
        "as_at": window.as_at.isoformat(),
        "period": window.period,
        "periods": labels,
        "definitions": dict(DEFINITIONS),
        "processes": _processes(register, library, window, human, spec, labels),
    }
    people, roles = register.approval_turnaround(window, {name: role.members for name, role in library.team.roles.items()})
    report["approvals"] = {
        "people": {name: _answers(value) for name, value in sorted(people.items())},
        "roles": {name: _answers(value) for name, value in sorted(roles.items())},
    }
    report["stale"] = [
        {"case": key, "process": name, "title": title, "last_touched": at.isoformat(), "idle_days": _days(window.as_at - at)}
        for key, name, title, at in register.stale_cases(window, STALE_AFTER)
    ]
    risk = RiskSource(**spec.risks.model_dump()) if spec.risks is not None else None
    report["attention"] = [_attention(item, window) for item in register.attention(window, human, risk, limit=ATTENTION_LIMIT)]
    report["satisfaction"] = {
        "by_period": _means(register.field_by_period(window, _sources(spec.satisfaction)), labels),
        "sources": list(dict.fromkeys(source.process for source in spec.satisfaction)),
    }
    report["risks"] = _risks(register, window, risk)
    counts = _Counts(register.outcomes_by_period(window), register.steps_by_period(window), report["processes"], labels)
    report["improvements"] = _improvements(counts, spec.improvements)
    report["quality"] = {"by_period": _means(register.field_by_period(window, _sources(spec.quality)), labels)}
    by_process = {name: figures["cancelled"] for name, figures in report["processes"].items() if figures["cancelled"]}
    report["cancellations"] = {"total": sum(by_process.values()), "by_process": by_process}
    report["practices"] = _practices(register, window, spec, counts)
    return report


def human_steps(library: Library) -> dict[str, tuple[str, ...]]:
    """Per process, the steps that wait on people."""
    return {
        name: tuple(step.id for step in item.spec.steps if is_human(step))
        for name, item in library.definitions.items()
    }


def _processes(
    register: Register,
    library: Library,
    window: MetricWindow,
    human: Mapping[str, Sequence[str]],
    spec: PracticesSpec,
    labels: Sequence[str],
) -> dict[str, dict[str, Any]]:
    counts = register.case_counts(window)
    outcomes = register.outcome_counts(window)
    cycles = register.cycle_times(window)
    sla = register.case_sla(window)
    rework = register.rework(window)
    reopened = register.reopened(window, spec.verification)
    first = register.first_answer(window)
    times = register.people_time(window, human)
    periods = register.by_period(window)
    aging = register.backlog_aging(window)
    steps = register.step_figures(window, human)
    names = sorted(set(counts) | set(aging) | ({window.process} if window.process else set()))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        count = counts.get(name)
        closed = count.closed if count else 0
        loaded = library.definitions.get(name)
        step_order = list(loaded.spec.step_ids) if loaded else []
        own_steps = {step: value for (process, step), value in steps.items() if process == name}
        ordered = sorted(own_steps, key=lambda s: (step_order.index(s) if s in step_order else len(step_order), s))
        out[name] = {
            "title": loaded.spec.title if loaded else name,
            "opened": count.opened if count else 0,
            "closed": closed,
            "open": count.open if count else 0,
            "cancelled": count.cancelled if count else 0,
            "outcomes": outcomes.get(name, {}),
            "cycle_time": _percentiles(cycles.get(name)),
            "sla": _sla(*sla.get(name, (0, 0))),
            "rework": rework.get(name, 0),
            "reopen_rate": _pct(reopened.get(name, 0), closed) if name in spec.verification else None,
            "first_answer": _percentiles(first.get(name)),
            "people_time": _seconds(times.get(name, (0.0, 0.0))[0]),
            "automatic_time": _seconds(times.get(name, (0.0, 0.0))[1]),
            "by_period": {
                label: {**{"opened": 0, "closed": 0, "cycle_time_median": None}, **_seconds_in(periods.get(name, {}).get(label, {}))}
                for label in labels
            },
            "backlog_aging": aging.get(name, {label: 0 for label, _ in AGING_BUCKETS}),
            "steps": {
                step: {
                    "visits": own_steps[step].visits,
                    **_percentiles(own_steps[step].durations),
                    "overdue": own_steps[step].overdue,
                    "sla": _sla(own_steps[step].met, own_steps[step].overdue),
                }
                for step in ordered
            },
        }
    return out


def _risks(register: Register, window: MetricWindow, risk: RiskSource | None) -> dict[str, Any]:
    if risk is None:
        return {"heatmap": [], "open": []}
    return {
        "heatmap": [{"likelihood": l, "impact": i, "count": n} for l, i, n in register.risk_heatmap(window, risk)],
        "open": [
            {"case": key, "title": title, "likelihood": l, "impact": i, "score": l * i}
            for key, title, l, i in register.open_risks(window, risk)
        ],
    }


class _Counts:
    """Cases per period of opening, as the register grouped them: by outcome, by step entered, opened and closed."""

    def __init__(
        self,
        outcomes: Mapping[tuple[str, str], Mapping[str, int]],
        steps: Mapping[tuple[str, str, int], Mapping[str, int]],
        processes: Mapping[str, Any],
        labels: Sequence[str],
    ) -> None:
        self.outcomes, self.steps, self.processes, self.labels = outcomes, steps, processes, labels

    def with_outcome(self, process: str, outcomes: Sequence[str]) -> dict[str, int]:
        return {label: sum(self.outcomes.get((process, o), {}).get(label, 0) for o in outcomes) for label in self.labels}

    def entered(self, process: str, step: str, times: int = 1) -> dict[str, int]:
        groups = [n for (p, s, entered), n in self.steps.items() if p == process and s == step and entered >= times]
        return {label: sum(n.get(label, 0) for n in groups) for label in self.labels}

    def cases(self, process: str, key: str) -> dict[str, int]:
        periods = self.processes.get(process, {}).get("by_period", {})
        return {label: int(periods.get(label, {}).get(key, 0)) for label in self.labels}


def _improvements(counts: _Counts, spec: ImprovementSpec | None) -> dict[str, Any]:
    if spec is None:
        return {"adopted": 0, "replanned": 0, "other": 0, "by_period": {label: {"adopted": 0, "replanned": 0} for label in counts.labels}}
    adopted = counts.with_outcome(spec.process, spec.adopted)
    replanned = counts.entered(spec.process, spec.replanned_step)
    closed = counts.cases(spec.process, "closed")
    return {
        "adopted": sum(adopted.values()),
        "replanned": sum(replanned.values()),
        "other": sum(closed.values()) - sum(adopted.values()),
        "by_period": {label: {"adopted": adopted[label], "replanned": replanned[label]} for label in counts.labels},
    }


def _practices(register: Register, window: MetricWindow, spec: PracticesSpec, counts: _Counts) -> list[dict[str, Any]]:
    out = []
    for practice in sorted(spec.practices, key=lambda p: p.number):
        figures = []
        for figure in practice.figures:
            by_period, total = _figure(register, window, figure, counts)
            figures.append(
                {"label": figure.label, "process": figure.process, "unit": figure.shown_unit, "by_period": by_period, "total": total}
            )
        out.append({"number": practice.number, "id": practice.id, "title": practice.title, "figures": figures})
    return out


def _figure(
    register: Register, window: MetricWindow, figure: FigureSpec, counts: _Counts
) -> tuple[dict[str, float | int | None], float | int | None]:
    """A figure per period and in total."""
    name, labels = figure.process, counts.labels
    if figure.measure in ("mean", "sum"):
        assert figure.step is not None and figure.field is not None
        values = register.field_by_period(window, [FieldSource(name, figure.step, figure.field)], figure.measure)
        if figure.measure == "sum":
            sums = {label: _number(values[label][0]) if label in values else 0 for label in labels}
            return sums, _number(sum(value or 0 for value in sums.values()))
        means = {label: values[label][0] if label in values else None for label in labels}
        count = sum(n for _, n in values.values())
        total = sum((mean or 0) * n for mean, n in values.values())
        return means, (round(total / count, 2) if count else None)
    process = counts.processes.get(name, {})
    if figure.measure == "cycle-time":
        periods = process.get("by_period", {})
        return {label: periods.get(label, {}).get("cycle_time_median") for label in labels}, process.get("cycle_time", {}).get("median")
    if figure.measure == "rate":
        hits, closed = counts.with_outcome(name, figure.outcome), counts.cases(name, "closed")
        return {label: _pct(hits[label], closed[label]) for label in labels}, _pct(sum(hits.values()), sum(closed.values()))
    if figure.measure in ("opened", "closed"):
        found = counts.cases(name, figure.measure)
    elif figure.measure == "outcome":
        found = counts.with_outcome(name, figure.outcome)
    else:
        assert figure.step is not None
        found = counts.entered(name, figure.step, figure.visit)
    return dict(found), sum(found.values())


def _sources(sources: Sequence[FieldSourceSpec]) -> list[FieldSource]:
    return [FieldSource(s.process, s.step, s.field) for s in sources]


def _means(values: Mapping[str, tuple[float | None, int]], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {label: {"mean": values[label][0] if label in values else None, "count": values[label][1] if label in values else 0} for label in labels}


def _attention(item: Attention, window: MetricWindow) -> dict[str, Any]:
    if item.reason == "overdue":
        assert item.due is not None
        detail = f"overdue by {_days(window.as_at - item.due):.1f} days"
    elif item.reason == "risk":
        detail = f"risk score {item.score} (likelihood {item.likelihood} × impact {item.impact})"
    else:
        detail = f"open for {_days(window.as_at - item.opened):.1f} days"
    return {
        "case": item.key,
        "process": item.process,
        "title": item.title,
        "reason": item.reason,
        "detail": detail,
        "due": item.due.isoformat() if item.due else None,
        "opened": item.opened.isoformat(),
        "age_days": _days(window.as_at - item.opened),
        "link": run_url(item.flow_run_id),
    }


def _answers(value: Percentiles) -> dict[str, Any]:
    return {"answers": value.count, **_percentiles(value)}


def _percentiles(value: Percentiles | None) -> dict[str, float | int | None]:
    if value is None:
        return {"median": None, "p90": None}
    return {"median": _seconds(value.median), "p90": _seconds(value.p90)}


def _sla(met: int, breached: int) -> dict[str, Any]:
    return {"met": met, "breached": breached, "met_pct": _pct(met, met + breached)}


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _seconds(value: float | None) -> float | int | None:
    """Whole seconds as an int, else to the millisecond."""
    if value is None:
        return None
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def _seconds_in(figures: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _seconds(value) if key == "cycle_time_median" else value for key, value in figures.items()}


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(value, 2)


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 2)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no timezone; give one (…+00:00)")
    return moment.astimezone(UTC)


# --- the summary ---------------------------------------------------------------------------------


def report_summary(report: Mapping[str, Any]) -> list[str]:
    """A few plain lines for a message: volumes, SLA, the cases needing attention, satisfaction."""
    processes: Mapping[str, Mapping[str, Any]] = report.get("processes", {})
    since, until = report["since"][:10], report["until"][:10]
    opened = sum(p["opened"] for p in processes.values())
    closed = sum(p["closed"] for p in processes.values())
    still = sum(p["open"] for p in processes.values())
    cancelled = sum(p["cancelled"] for p in processes.values())
    lines = [f"Aftercare {since} – {until}: {opened} cases opened, {closed} closed ({cancelled} cancelled), {still} still open."]
    met = sum(p["sla"]["met"] for p in processes.values())
    breached = sum(p["sla"]["breached"] for p in processes.values())
    if met + breached:
        lines.append(f"SLA met {_pct(met, met + breached)} % ({met} met, {breached} breached).")
    busiest = sorted(processes.items(), key=lambda item: (-item[1]["opened"], item[0]))[:3]
    if busiest and busiest[0][1]["opened"]:
        parts = []
        for name, figures in busiest:
            median = figures["cycle_time"]["median"]
            cycle = f", median cycle {_hours(median)}" if median is not None else ""
            parts.append(f"{name} {figures['opened']} opened{cycle}")
        lines.append("Busiest: " + "; ".join(parts) + ".")
    attention = report.get("attention", [])
    overdue = [item["case"] for item in attention if item["reason"] == "overdue"]
    if overdue:
        lines.append(f"Overdue: {len(overdue)} — {', '.join(overdue[:5])}{' …' if len(overdue) > 5 else ''}.")
    stale = report.get("stale", [])
    if stale:
        lines.append(f"Untouched for 5 days or more: {len(stale)} — {', '.join(item['case'] for item in stale[:5])}{' …' if len(stale) > 5 else ''}.")
    scores = [(label, figures) for label, figures in report.get("satisfaction", {}).get("by_period", {}).items() if figures["count"]]
    if scores:
        label, figures = scores[-1]
        lines.append(f"Satisfaction {label}: {figures['mean']} on average ({figures['count']} scores).")
    return lines


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} d"
