"""Benchmark of `aftercare report`'s figures (``build_report``) on 100,000 cases, on SQLite and PostgreSQL.

Fills a fresh register (a SQLite file in a temporary folder, and a PostgreSQL database it
creates and drops) through bulk inserts with cases of the shipped definitions: each case
walks its definition's steps in order (people's steps with their due, who may answer, an
answer with numbers in its form fields, one in ten approvals rejected and visited again),
about four audit events, 80 % of them closed with one of the process's outcomes. Then it
times ``build_report`` (the median of several runs) beside the same SQL statements, as
text, run straight through the DBAPI cursor (captured from one ``build_report`` run), and
prints both side by side with their ratio; the goal is under 5 s per report.

    .venv/bin/python bench/bench_report.py [--cases N] [--runs N] [--backend sqlite|postgresql|both]

PostgreSQL is reached as ``AFTERCARE_BENCH_PG_DSN`` (default: user postgres on
127.0.0.1:5432, trust auth).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, insert, text  # noqa: E402

from aftercare.engine.durations import parse_duration  # noqa: E402
from aftercare.engine.library import load_library  # noqa: E402
from aftercare.engine.loader import Library  # noqa: E402
from aftercare.engine.register import Register, engine_for  # noqa: E402
from aftercare.engine.register.models import Approval, AuditEvent, Case, KeyCounter, StepRun  # noqa: E402
from aftercare.engine.spec import ChecklistStep, EndStep, HumanStepBase, ProcessSpec  # noqa: E402
from aftercare.flows.reporting import build_report, outcomes_of  # noqa: E402
from bench.bench_register_queries import _insert, postgresql_register, settle, sqlite_register  # noqa: E402

GOAL_S = 5.0
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
SPAN_DAYS = 365
MAX_STEPS = 9
# Busier processes get more cases (the daily check, issues, support); the rest share evenly.
WEIGHTS = {"maintenance-check": 20, "issue-resolution": 20, "support-request": 14, "change-request": 6, "customer-feedback": 6,
           "action-item": 6, "emergency-response": 3, "risk-response": 4, "knowledge-capture": 4, "improvement-cycle": 3}
ROOT = Path(__file__).resolve().parents[1]


def build_rows(library: Library, count: int, seed: int = 7) -> dict[type[Any], list[dict[str, Any]]]:
    """Cases with their step runs, answers and audit events, as rows for bulk inserts."""
    rng = random.Random(seed)
    specs = sorted(library.definitions.items())
    weights = [WEIGHTS.get(name, 2) for name, _ in specs]
    people = sorted(library.team.people)
    rows: dict[type[Any], list[dict[str, Any]]] = {Case: [], StepRun: [], Approval: [], AuditEvent: [], KeyCounter: []}
    counters: dict[str, int] = {}
    step_id = 0
    for case_id in range(1, count + 1):
        name, loaded = rng.choices(specs, weights)[0]
        spec = loaded.spec
        counters[spec.key] = counters.get(spec.key, 0) + 1
        opened = NOW - timedelta(days=rng.uniform(0, SPAN_DAYS))
        closed = rng.random() < 0.8 and opened < NOW - timedelta(hours=2)
        path = _path(spec)[: rng.randint(2, MAX_STEPS)]
        outcomes = [o for o in outcomes_of(spec) if o not in ("failed",)]
        clock = opened
        audit = [(case_id, "case.opened", "aftercare", opened)]
        visits: list[dict[str, Any]] = []
        for index, step in enumerate(path):
            human = isinstance(step, HumanStepBase)
            rounds = 2 if human and rng.random() < 0.1 else 1
            for visit in range(1, rounds + 1):
                took = timedelta(hours=rng.lognormvariate(1.5, 1.2)) if human else timedelta(seconds=rng.uniform(0, 5))
                started, finished = clock, clock + took
                last_open = not closed and index == len(path) - 1
                if finished >= NOW:
                    last_open = True
                step_id += 1
                due = started + parse_duration(step.due) if human and step.due and "b" not in step.due else None
                person = rng.choice(people)
                result = _result(step, rng, person, reject=visit < rounds) if not last_open else None
                visits.append({
                    "id": step_id, "case_id": case_id, "step_id": step.id, "visit": visit,
                    "status": "waiting" if last_open else "done", "result": result, "started_at": started,
                    "finished_at": None if last_open else finished, "due_at": due,
                    "eligible": [person] if human else None, "wait_kind": "person" if human and last_open else None,
                })
                if human and not last_open:
                    rows[Approval].append({
                        "step_run_id": step_id, "person": person, "decision": result["decision"] if result else "submit",
                        "comment": None, "fields": {k: v for k, v in (result or {}).items() if k not in ("decision", "by")},
                        "answered_at": finished,
                    })
                    audit.append((case_id, "step.answered", person, finished))
                clock = finished
                if last_open:
                    break
            if visits and visits[-1]["finished_at"] is None:
                break
        is_closed = closed and visits and visits[-1]["finished_at"] is not None
        closed_at = clock + timedelta(seconds=1) if is_closed else None
        if closed_at is not None:
            audit.append((case_id, "case.closed", "aftercare", closed_at))
        outcome = rng.choice(outcomes) if is_closed else None
        rows[Case].append({
            "id": case_id, "key": f"{spec.key}-{counters[spec.key]:05d}", "process": name, "version": spec.version,
            "definition_hash": loaded.digest, "title": f"{spec.title} #{counters[spec.key]}",
            "status": ("cancelled" if outcome == "cancelled" else "closed") if is_closed else "open", "outcome": outcome,
            "inputs": {}, "fields": {}, "current_step": None if is_closed else visits[-1]["step_id"],
            "opened_at": opened, "closed_at": closed_at,
            "due_at": opened + parse_duration(spec.sla.due) if spec.sla and "b" not in spec.sla.due else None,
        })
        rows[StepRun].extend(visits)
        rows[AuditEvent].extend({"case_id": c, "event": e, "actor": a, "at": at} for c, e, a, at in audit)
    rows[KeyCounter] = [{"prefix": p, "last": n} for p, n in counters.items()]
    return rows


def _path(spec: ProcessSpec) -> list[Any]:
    """The definition's steps in order, up to its first end step."""
    out = []
    for step in spec.steps:
        if isinstance(step, EndStep):
            break
        out.append(step)
    return out


