"""Steps waiting side by side under ``aftercare serve``: memory per waiting step, and an answer's way to the next step, v1 beside v2.

Issue #16: "``bench/`` prints, measured side by side in one run: memory of one ``serve``
with 200 cases each waiting on three parallel human steps (flat: no growth per waiting
step beyond the register rows), and the time from an answer's submission to the next
step's start in a served run (median and p90 over 20 answers) for a v1 and a v2 case."

One run starts everything on this machine: Prefect servers on SQLite (``--prefect-db
postgres``: each on a fresh PostgreSQL database), a fresh one per part so that each part's
server memory starts from the same place; registers in SQLite files; and ``aftercare serve
FOLDER`` (``python -m aftercare.flows.cli serve``, system flows on unless ``--no-system``,
``PREFECT_RUNNER_POLL_FREQUENCY=1``, Prefect's process limit of 5) of one folder holding
three definitions:

* ``bench-one`` (v1): an approval, then a notify step, then the end;
* ``bench-three`` (v2): a parallel of three form steps, each its own person, a join
  (``wait: all``), a notify step, the end;
* ``bench-two`` (v2): a parallel of two approvals, a join, a notify step, the end.

1. **Memory.** For v1 (``bench-one``) and then v2 (``bench-three``), each under a serve
   of its own: cases are started through the deployment ``--wave`` (10) at a time until
   each count of ``--cases`` (0, 5, 15) is reached; after each wave the bench waits until
   every case's run is Suspended and, for v2, its three form runs too. At each count it
   takes the RSS (``/proc``: no psutil in the venv) of the serve's whole process tree at a
   quiet moment (no child process), and of the Prefect server's; it counts the register's
   ``step_runs`` rows and Prefect's flow runs, and the CPU time serve's processes and the
   server spent getting the cases to wait. The growth per waiting step, between the first
   and the last non-zero count, is what serve holds per person being waited on: ~0 when
   nothing is held while people think (exit 1 otherwise, or when a process is left).
2. **Latency.** ``--answers`` (10; the issue asks 20) cases of ``bench-one`` and as many
   of ``bench-two`` under one serve; each ``bench-two`` case's first approval is answered
   beforehand, so the measured answer is the one its join waits for. Then v1 and v2 in
   turn (the order swapped every round), one at a time: answer (``submit_answer``, what
   ``aftercare answer`` does) and time until the next step has begun in the register (v1:
   the notify step; v2: the join, and the notify step after it), then wait until the case
   is over and serve has no child process left. Every answered case has been suspended at
   least ``--think`` seconds (3): the suspended execution's process needs about a second
   to exit (bench_timers.py). The phases come from Prefect's state history of the runs
   involved; resumes the Prefect server failed to write (SQLite's "database is locked",
   in its log) are counted per answer.

    .venv/bin/python bench/bench_parallel.py [--cases 0,5,15] [--answers 10] [--wave 10]
        [--think 3] [--prefect-db sqlite|postgres] [--no-system] [--skip memory|latency] [--keep]

The defaults take about 10 minutes on 2 cores. The issue's numbers: ``--cases 0,50,200
--answers 20`` (about 70 minutes: each v2 case starts four flow runs, each a Python
process until it suspends, five at a time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures, bench.bench_waiting_memory

from bench.bench_throughput import _cpu_seconds  # noqa: E402
from bench.bench_waiting_memory import TEAM_YAML, create_runs, descendants, quiet_sample, rss_kb, serve_command  # noqa: E402
from tests.fixtures.prefect_server import (  # noqa: E402
    PrefectServer,
    ServedProcess,
    fresh_pg_database,
    running_prefect_server,
    serve_subprocess,
)

V1 = "bench-one"
V2_THREE = "bench-three"
V2_TWO = "bench-two"
FORM_DEPLOYMENT = "aftercare-form/aftercare-form"
SERVING_LINE = b"Your deployments are being served"

TEAM = TEAM_YAML.replace("  roles:", "    huang.lei: {name: Huang Lei, email: huang.lei@example.com, notify: [console]}\n  roles:")
DEFINITIONS = {
    V1: f"""\
process: {V1}
title: One approval
version: 1
key: BON
inputs:
  title: {{type: string}}
steps:
  - id: approve
    type: approval
    title: "Approve {{{{ inputs.title }}}}"
    assignee: person:li.na
  - id: told
    type: notify
    to: [person:wang.wei]
    subject: "{{{{ case.key }}}} approved"
    message: "{{{{ inputs.title }}}} is approved."
  - id: done
    type: end
    outcome: approved
