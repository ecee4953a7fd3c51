"""Benchmark of the register's dashboard queries on 100,000 cases, on SQLite and PostgreSQL.

Fills a fresh register (a SQLite file in a temporary folder, and a temporary
PostgreSQL database it creates and drops) with a realistic mix of cases and step
runs through bulk inserts, then times the three dashboard queries through the
public ``Register`` API and prints the median of several runs.

    .venv/bin/python bench/bench_register_queries.py [--cases N] [--runs N]
        [--backend sqlite|postgresql|both] [--explain]

PostgreSQL is reached as ``AFTERCARE_BENCH_PG_DSN`` (default: user postgres on
127.0.0.1:5432, trust auth).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, insert, text

from aftercare.engine.register import Register, dispose, engine_for
from aftercare.engine.register.models import Case, KeyCounter, StepRun

PG_ADMIN_DSN = os.environ.get(
    "AFTERCARE_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
BUDGET_MS = 50.0
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
BATCH = 5_000

# process id, key prefix, share of cases, its steps in order
PROCESSES: list[tuple[str, str, int, list[str]]] = [
    ("issue-resolution", "ISS", 30, ["triage", "route", "resolve", "tell-reporter", "verify"]),
    ("risk-management", "RSK", 12, ["identify", "assess", "respond", "monitor"]),
    ("improvement-cycle", "IMP", 8, ["plan", "execute", "evaluate"]),
    ("quality-check", "QC", 10, ["check", "improve"]),
    ("maintenance-check", "MNT", 15, ["inspect", "report"]),
    ("emergency-response", "EMR", 3, ["alert", "contain", "recover", "review"]),
    ("review-meeting", "REV", 5, ["prepare", "meet", "minutes"]),
    ("kpi-review", "KPI", 5, ["collect", "review"]),
    ("satisfaction-survey", "CSS", 7, ["send", "collect", "follow-up"]),
    ("training", "TRN", 5, ["schedule", "attend", "assess"]),
]
PEOPLE = [f"user{n:03d}" for n in range(60)]
OPEN_STATUSES = [("waiting", 60), ("open", 30), ("escalated", 6), ("on-hold", 4)]
CLOSED_STATUSES = [("closed", 85), ("rejected", 10), ("cancelled", 5)]


def build_rows(
    count: int, seed: int = 7
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """Cases and step runs: ~72% closed, open ones waiting at a step with a deadline."""
    rng = random.Random(seed)
    weights = [p[2] for p in PROCESSES]
    counters: dict[str, int] = {}
    cases: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for case_id in range(1, count + 1):
        process, prefix, _, step_ids = rng.choices(PROCESSES, weights)[0]
        counters[prefix] = counters.get(prefix, 0) + 1
        opened = NOW - timedelta(days=rng.uniform(0, 730))
        closed = rng.random() < 0.72 and opened < NOW - timedelta(hours=2)
        if closed:
            cycle = timedelta(hours=rng.lognormvariate(3.5, 1.0))
            closed_at: datetime | None = min(opened + cycle, NOW - timedelta(minutes=1))
            status = _pick(rng, CLOSED_STATUSES)
            reached = len(step_ids)
        else:
            closed_at = None
            status = _pick(rng, OPEN_STATUSES)
            reached = rng.randint(1, len(step_ids))
        title = f"{process} #{counters[prefix]}"
        cases.append(
            {
                "id": case_id,
                "key": f"{prefix}-{counters[prefix]:04d}",
                "process": process,
                "version": rng.choice([1, 1, 1, 2]),
                "definition_hash": "sha256:" + "%064x" % rng.getrandbits(256),
                "title": title,
                "status": status,
                "outcome": {"closed": "resolved"}.get(status, status) if closed else None,
                "inputs": {"title": title, "severity": rng.choice(["low", "medium", "high"])},
                "fields": {},
                "current_step": None if closed else step_ids[reached - 1],
                "opened_at": opened,
                "closed_at": closed_at,
                "due_at": opened + timedelta(days=7) if rng.random() < 0.5 else None,
            }
        )
        end = closed_at or NOW
        span = (end - opened) / reached
        for index, step_id in enumerate(step_ids[:reached]):
            started = opened + span * index
            last_open = closed_at is None and index == reached - 1
            due_at = escalated_at = None
            if last_open:
                # Most deadlines lie ahead; of the passed ones most were escalated already.
                if rng.random() < 0.9:
                    due_at = NOW + timedelta(hours=rng.uniform(1, 240))
                else:
                    due_at = NOW - timedelta(hours=rng.uniform(1, 240))
                    if rng.random() < 0.8:
                        escalated_at = due_at + timedelta(minutes=5)
            elif rng.random() < 0.4:
                due_at = started + timedelta(hours=rng.uniform(4, 72))
            steps.append(
                {
                    "case_id": case_id,
                    "step_id": step_id,
                    "visit": 1,
                    "status": "waiting" if last_open else "done",
                    "result": None if last_open else {"decision": "approve"},
                    "started_at": started,
                    "finished_at": None if last_open else started + span,
                    "due_at": due_at,
                    "escalated_at": escalated_at,
                    "eligible": rng.sample(PEOPLE, rng.randint(1, 3)),
                    "wait_kind": "person",
                }
            )
    return cases, steps, counters


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def load(
    url: str, cases: list[dict[str, Any]], steps: list[dict[str, Any]], counters: dict[str, int]
) -> float:
    """Migrate, bulk insert, analyze; returns the seconds it took."""
    started = time.perf_counter()
    Register(url).migrate()
    engine = engine_for(url)
    with engine.begin() as connection:
        _insert(connection, Case, cases)
        _insert(connection, StepRun, steps)
        counter_rows = [{"prefix": p, "last": n} for p, n in counters.items()]
        connection.execute(insert(KeyCounter), counter_rows)
        if connection.dialect.name == "postgresql":
            for table in ("cases", "step_runs"):
                connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT max(id) FROM {table}))")
                )
    settle(engine)
    return time.perf_counter() - started


def settle(engine: Any) -> None:
    """Fresh statistics (and, on PostgreSQL, a visibility map for index-only scans), as
    autovacuum would give a live database; on SQLite the bulk load's WAL folded into the
    database file, as its auto-checkpoint does in a live register."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _insert(connection: Connection, model: type[Any], rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        connection.execute(insert(model), rows[start : start + BATCH])


