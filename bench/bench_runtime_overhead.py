"""Runtime overhead: a 10-step automatic process run by Aftercare vs a hand-written Prefect flow.

Issue #4: "bench/ prints the ratio of a 10-step automatic process run by Aftercare to a
hand-written Prefect flow doing the same 10 tasks, measured side by side in one run.
Goal <= 1.15".

Both sides run in this process against the same local ``prefect server start`` (its own
PREFECT_HOME in a temporary folder, analytics off), as sync flows, interleaved
(A, B, A, B, ...), warm-up runs excluded:

A. Aftercare: ``run_foreground`` (what ``aftercare run`` calls) of a definition with ten
   ``record`` steps, ``step-01`` .. ``step-10``; each sets one case field from the inputs
   (the last one also the status). Aftercare runs each as a Prefect task named after the
   step and keeps the case, every step run and audit event in its register (a SQLite file,
   WAL), and publishes the case's markdown artifact.
B. Hand-written: one Prefect flow with ten Prefect tasks named ``step-01`` .. ``step-10``
   (same task options as Aftercare's: ``NO_CACHE``, ``persist_result=False``); each
   renders the same value from the same inputs and INSERTs one row (run id, step, field,
   value) into a SQLite table (WAL, one connection per task, one commit per task), the
   work a record step does without any bookkeeping around it.

What the Prefect UI shows of the case (the run's name "KEY · title" and the case's
markdown artifact) is held while the steps run and sent on a background thread when the run
ends (``flows/ui_updates.py``): sent during the steps, it made the Prefect server (SQLite,
one writer) queue the steps' own state changes behind it. The bench waits for those two
calls after each Aftercare run, untimed, and prints how long they took.

A third series, ``aftercare run``, times ``run_foreground`` (what ``aftercare run`` calls:
it also builds the flow and starts the answer feeder); the goal is on the flow (A).

Two things are kept out of the measurement because they are Prefect's, identical on both
sides, and would drown the difference (both checked here):

* The flow-run heartbeat: a sync flow joins its heartbeat thread at exit, and that thread
  sleeps in 1 s steps, so every run's wall time is rounded up to the next whole second
  of its start (10 trivial tasks: 1.11 s with it, 0.2 s without). Heartbeats are turned
  off for this process (``--heartbeats`` keeps Prefect's default).
* The Prefect server's own SQLite writes: right after a run, the server persists that
  run's events; a flow run created meanwhile gets ``503 Service Unavailable``
  (SQLITE_BUSY) and the client retries after ~2 s. The bench waits ``--settle`` seconds
  (untimed) between runs and counts the runs that still met a retry.

    .venv/bin/python bench/bench_runtime_overhead.py [--runs 20] [--warmup 2] [--settle 1.0]
        [--heartbeats] [--profile]

``--profile`` additionally runs the Aftercare flow a few times under cProfile and prints the
top functions by cumulative time (after the comparison).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures

from tests.fixtures.prefect_server import start_prefect_server, stop_prefect_server  # noqa: E402

GOAL = 1.15
STEPS = [f"step-{n:02d}" for n in range(1, 11)]
PROCESS = "bench-automatic"

TEAM_YAML = """\
team:
  people:
    li.na: {name: Li Na, email: li.na@example.com, notify: [console]}
  roles:
    support-lead: [li.na]