""",
    V2_THREE: f"""\
process: {V2_THREE}
title: Three forms side by side
version: 1
key: BTH
inputs:
  title: {{type: string}}
steps:
  - id: checks
    type: parallel
    branches: [check-a, check-b, check-c]
  - {{id: check-a, type: form, assignee: person:li.na, next: checked}}
  - {{id: check-b, type: form, assignee: person:wang.wei, next: checked}}
  - {{id: check-c, type: form, assignee: person:huang.lei, next: checked}}
  - id: checked
    type: join
    next: told
  - id: told
    type: notify
    to: [person:li.na]
    subject: "{{{{ case.key }}}} checked"
    message: "{{{{ inputs.title }}}}: all three checks are in."
  - id: done
    type: end
    outcome: checked
""",
    V2_TWO: f"""\
process: {V2_TWO}
title: Two approvals side by side
version: 1
key: BTW
inputs:
  title: {{type: string}}
steps:
  - id: reviews
    type: parallel
    branches: [review-a, review-b]
  - id: review-a
    type: approval
    title: "Review A of {{{{ inputs.title }}}}"
    assignee: person:li.na
    next: reviewed
  - id: review-b
    type: approval
    title: "Review B of {{{{ inputs.title }}}}"
    assignee: person:huang.lei
    next: reviewed
  - id: reviewed
    type: join
    next: told
  - id: told
    type: notify
    to: [person:wang.wei]
    subject: "{{{{ case.key }}}} reviewed"
    message: "{{{{ inputs.title }}}} passed both reviews."
  - id: done
    type: end
    outcome: approved
""",
}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _median_p90(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered):5.2f} s, p90 {p90:5.2f} s"


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def _wait(condition: Callable[[], bool], timeout: float, what: str, served: ServedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if served is not None and served.process.poll() is not None:
            raise SystemExit(f"serve exited with {served.process.returncode} while waiting for {what}:\n{served.log_tail()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {timeout} s" + (f":\n{served.log_tail()}" if served else ""))
        time.sleep(0.1)


@contextmanager
def _prefect_server(home: Path, database: str) -> Iterator[PrefectServer]:
    """A fresh Prefect server: on SQLite in ``home``, or on a fresh PostgreSQL database (``AFTERCARE_BENCH_PG_ADMIN_URL``)."""
    with contextlib.ExitStack() as stack:
        url = None
        if database == "postgres":
            url = stack.enter_context(fresh_pg_database(os.environ.get("AFTERCARE_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")))
        yield stack.enter_context(running_prefect_server(home, url))


def _folder(root: Path) -> Path:
    folder = root / "processes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    for name, text in DEFINITIONS.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


@contextmanager
def _serve(server: PrefectServer, folder: Path, register_url: str, *, system: bool) -> Iterator[ServedProcess]:
    """``aftercare serve FOLDER`` against ``server``, once it polls for runs."""
    argv, env = serve_command(folder, register_url, system=system)
    deployments = [f"{name}/{name}" for name in DEFINITIONS] + [FORM_DEPLOYMENT]
    with serve_subprocess(server, argv, deployments, cwd=folder.parent, extra_env=env, timeout=180) as served:
        _wait(lambda: SERVING_LINE in served.log_path.read_bytes(), 180, "serving line", served)
        yield served


# --- Prefect's runs -----------------------------------------------------------------------


def _suspended(client: Any, deployment_id: uuid.UUID) -> int:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateName

    return int(client.count_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Suspended"]))),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
    ))


def _failed(client: Any) -> int:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    return int(client.count_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED])))
    ))


def _wait_all_waiting(
    server: PrefectServer, served: ServedProcess, process: str, cases: int, forms_per_case: int, *, timeout: float
) -> int:
    """Wait until ``cases`` runs of ``process`` and ``cases * forms_per_case`` form runs are Suspended; the most children meanwhile."""
    peak = 0
    with server.client() as client:
        process_id = served.deployment_ids[f"{process}/{process}"]
        form_id = served.deployment_ids[FORM_DEPLOYMENT]

        def done() -> bool:
            nonlocal peak
            peak = max(peak, len(descendants(served.process.pid)))
            if _failed(client):
                raise SystemExit(f"a flow run failed or crashed:\n{served.log_tail()}")
            return _suspended(client, process_id) >= cases and (not forms_per_case or _suspended(client, form_id) >= cases * forms_per_case)

        _wait(done, timeout, f"{cases} suspended case runs of {process} with {forms_per_case} suspended form runs each", served)
    return peak


def _states_after(client: Any, run_id: uuid.UUID | str, after: float) -> list[tuple[str, float]]:
    """(state type, timestamp) of a run's states set after ``after`` (epoch seconds), oldest first."""
    states = client.read_flow_run_states(uuid.UUID(str(run_id)))
    found = [(state.type.value, state.timestamp.timestamp()) for state in states if state.timestamp.timestamp() >= after]
    return sorted(found, key=lambda item: item[1])


