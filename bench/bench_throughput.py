"""Throughput: automatic cases completed per minute by one ``aftercare serve`` and by two Prefect workers.

Issue #8: "bench/ prints automatic cases completed per minute on one serve process and
on two workers, measured in one run".

One run of this script starts everything it measures, on this machine:

* a Prefect server on a fresh PostgreSQL database, and the register on another fresh
  PostgreSQL database (both created and dropped here; PostgreSQL at 127.0.0.1:5432,
  user postgres, or ``AFTERCARE_BENCH_PG_ADMIN_URL``), as DESIGN.md "Scale" has it
  beyond one machine;
* two folders, each with ``team.yaml`` and the same definition of automatic steps only
  (``record`` → ``decision`` → ``notify`` to a person on the ``console`` channel →
  ``end``) under two process ids, one per way:
* A. ``aftercare serve FOLDER --no-system``: one process that runs each flow run in a
  child process, at most ``PREFECT_RUNNER_PROCESS_LIMIT`` (``--limit``) at once;
* B. ``aftercare deploy --pool NAME FOLDER`` to a ``process`` work pool and two
  ``prefect worker start --pool NAME --limit L`` processes (the same limit each, so B
  has twice A's slots); the system flows' deployments are paused, so that, as in A,
  only cases run.

Both ways stay up for the whole run. After ``--warmup`` untimed cases each, batches of
cases are timed in turn (A, B, A, B, ...): a batch's flow runs are created at once
through the API and its clock runs until every one is Completed. The rate is cases /
minutes summed over a way's batches; the CPU time of the Prefect server, of the serve or
worker processes and of their flow-run processes is printed per case beside it, and
the register is checked afterwards (every case closed, steps once each). Both ways share
this machine's cores with the server, so the ratio shows the cost of the worker path
on one machine, not the scaling across machines that workers are for.

    .venv/bin/python bench/bench_throughput.py [--cases 40] [--rounds 2] [--warmup 2] [--limit 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures

from tests.fixtures.prefect_server import (  # noqa: E402
    PrefectServer,
    fresh_pg_database,
    running_prefect_server,
    stop_process_groups,
)

SETTLE = 4.0
"""Seconds after a batch before its CPU time is read."""
SERVED = "bench-served"
POOLED = "bench-pooled"
SYSTEM_DEPLOYMENTS = [
    "aftercare-timer/aftercare-timer",
    "aftercare-housekeeping/aftercare-housekeeping",
]
TEAM = """\
team:
  people:
    li.na: {name: Li Na, email: li.na@example.com, notify: [console]}
  roles:
    ops: [li.na]
"""
DEFINITION = """\
process: PROCESS
title: Automatic check
version: 1
description: Automatic steps only, for the throughput bench.
key: KEY
inputs:
  title: {type: string}
  score: {type: integer, default: 7}
steps:
  - id: note
    type: record
    set: {checked: "yes", score: "{{ inputs.score }}"}
  - id: route
    type: decision
    branches:
      - when: "inputs.score >= 5"
        next: tell
    otherwise: done
  - id: tell
    type: notify
    to: [role:ops]
    message: "{{ case.key }} checked, score {{ inputs.score }}"
  - id: done
    type: end
    outcome: checked