def _result(step: Any, rng: random.Random, person: str, *, reject: bool) -> dict[str, Any]:
    if not isinstance(step, HumanStepBase):
        return {}
    result: dict[str, Any] = {"decision": "reject" if reject else ("approve" if step.type == "approval" else "submit"), "by": person}
    for name, field in step.form.items():
        if field.type in ("integer", "number"):
            low = field.minimum if field.minimum is not None else 0
            high = field.maximum if field.maximum is not None else low + 100
            result[name] = rng.randint(int(low), int(high)) if field.type == "integer" else round(rng.uniform(low, high), 2)
    if isinstance(step, ChecklistStep):
        result["score"] = round(rng.uniform(50, 100), 1)
    return result


def load(url: str, rows: dict[type[Any], list[dict[str, Any]]]) -> float:
    """Migrate, bulk insert, analyze; returns the seconds it took."""
    started = time.perf_counter()
    Register(url).migrate()
    engine = engine_for(url)
    with engine.begin() as connection:
        for model in (Case, StepRun, Approval, AuditEvent):
            _insert(connection, model, rows[model])
        connection.execute(insert(KeyCounter), rows[KeyCounter])
        if connection.dialect.name == "postgresql":
            for table in ("cases", "step_runs", "approvals", "audit_events"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    settle(engine)
    return time.perf_counter() - started


def captured_statements(url: str, report: Callable[[], object]) -> list[tuple[str, Any]]:
    """The queries (SQL text and parameters) ``report`` sends to the database in one run."""
    engine = engine_for(url)
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "SET")):  # the queries and settings, not BEGIN/COMMIT
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        report()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return seen


def run_plain(url: str, statements: list[tuple[str, Any]]) -> int:
    """Run the statements through a DBAPI cursor, fetching every row; returns the rows fetched."""
    connection = engine_for(url).raw_connection()
    try:
        cursor = connection.cursor()
        fetched = 0
        for statement, parameters in statements:
            cursor.execute(statement, parameters)
            if cursor.description is not None:
                fetched += len(cursor.fetchall())
        connection.rollback()
        return fetched
    finally:
        connection.close()


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args(argv)

    library = load_library(ROOT / "processes")
    started = time.perf_counter()
    rows = build_rows(library, args.cases)
    print(f"{len(rows[Case]):,} cases ({sum(1 for c in rows[Case] if c['closed_at'] is None):,} open), "
          f"{len(rows[StepRun]):,} step runs, {len(rows[Approval]):,} answers, {len(rows[AuditEvent]):,} audit events, "
          f"{len(library.definitions)} processes; built in {time.perf_counter() - started:.1f} s; median of {args.runs} runs\n")
    windows = {"90 days (default)": None, "365 days (every case)": NOW - timedelta(days=SPAN_DAYS + 1)}
    backends = {"sqlite": sqlite_register, "postgresql": postgresql_register}
    chosen = list(backends) if args.backend == "both" else [args.backend]
    table = []
    for backend in chosen:
        with backends[backend]() as url:
            print(f"{backend}: loaded in {load(url, rows):.1f} s")
            register = Register(url)
            for label, since in windows.items():
                def report(since: datetime | None = since) -> dict[str, Any]:
                    return build_report(register, library, since=since, until=NOW, process=None, now=NOW)

                report()  # warm the pool, the statement cache and the practices file
                statements = captured_statements(url, report)
                run_plain(url, statements)
                whole = median_seconds(report, args.runs)
                plain = median_seconds(lambda statements=statements: run_plain(url, statements), args.runs)
                table.append((backend, label, whole, plain, len(statements)))
            register.close()

    print(f"\n{'backend':<11} {'window':<22} {'build_report s':>14} {'plain SQL s':>12} {'ratio':>6} {'statements':>10}  goal < {GOAL_S:.0f} s")
    slow = False
    for backend, label, whole, plain, count in table:
        slow |= whole >= GOAL_S
        verdict = "ok" if whole < GOAL_S else "SLOW"
        print(f"{backend:<11} {label:<22} {whole:>14.2f} {plain:>12.2f} {whole / plain:>6.2f} {count:>10}  {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