def _first(states: list[tuple[str, float]], kind: str) -> float:
    return min(at for state, at in states if state == kind)


# --- 1. memory ----------------------------------------------------------------------------


@dataclass
class Level:
    """The serve tree, the Prefect server and the counts at one number of waiting cases."""

    cases: int
    waiting_steps: int
    tree_kb: int
    serve_kb: int
    children: int
    server_kb: int
    step_runs: int
    flow_runs: int


@dataclass
class MemoryRun:
    """One kind's levels, and the CPU its cases took to start and suspend."""

    levels: list[Level]
    serve_cpu: float
    server_cpu: float


def _tree_kb(pid: int) -> int:
    return rss_kb(pid) + sum(rss_kb(child) for child in descendants(pid))


def _step_runs(register_db: Path) -> int:
    if not register_db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(register_db)) as connection:
        try:
            return int(connection.execute("select count(*) from step_runs").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet: no case started
            return 0


def memory(root: Path, folder: Path, kind: str, process: str, steps_per_case: int, counts: list[int], *, wave: int, system: bool,
           database: str) -> MemoryRun:
    """Cases of ``process`` waiting under one serve (a fresh Prefect server); the tree at each count."""
    home = root / f"memory-{kind}"
    register_db = home / "register.db"
    levels: list[Level] = []
    forms = steps_per_case if steps_per_case > 1 else 0
    serve_cpu = server_cpu = 0.0
    with _prefect_server(home / "prefect-home", database) as server:
        _say(f"[{kind}] Prefect server up in {server.startup_seconds:.1f} s")
        with _serve(server, folder, f"sqlite:///{register_db}", system=system) as served, server.client() as client:
            pid = served.process.pid
            deployment_id = served.deployment_ids[f"{process}/{process}"]
            started = 0
            for target in counts:
                cpu_before = (_cpu_seconds(pid), _cpu_seconds(server.process.pid))
                while started < target:
                    batch = min(wave, target - started)
                    clock = time.monotonic()
                    create_runs(server, deployment_id, batch, started)
                    started += batch
                    peak = _wait_all_waiting(server, served, process, started, forms, timeout=120 + 30 * batch * steps_per_case)
                    _say(f"[{kind}] {started:>4} cases waiting (wave of {batch}: {time.monotonic() - clock:.1f} s, "
                         f"at most {peak} child processes)")
                quiet = quiet_sample(pid, started)
                serve_cpu += _cpu_seconds(pid) - cpu_before[0]
                server_cpu += _cpu_seconds(server.process.pid) - cpu_before[1]
                levels.append(Level(
                    cases=started, waiting_steps=started * steps_per_case, tree_kb=quiet.tree_kb, serve_kb=quiet.serve_kb,
                    children=len(quiet.children), server_kb=_tree_kb(server.process.pid), step_runs=_step_runs(register_db),
                    flow_runs=client.count_flow_runs(),
                ))
                _say(f"[{kind}] {started:>4} cases: tree {quiet.tree_kb / 1024:.1f} MB, children {len(quiet.children)}")
    return MemoryRun(levels, serve_cpu, server_cpu)


def print_memory(results: dict[str, MemoryRun], *, wave: int, system: bool, database: str) -> bool:
    """The table and the growth per waiting step; True when nothing grows with waiting steps and no process is held."""
    print(f"1. memory of one `aftercare serve` while cases wait (RSS from /proc at a quiet moment; system flows "
          f"{'on' if system else 'off'}; cases started {wave} at a time; a fresh Prefect server on {database} for each kind)")
    print("   kind                            cases  waiting steps  serve tree    (serve)  children  Prefect server  step_runs  flow runs")
    labels = {"v1": "v1, one approval each", "v2": "v2, three parallel forms each"}
    for kind, run in results.items():
        for level in run.levels:
            print(f"   {labels[kind]:<30}{level.cases:>7}  {level.waiting_steps:>13}  {level.tree_kb / 1024:7.1f} MB {level.serve_kb / 1024:7.1f} MB"
                  f"  {level.children:>8}  {level.server_kb / 1024:11.1f} MB  {level.step_runs:>9}  {level.flow_runs:>9}")
    growth: dict[str, float] = {}
    ok = all(level.children == 0 for run in results.values() for level in run.levels)
    for kind, run in results.items():
        measured = [level for level in run.levels if level.cases > 0]
        if not measured:
            continue
        last = measured[-1]
        runs = (last.flow_runs - run.levels[0].flow_runs) / last.cases
        print(f"   {kind}: per case {last.step_runs / last.cases:.0f} register rows and {runs:.0f} flow runs; starting and suspending "
              f"them took {run.serve_cpu / last.cases:.1f} CPU-s per case in serve's processes, {run.server_cpu / last.cases:.1f} in the Prefect server")
        if len(measured) < 2:
            continue
        first = measured[0]
        steps = last.waiting_steps - first.waiting_steps
        growth[kind] = (last.tree_kb - first.tree_kb) / steps
        server = (last.server_kb - first.server_kb) / (last.flow_runs - first.flow_runs)
        print(f"   {kind}: growth {first.cases}→{last.cases} cases: serve tree {(last.tree_kb - first.tree_kb) / 1024:+.1f} MB = "
              f"{growth[kind]:+.1f} kB per waiting step; Prefect server {server:+.1f} kB per flow run")
    if "v1" in growth and "v2" in growth:
        print(f"   per waiting step, v2 - v1: {growth['v2'] - growth['v1']:+.1f} kB. Flat: a waiting step is a register row and a "
              f"suspended flow run, no process and nothing held in serve")
        ok = ok and max(growth.values()) < 100  # kB per waiting step: noise is tens of kB, a held process is ~100 MB
    return ok


# --- 2. latency ---------------------------------------------------------------------------


@dataclass
class Answered:
    """One measured answer."""

    to_next: float
    """Answer given → the next step begun in the register (v2: the join)."""
    to_notify: float
    """Answer given → the notify step begun."""
    phases: dict[str, float]
    resumed: list[str]
    """The runs the answer resumes: v1 the case's run; v2 the form run, then the case's run."""
    window: tuple[float, float]
    refused: int = 0
    """Resumes of those runs Prefect's server refused meanwhile (SQLite: database is locked)."""


REFUSED_RESUME = re.compile(r"\[parameters: \{'flow_run_id': '([0-9a-f-]+)', 'type': 'SCHEDULED', 'timestamp': '([^']+)', 'name': 'Resuming'")


def _refused_resumes(server_log: Path) -> list[tuple[str, float]]:
    """(flow run id, when) of each Resuming state the server failed to write (logged with its SQL; SQLite's "database is locked")."""
    from datetime import datetime, timezone

    found = []
    for match in REFUSED_RESUME.finditer(server_log.read_text(errors="replace")):
        at = datetime.fromisoformat(match.group(2)).replace(tzinfo=timezone.utc).timestamp()
        found.append((match.group(1), at))
    return found


def latency(root: Path, folder: Path, count: int, *, think: float, system: bool, database: str) -> dict[str, list[Answered]]:
    from aftercare.engine.register import Register
    from aftercare.flows.answering import submit_answer
    from aftercare.notifications import load_checked_library

    home = root / "latency"
    register_url = f"sqlite:///{home / 'register.db'}"
    results: dict[str, list[Answered]] = {"v1": [], "v2": []}
    with _prefect_server(home / "prefect-home", database) as server, server.activate():
        _say(f"[latency] Prefect server up in {server.startup_seconds:.1f} s")
        with _serve(server, folder, register_url, system=system) as served, server.client() as client:
            register = Register(register_url)
            library = load_checked_library(folder)
            clock = time.monotonic()
            runs = {process: create_runs(server, served.deployment_ids[f"{process}/{process}"], count, 0) for process in (V1, V2_TWO)}
            for process, forms in ((V1, 0), (V2_TWO, 2)):  # the runner takes them five at a time
                _wait_all_waiting(server, served, process, count, forms, timeout=300 + 20 * count * (2 + forms))
            _say(f"[latency] {count} {V1} and {count} {V2_TWO} cases waiting ({time.monotonic() - clock:.0f} s)")

            def key_of(run_id: uuid.UUID) -> str:
                _wait(lambda: register.case_for_run(str(run_id)) is not None, 60, "the case of a run", served)
                return register.case_for_run(str(run_id)).key  # type: ignore[union-attr]

            v1_keys = [key_of(run_id) for run_id in runs[V1]]
            v2_keys = [key_of(run_id) for run_id in runs[V2_TWO]]
            # the first approval of each v2 case, beforehand: the measured answer is the one the join waits for
            clock, answered_first = time.monotonic(), time.time()
            for key in v2_keys:
                submit_answer(key, "review-a", by="li.na", decision="approve", library=library, register=register)

            def back_to_waiting(run_id: uuid.UUID) -> bool:
                run = client.read_flow_run(run_id)
                return run.state_name == "Suspended" and run.state is not None and run.state.timestamp.timestamp() > answered_first

            _wait(lambda: all(back_to_waiting(run_id) for run_id in runs[V2_TWO]), 300 + 20 * count,
                  "each v2 case's run suspended again after its first answer", served)
            _wait(lambda: not descendants(served.process.pid), 120, "serve without child processes", served)
            _say(f"[latency] each {V2_TWO} case answered once and suspended again ({time.monotonic() - clock:.0f} s)")
            time.sleep(think)

            for n in range(count):
                order = [("v1", v1_keys[n], runs[V1][n]), ("v2", v2_keys[n], runs[V2_TWO][n])]
                for kind, key, run_id in order if n % 2 == 0 else reversed(order):
                    item = _answer_one(client, served, register, library, submit_answer, kind, key, run_id)
                    results[kind].append(item)
                    _say(f"[latency] {n + 1:>2} {kind} {key}: next step {item.to_next:5.2f} s, notify {item.to_notify:5.2f} s")
                    # the finished case's processes exit before the next answer: one answer at a time on the machine
                    _wait(lambda: not descendants(served.process.pid), 120, "serve without child processes", served)
            register.close()
        refusals = _refused_resumes(server.log_path)
    for item in results["v1"] + results["v2"]:
        item.refused = sum(1 for run_id, at in refusals if run_id in item.resumed and item.window[0] <= at <= item.window[1])
    return results


def _answer_one(client: Any, served: ServedProcess, register: Any, library: Any, submit_answer: Any, kind: str, key: str,
                run_id: uuid.UUID) -> Answered:
    from aftercare.flows.forms import find_form

    step, person, following = ("approve", "li.na", "told") if kind == "v1" else ("review-b", "huang.lei", "reviewed")
    form = find_form(str(run_id), step, 1) if kind == "v2" else None
    answered = time.time()
    submit_answer(key, step, by=person, decision="approve", library=library, register=register)
    submitted = time.time()
    _wait(lambda: register.step_run(key, "told", 1) is not None, 120, f"the notify step of {key}", served)
    next_start = register.step_run(key, following, 1).started_at.timestamp()
    notify_start = register.step_run(key, "told", 1).started_at.timestamp()
    _wait(lambda: (run := client.read_flow_run(run_id)).state is not None and run.state.is_final(), 120, f"the end of {key}", served)
    case_states = _states_after(client, run_id, answered - 0.5)
    phases = {"check and resume (submit_answer)": submitted - answered}
    case_running = _first(case_states, "RUNNING")
    if form is not None:
        form_states = _states_after(client, form.id, answered - 0.5)
        form_running = _first(form_states, "RUNNING")
        case_woken = _first(case_states, "SCHEDULED")
        phases["resumed → form run Running (runner poll, process start)"] = form_running - submitted
        phases["form run Running → case's run woken (takes the answer, records it, wakes)"] = case_woken - form_running
        phases["case's run woken → Running (runner poll, process start)"] = case_running - case_woken
    else:
        phases["resumed → case's run Running (runner poll, process start)"] = case_running - submitted
    phases["case's run Running → next step begun (replay)"] = next_start - case_running
    resumed = [str(form.id), str(run_id)] if form is not None else [str(run_id)]
    return Answered(to_next=next_start - answered, to_notify=notify_start - answered, phases=phases, resumed=resumed,
                    window=(answered - 0.5, next_start))


def print_latency(results: dict[str, list[Answered]], *, think: float, database: str) -> None:
    v1, v2 = results["v1"], results["v2"]
    print(f"2. an answer (submit_answer, as `aftercare answer`) to the next step begun, served (Prefect server on {database}), "
          f"{len(v1)} answers each, v1 and v2 in turn, one at a time; each answered case suspended >= {think:.0f} s before")
    print(f"   v1 {V1} (approval → notify), to the notify step:   {_median_p90([a.to_next for a in v1])}")
    print(f"   v2 {V2_TWO} (parallel of two approvals → join → notify), the answer the join waits for:")
    print(f"      to the join:                                     {_median_p90([a.to_next for a in v2])}")
    print(f"      to the notify step after it:                     {_median_p90([a.to_notify for a in v2])}")
    m1, m2 = statistics.median(a.to_next for a in v1), statistics.median(a.to_next for a in v2)
    p1, p2 = _p90([a.to_next for a in v1]), _p90([a.to_next for a in v2])
    print(f"   ratio v2 / v1, answer → next step begun: median {m2 / m1:.2f}, p90 {p2 / p1:.2f}")
    for label, items in (("v1", v1), ("v2", v2)):
        print(f"   {label} phases (median s):")
        for phase in items[0].phases:
            print(f"      {phase:<78} {statistics.median(a.phases[phase] for a in items):5.2f}")
    for label, items in (("v1", v1), ("v2", v2)):
        hit = [a for a in items if a.refused]
        if hit:
            rest = [a.to_next for a in items if not a.refused]
            print(f"   {label}: {len(hit)} of {len(items)} answers had a resume refused by the Prefect server (SQLite: database is locked; "
                  f"a 503 its client retries after ~2 s): median {statistics.median(a.to_next for a in hit):.2f} s; the others "
                  + (f"median {statistics.median(rest):.2f} s" if rest else "none"))
    print("   What v2 costs: the answer resumes the step's own form run, so the runner polls and starts a Python process for it;")
    print("   it takes the answer, records the decision and wakes the case's run, which is then taken up the same way (a poll,")
    print("   another process start) and replays from the register to the join: two flow-run starts where v1 has one.")


# --- main -----------------------------------------------------------------------------------


def _commit() -> str:
    """Where the aftercare code measured comes from, and its commit when that is a git work tree."""
    import subprocess

    import aftercare.flows

    where = Path(aftercare.flows.__file__).resolve().parents[1]
    done = subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False)
    return f"{where} {done.stdout.strip() if done.returncode == 0 else '(not a git work tree)'}"


