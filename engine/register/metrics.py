"""Report figures over the register: counting, filtering, grouping and ranking done in SQL.

Every figure is over a :class:`MetricWindow`: the cases opened in ``[since, until)`` (the
cohort), seen as they stood at ``as_at`` (``until``, or now when ``until`` lies ahead).
Percentiles are by nearest rank (the ``ceil(p × n)``-th smallest value), picked in SQL
with window functions, so SQLite and PostgreSQL run the same statements; only reading a
timestamp as seconds and naming a month differ per backend (:func:`_epoch`, :func:`_period`).
The register knows no definitions: which steps are people's, which step verifies and
which fields carry a score are handed in as plain parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from ..clock import UTC
from .models import Approval, AuditEvent, Case, StepRun
from .records import CASE_CANCELLED, STEP_WITHDRAWN
from .store import Store

MONTH = "month"
WEEK = "week"
PERIODS = (MONTH, WEEK)
AGING_BUCKETS = (("<1d", 1), ("1-3d", 3), ("3-7d", 7), ("7-30d", 30), (">30d", None))
"""Backlog aging buckets: a label and the age in days it ends before (the last is open-ended)."""
_UNIX_JULIAN_DAY = 2440587.5
SORT_MEMORY = "64MB"
"""PostgreSQL's ``work_mem`` for the report's statements (its sorts for percentiles)."""


@dataclass(frozen=True)
class MetricWindow:
    """Which cases a figure counts, and the moment it is seen at.

    Attributes:
        since: the first moment of the window (cases opened at or after it).
        until: the end of the window, exclusive.
        as_at: the moment states are read at: open, closed, overdue, idle (``until`` or now).
        period: ``month`` or ``week``: the buckets of ``by_period`` figures (UTC).
        process: only this process, or every one.
        current: ``as_at`` is now, so no case closed after it: "open" is ``closed_at IS
            NULL``, which the partial index of open cases answers.
    """

    since: datetime
    until: datetime
    as_at: datetime
    period: str = MONTH
    process: str | None = None
    current: bool = False

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.since >= self.until:
            raise ValueError(f"since ({self.since.isoformat()}) must come before until ({self.until.isoformat()})")

    @property
    def week_anchor(self) -> datetime:
        """Midnight UTC of the Monday on or before ``since``: week buckets count from it."""
        start = self.since.replace(hour=0, minute=0, second=0, microsecond=0)
        return start - timedelta(days=start.weekday())

    def label(self, value: Any) -> str:
        """A period's label from what :func:`_period` gave: ``2026-11`` or ``2026-W47``."""
        if self.period == MONTH:
            return str(value)
        monday = self.week_anchor + timedelta(weeks=int(value))
        year, week, _ = monday.isocalendar()
        return f"{year}-W{week:02d}"

    def labels(self) -> list[str]:
        """Every period's label inside ``[since, until)``, in order."""
        out: list[str] = []
        if self.period == MONTH:
            year, month = self.since.year, self.since.month
            while datetime(year, month, 1, tzinfo=self.since.tzinfo) < self.until:
                out.append(f"{year:04d}-{month:02d}")
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            return out
        index = 0
        while self.week_anchor + timedelta(weeks=index) < self.until:
            out.append(self.label(index))
            index += 1
        return out


@dataclass(frozen=True)
class Percentiles:
    """Nearest-rank median and 90th percentile of durations (seconds), and how many there were."""

    median: float | None = None
    p90: float | None = None
    count: int = 0


@dataclass(frozen=True)
class FieldSource:
    """Where a number lives: field ``field`` of the results of step ``step`` of process ``process``.

    A ``for_each`` step's instances (rows ``step[1]``, ``step[2]``, ...) count as the step.
    """

    process: str
    step: str
    field: str


@dataclass(frozen=True)
class RiskSource:
    """Where open risks are rated: the last finished visit of ``step`` of ``process``, two of its fields."""

    process: str
    step: str
    likelihood: str
    impact: str


@dataclass(frozen=True)
class StepFigures:
    """One step of one process: visits, the durations of its finished visits, its dues."""

    visits: int
    durations: Percentiles
    overdue: int
    met: int


@dataclass(frozen=True)
class CaseCounts:
    """A process's cohort: opened in the window, and as it stood at ``as_at``."""

    opened: int = 0
    closed: int = 0
    open: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class Attention:
    """An open case somebody should look at, and why (``overdue``, ``risk``, ``oldest``)."""

    key: str
    process: str
    title: str
    reason: str
    due: datetime | None
    opened: datetime
    flow_run_id: str | None
    score: int | None = None
    likelihood: int | None = None
    impact: int | None = None