"""


def definition_yaml() -> str:
    """Ten record steps; the case ends after the last one (no ``next``, no ``end``)."""
    lines = [
        f"process: {PROCESS}",
        "title: Bench automatic",
        "version: 1",
        "description: Ten automatic record steps, for the runtime overhead benchmark.",
        "key: BEN",
        "inputs:",
        "  title: {type: string}",
        "  amount: {type: integer, default: 3}",
        "steps:",
    ]
    for index, step in enumerate(STEPS, start=1):
        value = f'"{{{{ inputs.title }}}} #{index} x{{{{ inputs.amount }}}}"'
        extra = ", status: done" if index == len(STEPS) else ""
        lines += [f"  - id: {step}", "    type: record", f"    set: {{field_{index:02d}: {value}{extra}}}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="measured runs of each side (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="runs of each side before measuring (default 2)")
    parser.add_argument("--settle", type=float, default=1.0, help="untimed seconds between runs (default 1.0)")
    parser.add_argument("--heartbeats", action="store_true", help="keep Prefect's flow-run heartbeats (1 s quantum)")
    parser.add_argument("--profile", action="store_true", help="cProfile a few Aftercare runs afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (servers' homes, registers, logs)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-overhead-"))
    processes = tmp / "processes"
    processes.mkdir()
    (processes / "team.yaml").write_text(TEAM_YAML, encoding="utf-8")
    (processes / f"{PROCESS}.yaml").write_text(definition_yaml(), encoding="utf-8")

    print(f"starting a Prefect server in {tmp / 'prefect-home'} ...", flush=True)
    server = start_prefect_server(tmp / "prefect-home")
    print(f"  {server.api_url} up in {server.startup_seconds:.1f} s", flush=True)
    try:
        # Prefect reads its settings once, at import: set them before importing it.
        for key in [k for k in os.environ if k.startswith("PREFECT_")]:
            del os.environ[key]
        os.environ.update(server.env)
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # no per-task console lines on either side
        os.environ["AFTERCARE_DATABASE_URL"] = f"sqlite:///{tmp / 'register.db'}"
        os.environ["AFTERCARE_PROCESSES"] = str(processes)
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        updates = {} if args.heartbeats else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        with temporary_settings(updates=updates):
            return _bench(args, tmp, processes)
    finally:
        _drain_prefect_workers()
        stop_prefect_server(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _drain_prefect_workers() -> None:
    """Send the last logs and events before the server goes away."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=10)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class _RetryCounter(logging.Filter):
    """Counts the Prefect client's retries after a retryable answer (503 from a busy server).

    A filter on the ``prefect.client`` logger (set to DEBUG to see them): it counts the
    retry messages and lets only what the logger showed before (WARNING and up) through.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "retryable" in record.getMessage():
            self.count += 1
        return record.levelno >= logging.WARNING


def _bench(args: argparse.Namespace, tmp: Path, processes: Path) -> int:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.context import FlowRunContext

    from aftercare.engine.expressions import render
    from aftercare.flows.process_flow import build_flow
    from aftercare.flows.running import run_foreground
    from aftercare.flows import ui_updates
    from aftercare.notifications import load_checked_library

    retries = _RetryCounter()
    client_log = logging.getLogger("prefect.client")
    client_log.addFilter(retries)
    client_log.setLevel(logging.DEBUG)

    library = load_checked_library(processes)
    definition = library.get(f"{PROCESS}.yaml")
    process_flow = build_flow(definition, library)
    baseline_db = tmp / "baseline.db"
    with sqlite3.connect(baseline_db) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE records (run_id TEXT, step TEXT, field TEXT, value TEXT)")

    def write_row(step: str, index: int, scope: dict[str, Any]) -> dict[str, Any]:
        value = render(f"{{{{ inputs.title }}}} #{index} x{{{{ inputs.amount }}}}", scope)
        context = FlowRunContext.get()
        run_id = str(context.flow_run.id) if context and context.flow_run else ""
        connection = sqlite3.connect(baseline_db, timeout=30)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("INSERT INTO records VALUES (?, ?, ?, ?)", (run_id, step, f"field_{index:02d}", value))
            connection.commit()
        finally:
            connection.close()
        return {f"field_{index:02d}": value}

    step_tasks = [
        task(name=step, task_run_name=f"{step} #1", cache_policy=NO_CACHE, persist_result=False, log_prints=False)(write_row)
        for step in STEPS
    ]

    @flow(name="hand-written", persist_result=False, log_prints=False)
    def hand_written(title: str, amount: int = 3) -> dict[str, Any]:
        scope = {"inputs": {"title": title, "amount": amount}}
        results: dict[str, Any] = {}
        for index, (step, step_task) in enumerate(zip(STEPS, step_tasks), start=1):
            results.update(step_task(step, index, scope))
        return results

    def check(result: dict[str, Any]) -> None:
        assert result["outcome"] and result["path"] == STEPS, result

    ui_sent: list[float] = []

    def run_flow(n: int) -> None:
        check(process_flow(title=f"Case {n}", amount=3))

    def run_cli_path(n: int) -> None:
        check(run_foreground(definition, library, {"title": f"Case {n}", "amount": 3}, None))

    def run_baseline(n: int) -> None:
        result = hand_written(title=f"Case {n}", amount=3)
        assert len(result) == len(STEPS), result

    sides = {"aftercare": run_flow, "hand-written": run_baseline, "aftercare run": run_cli_path}
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    hit: dict[str, int] = {name: 0 for name in sides}
    total = args.warmup + args.runs
    load_before = os.getloadavg()[0]
    for n in range(total):
        line = []
        for name, run in sides.items():
            time.sleep(args.settle)
            before = retries.count
            cpu_started = time.process_time()
            started = time.perf_counter()
            run(n)
            elapsed = time.perf_counter() - started
            used = time.process_time() - cpu_started
            if run is run_flow:
                sent_from = time.perf_counter()
                ui_updates.drain()
                if n >= args.warmup:
                    ui_sent.append(time.perf_counter() - sent_from)
            retried = retries.count > before
            line.append(f"{name} {elapsed:.3f} s{' (503 retry)' if retried else ''}")
            if n >= args.warmup:
                times[name].append(elapsed)
                cpu[name].append(used)
                hit[name] += retried
        print(f"run {n + 1:>3}/{total}{' (warm-up)' if n < args.warmup else ''}: " + "  ".join(line), file=sys.stderr, flush=True)

    a = statistics.median(times["aftercare"])
    b = statistics.median(times["hand-written"])
    c = statistics.median(times["aftercare run"])
    ratio = a / b
    paired = statistics.median(x / y for x, y in zip(times["aftercare"], times["hand-written"]))
    print()
    print(
        f"10-step automatic process, {args.runs} interleaved runs each ({args.warmup} warm-up excluded), "
        f"heartbeats {'on' if args.heartbeats else 'off'}, {args.settle:g} s between runs, "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after"
    )
    for name in sides:
        values = times[name]
        print(
            f"  {name:<13} wall median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})   "
            f"CPU of this process median {statistics.median(cpu[name]):.3f} s   server 503 retries: {hit[name]}"
        )
    print(f"  ratio aftercare flow / hand-written, medians: {ratio:.3f}   goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}")
    print(f"  median of the {args.runs} paired ratios (same-moment runs, robust to load drift): {paired:.3f}")
    print(f"  ratio of this process's CPU, medians: {statistics.median(cpu['aftercare']) / statistics.median(cpu['hand-written']):.3f}")
    print(f"  ratio `aftercare run` (run_foreground) / hand-written, medians: {c / b:.3f}")
    print(f"  after each Aftercare run, its name and artifact reached Prefect in a median {statistics.median(ui_sent) * 1000:.0f} ms more (off the run's path)")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        for n in range(5):
            time.sleep(args.settle)
            profiler.enable()
            run_flow(1000 + n)
            profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(80)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats("__init__|get_client|create_default_context|for_library|ensure_migrated|deliver_pending|_name_run|timeline|definition_of_case|_case_for_run|run_url|opened|closed|recorded|save_definition|open_case|close_case|step_run")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