"""


def _folder(root: Path, process: str, key: str) -> Path:
    folder = root / process
    folder.mkdir()
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    (folder / f"{process}.yaml").write_text(DEFINITION.replace("PROCESS", process).replace("KEY", key), encoding="utf-8")
    return folder


@dataclass
class Result:
    """What one way of running did over its timed batches."""

    name: str
    cases: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    own_cpu: float = 0.0
    """The serve or worker processes themselves."""
    runs_cpu: float = 0.0
    """The flow-run processes they started."""

    @property
    def per_minute(self) -> float:
        return self.cases / self.seconds * 60

    def line(self, label: str, own: str) -> str:
        return (
            f"{label} {self.per_minute:6.1f} cases/min  ({self.cases} in {self.seconds:.1f} s; CPU per case: "
            f"server {self.server_cpu / self.cases:.2f} s, {own} {self.own_cpu / self.cases:.2f} s, "
            f"flow-run processes {self.runs_cpu / self.cases:.2f} s)"
        )


def _python_script(name: str) -> list[str]:
    return [sys.executable, str(Path(sys.executable).with_name(name))]


def _cpu_seconds(group: int, *, leader_only: bool = False) -> float:
    """CPU time of a process group: its live processes and the children they reaped (or its leader's own)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if leader_only and pid == group:
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime stime
        if not leader_only and int(fields[2]) == group:  # pgrp; utime stime cutime cstime
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _run(argv: Sequence[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def _processes(commands: Sequence[Sequence[str]], env: Mapping[str, str], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Long-running commands in their own process groups; terminated (then killed) at exit."""
    started = []
    try:
        for number, argv in enumerate(commands):
            with open(logs / f"process-{uuid.uuid4().hex[:6]}-{number}.log", "wb") as log:
                started.append(
                    subprocess.Popen(list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(logs))
                )
        yield started
    finally:
        stop_process_groups(started, grace=20)


def _wait_for_deployment(server: PrefectServer, name: str, processes: list[subprocess.Popen[bytes]], timeout: float = 120) -> Any:
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a serving process exited early; see its log")
            with contextlib.suppress(ObjectNotFound):
                return client.read_deployment_by_name(name)
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} not registered within {timeout} s")
            time.sleep(0.3)


def _run_cases(server: PrefectServer, deployment_id: uuid.UUID, count: int, label: str, timeout: float) -> float:
    """Create ``count`` flow runs at once; seconds until every one completed."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    started = time.monotonic()
    with server.client() as client:
        ids = [
            client.create_flow_run_from_deployment(deployment_id, parameters={"title": f"{label} {n}"}).id
            for n in range(count)
        ]
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
            finals = [r for r in runs if r.state is not None and r.state.is_final()]
            broken = [r for r in finals if r.state_name != "Completed"]
            if broken:
                raise SystemExit(f"{broken[0].name} ended {broken[0].state_name}: {broken[0].state.message}")
            if len(finals) == count:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise SystemExit(f"{label}: {count - len(finals)} of {count} runs not done within {timeout:.0f} s")
            time.sleep(0.5)


def _batch(result: Result, server: PrefectServer, deployment: Any, groups: list[int], count: int, timeout: float) -> None:
    """One timed batch of ``count`` cases, added to ``result``."""
    server_before = _cpu_seconds(server.process.pid)
    all_before = sum(_cpu_seconds(group) for group in groups)
    own_before = sum(_cpu_seconds(group, leader_only=True) for group in groups)
    result.seconds += _run_cases(server, deployment.id, count, result.name, timeout)
    result.cases += count
    time.sleep(SETTLE)  # untimed: the last runs' processes exit and are reaped, so their CPU is counted
    result.server_cpu += _cpu_seconds(server.process.pid) - server_before
    own = sum(_cpu_seconds(group, leader_only=True) for group in groups) - own_before
    result.own_cpu += own
    result.runs_cpu += sum(_cpu_seconds(group) for group in groups) - all_before - own


def _set_pool_command(server: PrefectServer, pool: str, command: str) -> None:
    """Make ``command`` the default of the work pool's ``command`` job variable."""
    from prefect.client.schemas.actions import WorkPoolUpdate

    with server.client() as client:
        template = client.read_work_pool(pool).base_job_template
        template["variables"]["properties"]["command"]["default"] = command
        client.update_work_pool(pool, WorkPoolUpdate(base_job_template=template))


def _check_register(register_url: str, process: str, expected: int) -> None:
    from aftercare.engine.register import Register

    register = Register(register_url)
    cases = register.cases(process=process, limit=10_000)
    closed = [c for c in cases if c.status == "closed" and c.outcome == "checked"]
    if len(cases) != expected or len(closed) != expected:
        raise SystemExit(f"register: {len(closed)} closed of {len(cases)} {process} cases, expected {expected}")
    for case in cases:
        steps = [s.step_id for s in register.step_runs(case.key)]
        if steps != ["note", "route", "tell", "done"]:
            raise SystemExit(f"{case.key}: steps {steps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40, help="timed cases each way (default 40)")
    parser.add_argument("--rounds", type=int, default=2, help="batches each way, interleaved A B A B (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed cases first, each way (default 2)")
    parser.add_argument("--limit", type=int, default=4, help="flow-run processes at once per serve/worker process (default 4)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per batch")
    parser.add_argument(
        "--engine-command", action="store_true",
        help="give the work pool the command `python -m prefect.engine`, so workers skip Prefect's workspace supervisor process",
    )
    args = parser.parse_args()
    batch = max(1, args.cases // args.rounds)

    admin = os.environ.get("AFTERCARE_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as tmp, \
            fresh_pg_database(admin) as prefect_db, fresh_pg_database(admin) as register_db:
        root = Path(tmp)
        served_folder, pooled_folder = _folder(root, SERVED, "BSV"), _folder(root, POOLED, "BPL")
        register_url = register_db.replace("postgresql+asyncpg://", "postgresql+psycopg://")
        with running_prefect_server(root / "prefect-home", prefect_db) as server, server.activate():
            env = server.subprocess_env(
                {
                    "AFTERCARE_DATABASE_URL": register_url,
                    "PREFECT_RUNNER_PROCESS_LIMIT": str(args.limit),
                    "PREFECT_WORKER_QUERY_SECONDS": "1",
                    "PREFECT_WORKER_PREFETCH_SECONDS": "1",
                    "PREFECT_LOGGING_LEVEL": "WARNING",
                }
            )
            print(
                f"Prefect server on PostgreSQL (up in {server.startup_seconds:.1f} s), register on PostgreSQL; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
                f"{batch * args.rounds} timed cases each way in {args.rounds} interleaved batches after {args.warmup} "
                f"warm-up; at most {args.limit} flow-run processes per serve or worker process"
            )
            pool = "bench-pool"
            _run([*_python_script("prefect"), "work-pool", "create", pool, "--type", "process"], env)
            if args.engine_command:
                _set_pool_command(server, pool, f"{sys.executable} -m prefect.engine")
            _run([*_python_script("aftercare"), "deploy", "--pool", pool, str(pooled_folder)], env)
            with server.client() as client:  # only cases run, as with `serve --no-system`
                for name in SYSTEM_DEPLOYMENTS:
                    client.pause_deployment(client.read_deployment_by_name(name).id)
            serve = [[*_python_script("aftercare"), "serve", str(served_folder), "--no-system"]]
            workers = [
                [*_python_script("prefect"), "worker", "start", "--pool", pool, "--name", f"bench-worker-{n}",
                 "--type", "process", "--limit", str(args.limit)]
                for n in (1, 2)
            ]
            with _processes(serve, env, root) as served, _processes(workers, env, root) as pooled:
                served_deployment = _wait_for_deployment(server, f"{SERVED}/{SERVED}", served)
                pooled_deployment = _wait_for_deployment(server, f"{POOLED}/{POOLED}", pooled)
                ways = [
                    (Result("serve"), served_deployment, [p.pid for p in served]),
                    (Result("workers"), pooled_deployment, [p.pid for p in pooled]),
                ]
                for result, deployment, _ in ways:
                    if args.warmup:
                        _run_cases(server, deployment.id, args.warmup, f"{result.name} warm-up", args.timeout)
                for _ in range(args.rounds):
                    for result, deployment, groups in ways:
                        _batch(result, server, deployment, groups, batch, args.timeout)
            (a, _, _), (b, _, _) = ways
            print(a.line("A. one `aftercare serve`:", "serve"))
            print(b.line("B. two `prefect worker`s:", "workers"))
            print(
                f"ratio B/A: {b.per_minute / a.per_minute:.2f}  (CPU per case, all processes: "
                f"A {(a.server_cpu + a.own_cpu + a.runs_cpu) / a.cases:.1f} s, "
                f"B {(b.server_cpu + b.own_cpu + b.runs_cpu) / b.cases:.1f} s; load average now {os.getloadavg()[0]:.1f})"
            )
            cores = os.cpu_count() or 1
            print(
                f"CPU-bound capacity of this machine ({cores} cores / CPU per case): "
                f"A {cores * 60 / ((a.server_cpu + a.own_cpu + a.runs_cpu) / a.cases):.1f} cases/min, "
                f"B {cores * 60 / ((b.server_cpu + b.own_cpu + b.runs_cpu) / b.cases):.1f} cases/min "
                "(the wall-clock rates above move with whatever else the machine runs)"
            )
            expected = batch * args.rounds + args.warmup
            _check_register(register_url, SERVED, expected)
            _check_register(register_url, POOLED, expected)
            print(f"register: {expected} closed cases each way, steps note, route, tell, done")
        from aftercare.engine.register import dispose

        dispose(register_url)


if __name__ == "__main__":
    main()