def _counts(text: str) -> list[int]:
    counts = sorted({int(item) for item in text.split(",") if item.strip()})
    if not counts or counts[0] < 0:
        raise argparse.ArgumentTypeError("comma-separated case counts, e.g. 0,5,15")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=_counts, default=_counts("0,5,15"), help="waiting-case counts measured (default 0,5,15)")
    parser.add_argument("--answers", type=int, default=10, help="answers measured per kind (default 10; the issue's: 20)")
    parser.add_argument("--wave", type=int, default=10, help="cases started at a time for the memory part (default 10)")
    parser.add_argument("--think", type=float, default=3.0, help="seconds a case stays suspended before its answer (default 3)")
    parser.add_argument("--prefect-db", choices=["sqlite", "postgres"], default="sqlite",
                        help="the Prefect servers' database (default sqlite; postgres: a fresh database at AFTERCARE_BENCH_PG_ADMIN_URL)")
    parser.add_argument("--no-system", action="store_true", help="serve without the system flows")
    parser.add_argument("--skip", choices=["memory", "latency"], action="append", default=[])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (servers' homes, registers, logs)")
    args = parser.parse_args()
    system = not args.no_system
    root = Path(tempfile.mkdtemp(prefix="aftercare-bench-parallel-"))
    folder = _folder(root)
    started = time.monotonic()
    ok = True
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; Prefect servers on {args.prefect_db}, registers on SQLite; "
          f"runner poll 1 s, process limit 5 (Prefect's default); code at {_commit()}")
    try:
        if "memory" not in args.skip:
            results = {
                "v1": memory(root, folder, "v1", V1, 1, args.cases, wave=args.wave, system=system, database=args.prefect_db),
                "v2": memory(root, folder, "v2", V2_THREE, 3, args.cases, wave=args.wave, system=system, database=args.prefect_db),
            }
            ok = print_memory(results, wave=args.wave, system=system, database=args.prefect_db)
        if "latency" not in args.skip and args.answers > 0:
            measured = latency(root, folder, args.answers, think=args.think, system=system, database=args.prefect_db)
            print_latency(measured, think=args.think, database=args.prefect_db)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"wall {time.monotonic() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}; run id {uuid.uuid4().hex[:6]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