def time_queries(url: str, runs: int) -> list[tuple[str, float, float, int]]:
    """Median and fastest milliseconds, and result size, of each dashboard query."""
    register = Register(url)
    queries: list[tuple[str, Callable[[], list[Any]]]] = [
        ("open_cases_by_status_and_process()", register.open_cases_by_status_and_process),
        ("overdue_steps(now)", lambda: register.overdue_steps(NOW)),
        ("cycle_time_by_process()", register.cycle_time_by_process),
    ]
    results = []
    for name, query in queries:
        query()  # warm the pool and the statement cache
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            rows = query()
            timings.append((time.perf_counter() - started) * 1000)
        results.append((name, statistics.median(timings), min(timings), len(rows)))
    return results


def explain(url: str) -> None:
    """Print the query plans of the dashboard queries."""
    engine = engine_for(url)
    pg = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN" if pg else "EXPLAIN QUERY PLAN"
    now = "'2025-06-01 12:00:00+00'" if pg else "'2025-06-01 12:00:00.000000'"
    total = ("extract(epoch from sum(closed_at - opened_at))" if pg
             else "sum(julianday(closed_at) - julianday(opened_at)) * 86400.0")
    statements = [
        "SELECT process, status, count(*) FROM cases WHERE closed_at IS NULL GROUP BY process, status",
        f"SELECT * FROM step_runs WHERE status IN ('active', 'waiting') AND due_at <= {now} "
        "AND escalated_at IS NULL ORDER BY due_at, id LIMIT 1000",
        f"SELECT process, count(*), {total} FROM cases WHERE closed_at IS NOT NULL "
        "GROUP BY process",
    ]
    with engine.connect() as connection:
        for statement in statements:
            print(f"  {statement[:90]}...")
            for row in connection.exec_driver_sql(f"{prefix} {statement}"):
                print("    ", row[-1])


@contextmanager
def sqlite_register() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'register.db'}"
        try:
            yield url
        finally:
            dispose(url)


@contextmanager
def postgresql_register() -> Iterator[str]:
    name = f"aftercare_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        info = admin.info
        url = f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
    try:
        yield url
    finally:
        dispose(url)
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args(argv)

    cases, steps, counters = build_rows(args.cases)
    open_cases = sum(1 for c in cases if c["closed_at"] is None)
    print(f"{len(cases):,} cases ({open_cases:,} open), {len(steps):,} step runs, "
          f"{len(PROCESSES)} processes; median of {args.runs} runs\n")
    backends = {"sqlite": sqlite_register, "postgresql": postgresql_register}
    chosen = list(backends) if args.backend == "both" else [args.backend]
    table: list[tuple[str, str, float, float, int]] = []
    for backend in chosen:
        with backends[backend]() as url:
            seconds = load(url, cases, steps, counters)
            print(f"{backend}: loaded in {seconds:.1f} s")
            if args.explain:
                explain(url)
            table.extend((backend, *timing) for timing in time_queries(url, args.runs))

    print(f"\n{'backend':<11} {'query':<36} {'median ms':>10} {'min ms':>8} {'rows':>6}"
          f"  budget {BUDGET_MS:.0f} ms")
    slow = False
    for backend, name, median, fastest, n in table:
        verdict = "ok" if median < BUDGET_MS else "SLOW"
        slow |= median >= BUDGET_MS
        print(f"{backend:<11} {name:<36} {median:>10.2f} {fastest:>8.2f} {n:>6}  {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