# --- SQL building blocks ------------------------------------------------------------------------


def _epoch(session: Session, column: Any) -> ColumnElement[Any]:
    """A timestamp as seconds since 1970 (a float), on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return (func.julianday(column) - _UNIX_JULIAN_DAY) * 86400.0


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    return _epoch(session, end) - _epoch(session, start)


def _period(session: Session, window: MetricWindow, column: Any) -> ColumnElement[Any]:
    """The period bucket of a moment: ``YYYY-MM`` for months (UTC), a week index for weeks."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if window.period == MONTH:
        if postgresql:
            return func.to_char(func.timezone("UTC", column), "YYYY-MM")
        return func.strftime("%Y-%m", column)
    offset = (_epoch(session, column) - window.week_anchor.timestamp()) / 604800.0
    return func.floor(offset) if postgresql else cast(offset, Integer)


def _cohort(window: MetricWindow) -> list[ColumnElement[bool]]:
    """Cases opened in the window (of the window's process)."""
    where = [Case.opened_at >= window.since, Case.opened_at < window.until]
    if window.process is not None:
        where.append(Case.process == window.process)
    return where


def _closed(window: MetricWindow) -> ColumnElement[bool]:
    return and_(Case.closed_at.is_not(None), Case.closed_at < window.as_at)


def _open(window: MetricWindow) -> ColumnElement[bool]:
    if window.current:
        return Case.closed_at.is_(None)
    return or_(Case.closed_at.is_(None), Case.closed_at >= window.as_at)


def _whole_step(step: str) -> ColumnElement[bool]:
    """A step's own rows and its ``for_each`` instances' (``step[1]``, ...)."""
    return or_(StepRun.step_id == step, StepRun.step_id.like(step + "[%"))


def _number_field(session: Session, name: str) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """A step result's field as a float, and the test that it holds a JSON number (text is never cast)."""
    value = StepRun.result[name]
    if session.get_bind().dialect.name == "postgresql":
        return value.as_float(), func.jsonb_typeof(value) == "number"
    return value.as_float(), func.json_type(StepRun.result, f'$."{name}"').in_(("integer", "real"))


def _not_instance() -> ColumnElement[bool]:
    return StepRun.step_id.not_like("%]")


def _human(human_steps: Mapping[str, Collection[str]]) -> ColumnElement[bool]:
    """A step run waiting on people: it names who may answer, or the definitions say so."""
    pairs = [(process, step) for process, steps in human_steps.items() for step in steps]
    named = tuple_(Case.process, StepRun.step_id).in_(pairs) if pairs else false()
    return or_(StepRun.eligible.is_not(None), named)


