"""Dashboard aggregates over the register, computed in SQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, cast, func, select
from sqlalchemy.orm import Session

from .models import Case
from .records import CycleTime, StatusCount


def open_cases_by_status_and_process(session: Session) -> list[StatusCount]:
    """Count open (not closed) cases per process and status, ordered by both.

    Args:
        session: a session on the register.
    """
    count = func.count().label("count")
    statement = (
        select(Case.process, Case.status, count)
        .where(Case.closed_at.is_(None))
        .group_by(Case.process, Case.status)
        .order_by(Case.process, Case.status)
    )
    return [
        StatusCount(process=process, status=status, count=int(n))
        for process, status, n in session.execute(statement)
    ]


def cycle_time_by_process(session: Session) -> list[CycleTime]:
    """Average ``closed_at - opened_at`` of closed cases per process, ordered by process.

    Args:
        session: a session on the register.
    """
    seconds = _seconds_between(session, Case.opened_at, Case.closed_at)
    statement = (
        select(Case.process, func.count(), func.avg(seconds))
        .where(Case.closed_at.is_not(None))
        .group_by(Case.process)
        .order_by(Case.process)
    )
    return [
        CycleTime(process=process, closed=int(n), average=timedelta(seconds=float(avg or 0)))
        for process, n, avg in session.execute(statement)
    ]


def _seconds_between(
    session: Session, start: ColumnElement[Any], end: ColumnElement[Any]
) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    # SQLite keeps timestamps as ISO text in UTC; julianday() reads them.
    return (func.julianday(end) - func.julianday(start)) * 86400.0