def _ranked(session: Session, rows: Select[Any], groups: int) -> dict[tuple[Any, ...], Percentiles]:
    """Nearest-rank median and p90 of the last column of ``rows``, per its first ``groups`` columns."""
    sub = rows.subquery()
    keys = [sub.c[name] for name in list(sub.c.keys())[:groups]]
    value = sub.c[list(sub.c.keys())[groups]]
    ranked = select(
        *keys,
        value.label("v"),
        func.row_number().over(partition_by=keys, order_by=value).label("rn"),
        func.count().over(partition_by=keys).label("n"),
    ).subquery()
    rank_keys = [ranked.c[key.name] for key in keys]
    statement = select(
        *rank_keys,
        func.max(case((ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.v))),
        func.max(case((ranked.c.rn == (ranked.c.n * 9 + 9) // 10, ranked.c.v))),
        func.max(ranked.c.n),
    ).group_by(*rank_keys)
    out: dict[tuple[Any, ...], Percentiles] = {}
    for row in session.execute(statement):
        median, p90, n = row[groups], row[groups + 1], row[groups + 2]
        out[tuple(row[:groups])] = Percentiles(_number(median), _number(p90), int(n))
    return out


def _number(value: Any) -> float | None:
    """Seconds as read from either backend, to the millisecond (SQLite's julianday is that exact)."""
    return None if value is None else round(float(value), 3)


def _members(roles: Mapping[str, Collection[str]]) -> Any:
    """A role → person table as a subquery of literal rows (portable, unlike VALUES aliases)."""
    rows = [
        select(literal(role, String).label("role"), literal(person, String).label("person"))
        for role, people in roles.items()
        for person in people
    ]
    # Materialized: SQLite would otherwise run the union again for every answer it joins.
    return (union_all(*rows) if len(rows) > 1 else rows[0]).cte("members").prefix_with("MATERIALIZED")


# --- the figures ----------------------------------------------------------------------------------


def case_counts(session: Session, window: MetricWindow) -> dict[str, CaseCounts]:
    """Opened, closed, open and cancelled cases of the cohort, per process."""
    closed = _closed(window)
    statement = (
        select(
            Case.process,
            func.count(),
            func.sum(case((closed, 1), else_=0)),
            func.sum(case((and_(closed, Case.status == CASE_CANCELLED), 1), else_=0)),
        )
        .where(*_cohort(window))
        .group_by(Case.process)
    )
    return {
        process: CaseCounts(int(n), int(shut), int(n) - int(shut), int(cancelled))
        for process, n, shut, cancelled in session.execute(statement)
    }


def outcome_counts(session: Session, window: MetricWindow) -> dict[str, dict[str, int]]:
    """Closed cohort cases per process and outcome."""
    statement = (
        select(Case.process, Case.outcome, func.count())
        .where(*_cohort(window), _closed(window), Case.outcome.is_not(None))
        .group_by(Case.process, Case.outcome)
        .order_by(Case.process, Case.outcome)
    )
    out: dict[str, dict[str, int]] = {}
    for process, outcome, n in session.execute(statement):
        out.setdefault(process, {})[outcome] = int(n)
    return out


def _finished_cases(window: MetricWindow) -> list[ColumnElement[bool]]:
    """Closed cohort cases that finished their work (cancelled ones left out)."""
    return [*_cohort(window), _closed(window), Case.status != CASE_CANCELLED]


def cycle_times(session: Session, window: MetricWindow) -> dict[str, Percentiles]:
    """Opened → closed of the cohort's closed (not cancelled) cases, per process."""
    rows = select(Case.process, _seconds(session, Case.opened_at, Case.closed_at).label("d")).where(*_finished_cases(window))
    return {key[0]: value for key, value in _ranked(session, rows, 1).items()}


def by_period(session: Session, window: MetricWindow) -> dict[str, dict[str, dict[str, Any]]]:
    """Per process and period of opening: cases opened, closed, and the median cycle time."""
    period = _period(session, window, Case.opened_at).label("period")
    closed = _closed(window)
    counts = (
        select(Case.process, period, func.count(), func.sum(case((closed, 1), else_=0)))
        .where(*_cohort(window))
        .group_by(Case.process, period)
    )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for process, bucket, opened, shut in session.execute(counts):
        out.setdefault(process, {})[window.label(bucket)] = {"opened": int(opened), "closed": int(shut), "cycle_time_median": None}
    rows = select(Case.process, period, _seconds(session, Case.opened_at, Case.closed_at).label("d")).where(*_finished_cases(window))
    for (process, bucket), value in _ranked(session, rows, 2).items():
        out[process][window.label(bucket)]["cycle_time_median"] = value.median
    return out


def case_sla(session: Session, window: MetricWindow) -> dict[str, tuple[int, int]]:
    """(met, breached) per process: closed cases with a due (met: closed by it) and open ones past it."""
    closed = _closed(window)
    met = and_(closed, Case.closed_at <= Case.due_at)
    breached = or_(and_(closed, Case.closed_at > Case.due_at), and_(_open(window), Case.due_at < window.as_at))
    statement = (
        select(Case.process, func.sum(case((met, 1), else_=0)), func.sum(case((breached, 1), else_=0)))
        .where(*_cohort(window), Case.due_at.is_not(None), Case.status != CASE_CANCELLED)
        .group_by(Case.process)
    )
    return {process: (int(m), int(b)) for process, m, b in session.execute(statement)}


def rework(session: Session, window: MetricWindow) -> dict[str, int]:
    """Cohort cases that entered some step a second time, per process."""
    again = select(StepRun.case_id).where(StepRun.visit > 1, StepRun.started_at < window.as_at)
    statement = select(Case.process, func.count()).where(*_cohort(window), Case.id.in_(again)).group_by(Case.process)
    return {process: int(n) for process, n in session.execute(statement)}


def reopened(session: Session, window: MetricWindow, verification: Mapping[str, Collection[str]]) -> dict[str, int]:
    """Closed cohort cases whose verification step was rejected at least once, per process.

    Args:
        verification: process → the steps whose rejection sends the work back (``verify``).
    """
    pairs = [(process, step) for process, steps in verification.items() for step in steps]
    if not pairs:
        return {}
    rejected = (
        select(StepRun.case_id)
        .join(Approval, Approval.step_run_id == StepRun.id)
        .join(Case, Case.id == StepRun.case_id)
        .where(Approval.decision == "reject", tuple_(Case.process, StepRun.step_id).in_(pairs))
    )
    statement = (
        select(Case.process, func.count())
        .where(*_finished_cases(window), Case.id.in_(rejected))
        .group_by(Case.process)
    )
    return {process: int(n) for process, n in session.execute(statement)}


def first_answer(session: Session, window: MetricWindow) -> dict[str, Percentiles]:
    """Case opened → the first answer a person gave to any of its steps, per process."""
    first = (
        select(Case.process, Case.opened_at, func.min(Approval.answered_at).label("at"))
        .join(StepRun, StepRun.case_id == Case.id)
        .join(Approval, Approval.step_run_id == StepRun.id)
        .where(*_cohort(window), Approval.answered_at < window.as_at)
        .group_by(Case.id, Case.process, Case.opened_at)
        .subquery()
    )
    rows = select(first.c.process, _seconds(session, first.c.opened_at, first.c.at).label("d"))
    return {key[0]: value for key, value in _ranked(session, rows, 1).items()}


def people_time(session: Session, window: MetricWindow, human_steps: Mapping[str, Collection[str]]) -> dict[str, tuple[float, float]]:
    """(people, automatic) seconds per process over the closed cases.

    People: the time at least one step waited on people, counted once while parallel steps
    overlap (the finished step visits' intervals merged per case: gaps and islands).
    Automatic: the rest of each case's life (opened → closed minus the people's time).
    """
    visits = (
        select(
            StepRun.case_id.label("case_id"),
            StepRun.id.label("visit_id"),
            StepRun.started_at.label("s"),
            StepRun.finished_at.label("e"),
            func.max(StepRun.finished_at)
            .over(partition_by=StepRun.case_id, order_by=(StepRun.started_at, StepRun.id), rows=(None, -1))
            .label("reach"),
        )
        .join(Case, StepRun.case_id == Case.id)
        .where(*_finished_cases(window), StepRun.finished_at.is_not(None), StepRun.status != STEP_WITHDRAWN, _not_instance(),
               _human(human_steps))
        .subquery()
    )
    starts_island = case((or_(visits.c.reach.is_(None), visits.c.s > visits.c.reach), 1), else_=0)
    numbered = select(
        visits.c.case_id, visits.c.s, visits.c.e,
        func.sum(starts_island).over(partition_by=visits.c.case_id, order_by=(visits.c.s, visits.c.visit_id)).label("island"),
    ).subquery()
    islands = (
        select(numbered.c.case_id, func.min(numbered.c.s).label("s"), func.max(numbered.c.e).label("e"))
        .group_by(numbered.c.case_id, numbered.c.island)
        .subquery()
    )
    per_case = (
        select(islands.c.case_id, func.sum(_seconds(session, islands.c.s, islands.c.e)).label("people"))
        .group_by(islands.c.case_id)
        .subquery()
    )
    statement = (
        select(Case.process, func.sum(func.coalesce(per_case.c.people, 0.0)), func.sum(_seconds(session, Case.opened_at, Case.closed_at)))
        .outerjoin(per_case, per_case.c.case_id == Case.id)
        .where(*_finished_cases(window))
        .group_by(Case.process)
    )
    out: dict[str, tuple[float, float]] = {}
    for process, people, life in session.execute(statement):
        waited = _number(people) or 0.0
        out[process] = (waited, max(0.0, (_number(life) or 0.0) - waited))
    return out


def _open_cases(window: MetricWindow) -> list[ColumnElement[bool]]:
    """Every case open at ``as_at``, whenever it opened (the backlog)."""
    # At now no case opened later: leaving that test out lets the partial index of open cases serve.
    where = [_open(window)] if window.current else [Case.opened_at < window.as_at, _open(window)]
    if window.process is not None:
        where.append(Case.process == window.process)
    return where


def backlog_aging(session: Session, window: MetricWindow) -> dict[str, dict[str, int]]:
    """Cases open at ``as_at`` per process, by their age then (every bucket present, zeros included)."""
    age = (window.as_at.timestamp() - _epoch(session, Case.opened_at)) / 86400.0
    bucket = case(
        *[(age < limit, label) for label, limit in AGING_BUCKETS if limit is not None],
        else_=AGING_BUCKETS[-1][0],
    ).label("bucket")
    statement = select(Case.process, bucket, func.count()).where(*_open_cases(window)).group_by(Case.process, bucket)
    out: dict[str, dict[str, int]] = {}
    for process, label, n in session.execute(statement):
        out.setdefault(process, {name: 0 for name, _ in AGING_BUCKETS})[label] = int(n)
    return out


def step_figures(
    session: Session, window: MetricWindow, human_steps: Mapping[str, Collection[str]]
) -> dict[tuple[str, str], StepFigures]:
    """Per process and step of the cohort: visits, finished visits' durations, dues met and missed.

    A visit is overdue when a human step finished after its due or is still open past it at
    ``as_at``; met when it finished by its due. ``for_each`` instances count with their step.
    """
    human = _human(human_steps)
    finished = and_(StepRun.finished_at.is_not(None), StepRun.finished_at < window.as_at)
    overdue = and_(
        human,
        StepRun.due_at.is_not(None),
        StepRun.status != STEP_WITHDRAWN,
        or_(and_(finished, StepRun.finished_at > StepRun.due_at), and_(~finished, StepRun.due_at < window.as_at)),
    )
    met = and_(human, StepRun.due_at.is_not(None), finished, StepRun.status != STEP_WITHDRAWN, StepRun.finished_at <= StepRun.due_at)
    where = [*_cohort(window), StepRun.started_at < window.as_at, _not_instance()]
    counts = (
        select(
            Case.process,
            StepRun.step_id,
            func.count(),
            func.sum(case((overdue, 1), else_=0)),
            func.sum(case((met, 1), else_=0)),
        )
        .join(StepRun, StepRun.case_id == Case.id)
        .where(*where)
        .group_by(Case.process, StepRun.step_id)
    )
    rows = (
        select(Case.process, StepRun.step_id, _seconds(session, StepRun.started_at, StepRun.finished_at).label("d"))
        .join(StepRun, StepRun.case_id == Case.id)
        .where(*where, finished, StepRun.status != STEP_WITHDRAWN)
    )
    durations = _ranked(session, rows, 2)
    return {
        (process, step): StepFigures(int(n), durations.get((process, step), Percentiles()), int(late), int(ok))
        for process, step, n, late, ok in session.execute(counts)
    }


def approval_turnaround(
    session: Session, window: MetricWindow, roles: Mapping[str, Collection[str]]
) -> tuple[dict[str, Percentiles], dict[str, Percentiles]]:
    """Step entered → a person's answer, per person and per role (a person counts in each of their roles)."""
    base = (
        select(Approval.person, _seconds(session, StepRun.started_at, Approval.answered_at).label("d"))
        .join(StepRun, StepRun.id == Approval.step_run_id)
        .join(Case, Case.id == StepRun.case_id)
        .where(*_cohort(window), Approval.answered_at < window.as_at)
    )
    people = {key[0]: value for key, value in _ranked(session, base, 1).items()}
    if not any(roles.values()):
        return people, {}
    # Both sides materialized: the answers of the window once, then joined to the few members.
    answers = base.cte("answers").prefix_with("MATERIALIZED")
    members = _members({role: people for role, people in roles.items() if people})
    by_role = select(members.c.role, answers.c.d).join(answers, answers.c.person == members.c.person)
    return people, {key[0]: value for key, value in _ranked(session, by_role, 1).items()}


def last_touched(session: Session, window: MetricWindow, idle: timedelta, *, limit: int = 200) -> list[tuple[str, str, str, datetime]]:
    """Open cases untouched since ``as_at - idle``: (key, process, title, last touched), idlest first.

    Touched: opened, an audit event, a step entered or finished, an answer given.
    """
    open_ids = select(Case.id).where(*_open_cases(window))
    before = window.as_at
    touches = union_all(
        select(Case.id.label("case_id"), Case.opened_at.label("at")).where(*_open_cases(window)),
        select(AuditEvent.case_id, AuditEvent.at).where(AuditEvent.case_id.in_(open_ids), AuditEvent.at < before),
        select(StepRun.case_id, StepRun.started_at).where(StepRun.case_id.in_(open_ids), StepRun.started_at < before),
        select(StepRun.case_id, StepRun.finished_at).where(StepRun.case_id.in_(open_ids), StepRun.finished_at < before),
        select(StepRun.case_id, Approval.answered_at)
        .join(Approval, Approval.step_run_id == StepRun.id)
        .where(StepRun.case_id.in_(open_ids), Approval.answered_at < before),
    ).subquery()
    latest = select(touches.c.case_id, func.max(touches.c.at).label("at")).group_by(touches.c.case_id).subquery()
    statement = (
        select(Case.key, Case.process, Case.title, latest.c.at)
        .join(latest, latest.c.case_id == Case.id)
        .where(latest.c.at <= window.as_at - idle)
        .order_by(latest.c.at, Case.key)
        .limit(limit)
    )
    return [(key, process, title, _aware(at)) for key, process, title, at in session.execute(statement)]


def _aware(value: Any) -> datetime:
    """A max() over timestamps: SQLite hands back text without a zone, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _latest_rating(session: Session, window: MetricWindow, risk: RiskSource) -> Any:
    """The last finished visit of the rating step of each open risk case: case id, likelihood, impact."""
    likelihood, rated_likelihood = _number_field(session, risk.likelihood)
    impact, rated_impact = _number_field(session, risk.impact)
    ranked = (
        select(
            StepRun.case_id,
            likelihood.label("likelihood"),
            impact.label("impact"),
            func.row_number().over(partition_by=StepRun.case_id, order_by=StepRun.visit.desc()).label("rn"),
        )
        .join(Case, Case.id == StepRun.case_id)
        .where(
            Case.process == risk.process,
            *_open_cases(window),
            StepRun.step_id == risk.step,
            StepRun.finished_at.is_not(None),
            StepRun.finished_at < window.as_at,
            rated_likelihood,
            rated_impact,
        )
        .subquery()
    )
    return select(ranked.c.case_id, ranked.c.likelihood, ranked.c.impact).where(ranked.c.rn == 1).subquery()


def risk_heatmap(session: Session, window: MetricWindow, risk: RiskSource) -> list[tuple[int, int, int]]:
    """(likelihood, impact, open risks) of the open risk cases, by their latest rating."""
    if window.process not in (None, risk.process):
        return []
    rated = _latest_rating(session, window, risk)
    statement = (
        select(rated.c.likelihood, rated.c.impact, func.count())
        .group_by(rated.c.likelihood, rated.c.impact)
        .order_by(rated.c.likelihood.desc(), rated.c.impact.desc())
    )
    return [(int(l), int(i), int(n)) for l, i, n in session.execute(statement)]


def attention(
    session: Session, window: MetricWindow, human_steps: Mapping[str, Collection[str]], risk: RiskSource | None, *, limit: int
) -> list[Attention]:
    """Open cases to look at first: overdue (earliest due first), then highest risk, then oldest."""
    open_steps = and_(
        _human(human_steps),
        StepRun.due_at.is_not(None),
        StepRun.due_at < window.as_at,
        StepRun.status != STEP_WITHDRAWN,
        or_(StepRun.finished_at.is_(None), StepRun.finished_at >= window.as_at),
    )
    dues = union_all(
        select(Case.id.label("case_id"), Case.due_at.label("due")).where(*_open_cases(window), Case.due_at < window.as_at),
        select(Case.id, StepRun.due_at).join(StepRun, StepRun.case_id == Case.id).where(*_open_cases(window), open_steps),
    ).subquery()
    first_due = select(dues.c.case_id, func.min(dues.c.due).label("due")).group_by(dues.c.case_id).subquery()
    columns = (Case.key, Case.process, Case.title, Case.opened_at, Case.flow_run_id)
    found: dict[str, Attention] = {}
    statement = select(*columns, first_due.c.due).join(first_due, first_due.c.case_id == Case.id).order_by(first_due.c.due, Case.key).limit(limit)
    for key, process, title, opened, run, due in session.execute(statement):
        found[key] = Attention(key, process, title, "overdue", _aware(due), opened, run)
    if risk is not None and window.process in (None, risk.process) and len(found) < limit:
        rated = _latest_rating(session, window, risk)
        score = (rated.c.likelihood * rated.c.impact).label("score")
        statement = (
            select(*columns, rated.c.likelihood, rated.c.impact, score)
            .join(rated, rated.c.case_id == Case.id)
            .order_by(score.desc(), Case.opened_at, Case.key)
            .limit(limit)
        )
        for key, process, title, opened, run, likelihood, impact, value in session.execute(statement):
            if key not in found and len(found) < limit:
                found[key] = Attention(key, process, title, "risk", None, opened, run, int(value), int(likelihood), int(impact))
    if len(found) < limit:
        statement = select(*columns).where(*_open_cases(window)).order_by(Case.opened_at, Case.key).limit(limit)
        for key, process, title, opened, run in session.execute(statement):
            if key not in found and len(found) < limit:
                found[key] = Attention(key, process, title, "oldest", None, opened, run)
    return list(found.values())


def open_risks(session: Session, window: MetricWindow, risk: RiskSource, *, limit: int) -> list[tuple[str, str, int, int]]:
    """The open risk cases with their latest rating, highest score first: (key, title, likelihood, impact)."""
    if window.process not in (None, risk.process):
        return []
    rated = _latest_rating(session, window, risk)
    score = rated.c.likelihood * rated.c.impact
    statement = (
        select(Case.key, Case.title, rated.c.likelihood, rated.c.impact)
        .join(rated, rated.c.case_id == Case.id)
        .order_by(score.desc(), Case.key)
        .limit(limit)
    )
    return [(key, title, int(l), int(i)) for key, title, l, i in session.execute(statement)]


def field_by_period(
    session: Session, window: MetricWindow, sources: Sequence[FieldSource], how: str = "mean"
) -> dict[str, tuple[float | None, int]]:
    """The mean (or sum) of a numeric field over the finished visits of the sources' steps, per period of the case's opening.

    Returns:
        label → (value, how many values), for the periods that have any.
    """
    if how not in ("mean", "sum"):
        raise ValueError(f"how must be mean or sum, not {how!r}")
    sources = [s for s in sources if window.process in (None, s.process)]
    if not sources:
        return {}
    period = _period(session, window, Case.opened_at)
    parts = []
    for source in sources:
        value, is_number = _number_field(session, source.field)
        parts.append(
            select(period.label("period"), value.label("value"))
            .join(StepRun, StepRun.case_id == Case.id)
            .where(
                *_cohort(window),
                Case.process == source.process,
                _whole_step(source.step),
                StepRun.finished_at.is_not(None),
                StepRun.finished_at < window.as_at,
                is_number,
            )
        )
    values = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    aggregate = func.avg(values.c.value) if how == "mean" else func.sum(values.c.value)
    statement = select(values.c.period, aggregate, func.count()).group_by(values.c.period)
    return {
        window.label(bucket): (None if value is None else round(float(value), 2), int(n))
        for bucket, value, n in session.execute(statement)
    }


def outcomes_by_period(session: Session, window: MetricWindow) -> dict[tuple[str, str], dict[str, int]]:
    """Closed cohort cases per process, outcome and period of opening."""
    period = _period(session, window, Case.opened_at).label("period")
    statement = (
        select(Case.process, Case.outcome, period, func.count())
        .where(*_cohort(window), _closed(window), Case.outcome.is_not(None))
        .group_by(Case.process, Case.outcome, period)
    )
    out: dict[tuple[str, str], dict[str, int]] = {}
    for process, outcome, bucket, n in session.execute(statement):
        out.setdefault((process, outcome), {})[window.label(bucket)] = int(n)
    return out


def steps_by_period(session: Session, window: MetricWindow) -> dict[tuple[str, str, int], dict[str, int]]:
    """Cohort cases per process, step, visits (how often the case entered the step) and period of opening."""
    period = _period(session, window, Case.opened_at)
    entered = (
        select(Case.process, StepRun.step_id, func.max(StepRun.visit).label("visits"), period.label("period"))
        .join(StepRun, StepRun.case_id == Case.id)
        .where(*_cohort(window), StepRun.started_at < window.as_at, _not_instance())
        .group_by(Case.id, Case.process, StepRun.step_id, period)
        .subquery()
    )
    statement = select(entered.c.process, entered.c.step_id, entered.c.visits, entered.c.period, func.count()).group_by(
        entered.c.process, entered.c.step_id, entered.c.visits, entered.c.period
    )
    out: dict[tuple[str, str, int], dict[str, int]] = {}
    for process, step, visits, bucket, n in session.execute(statement):
        out.setdefault((process, step, int(visits)), {})[window.label(bucket)] = int(n)
    return out


class Metrics(Store):
    """The report's figures as part of :class:`Register`: each method one or two SQL statements.

    Every method takes a :class:`MetricWindow`; see the module's functions for what each counts.
    """

    @contextmanager
    def _figures(self) -> Iterator[Session]:
        """A read transaction whose sorts may use more memory on PostgreSQL.

        The percentiles sort every visit or answer of the window; with PostgreSQL's default
        4 MB a year of 100,000 cases sorted on disk (bench/bench_report.py).
        """
        with self._read() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
            yield session

    def case_counts(self, window: MetricWindow) -> dict[str, CaseCounts]:
        """Opened, closed, open and cancelled cohort cases per process."""
        with self._figures() as session:
            return case_counts(session, window)

    def outcome_counts(self, window: MetricWindow) -> dict[str, dict[str, int]]:
        """Closed cohort cases per process and outcome."""
        with self._figures() as session:
            return outcome_counts(session, window)

    def cycle_times(self, window: MetricWindow) -> dict[str, Percentiles]:
        """Cycle time (opened → closed) percentiles per process."""
        with self._figures() as session:
            return cycle_times(session, window)

    def by_period(self, window: MetricWindow) -> dict[str, dict[str, dict[str, Any]]]:
        """Opened, closed and median cycle time per process and period."""
        with self._figures() as session:
            return by_period(session, window)

    def case_sla(self, window: MetricWindow) -> dict[str, tuple[int, int]]:
        """(met, breached) whole-case dues per process."""
        with self._figures() as session:
            return case_sla(session, window)

    def rework(self, window: MetricWindow) -> dict[str, int]:
        """Cases that entered a step a second time, per process."""
        with self._figures() as session:
            return rework(session, window)

    def reopened(self, window: MetricWindow, verification: Mapping[str, Collection[str]]) -> dict[str, int]:
        """Closed cases whose verification was rejected at least once, per process."""
        with self._figures() as session:
            return reopened(session, window, verification)

    def first_answer(self, window: MetricWindow) -> dict[str, Percentiles]:
        """Case opened → first answer by a person, percentiles per process."""
        with self._figures() as session:
            return first_answer(session, window)

    def people_time(self, window: MetricWindow, human_steps: Mapping[str, Collection[str]]) -> dict[str, tuple[float, float]]:
        """(people, automatic) seconds over closed cases per process."""
        with self._figures() as session:
            return people_time(session, window, human_steps)

    def backlog_aging(self, window: MetricWindow) -> dict[str, dict[str, int]]:
        """Open cases by age per process."""
        with self._figures() as session:
            return backlog_aging(session, window)

    def step_figures(self, window: MetricWindow, human_steps: Mapping[str, Collection[str]]) -> dict[tuple[str, str], StepFigures]:
        """Visits, durations and dues per process and step."""
        with self._figures() as session:
            return step_figures(session, window, human_steps)

    def approval_turnaround(
        self, window: MetricWindow, roles: Mapping[str, Collection[str]]
    ) -> tuple[dict[str, Percentiles], dict[str, Percentiles]]:
        """Step entered → answer, per person and per role."""
        with self._figures() as session:
            return approval_turnaround(session, window, roles)

    def stale_cases(self, window: MetricWindow, idle: timedelta = timedelta(days=5), *, limit: int = 200) -> list[tuple[str, str, str, datetime]]:
        """Open cases untouched for ``idle``: (key, process, title, last touched)."""
        with self._figures() as session:
            return last_touched(session, window, idle, limit=limit)

    def attention(
        self, window: MetricWindow, human_steps: Mapping[str, Collection[str]], risk: RiskSource | None, *, limit: int = 20
    ) -> list[Attention]:
        """Open cases to look at first: overdue, highest risk, oldest."""
        with self._figures() as session:
            return attention(session, window, human_steps, risk, limit=limit)

    def risk_heatmap(self, window: MetricWindow, risk: RiskSource) -> list[tuple[int, int, int]]:
        """(likelihood, impact, count) of open risks."""
        with self._figures() as session:
            return risk_heatmap(session, window, risk)

    def open_risks(self, window: MetricWindow, risk: RiskSource, *, limit: int = 50) -> list[tuple[str, str, int, int]]:
        """Open risks by score: (key, title, likelihood, impact)."""
        with self._figures() as session:
            return open_risks(session, window, risk, limit=limit)

    def field_by_period(self, window: MetricWindow, sources: Sequence[FieldSource], how: str = "mean") -> dict[str, tuple[float | None, int]]:
        """Mean or sum of a result field per period."""
        with self._figures() as session:
            return field_by_period(session, window, sources, how)

    def outcomes_by_period(self, window: MetricWindow) -> dict[tuple[str, str], dict[str, int]]:
        """Closed cases per (process, outcome) and period."""
        with self._figures() as session:
            return outcomes_by_period(session, window)

    def steps_by_period(self, window: MetricWindow) -> dict[tuple[str, str, int], dict[str, int]]:
        """Cases per (process, step, times entered) and period."""
        with self._figures() as session:
            return steps_by_period(session, window)
