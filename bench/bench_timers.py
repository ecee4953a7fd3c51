"""Time on Prefect's scheduler: idle cost, answer-to-next-step latency, and 100 timers due in one minute.

Issue #15: "bench/ prints, measured in one run: idle CPU of ``aftercare serve processes/``
over 5 minutes against a plain Prefect ``serve`` of the same deployments; the time from an
answer to the next step's start, median and p90 over 20 answers, with Prefect's own
flow-run start time printed beside it as the floor; how late 100 timers due at the same
minute fire (all within 10 s, each once)".

One run starts everything on this machine: a Prefect server on SQLite (the embedded
default's database), the register in a SQLite file, and:

1. **Idle**: ``aftercare serve processes/`` (the shipped library, system flows on) and a
   plain ``prefect.serve`` of the same process deployments (Prefect's defaults) side by
   side for ``--idle`` seconds (300); the CPU time of each process group (the serve and
   every flow-run process it started) over the window after a warm-up.
2. **Answers**: a served case of 21 approval steps; 20 times: wait until the run is
   suspended at step n, answer it (``submit_answer``, what ``aftercare answer`` does), and
   time until step n+1 has begun in the register. Each answer comes ``--think`` seconds
   (3) after the suspension: the suspended execution's process needs about a second to
   exit (Prefect joins its heartbeat thread), and the runner takes the run up again only
   after that; an answer within that second waits for it (``--think 0`` shows it). The floor: 20 runs of a one-step
   process created through the API, Prefect's own time from the run's creation to its
   Running state (``start_time - created``) under the same serve.
3. **Timers**: 100 waiting steps whose ``due`` falls within one minute, written to the
   register and given their timer runs with the code a case run uses
   (``flows.timers.schedule``); how long after its due each escalation was written, and
   that each case got exactly one escalation and one timer run.

    .venv/bin/python bench/bench_timers.py [--idle 300] [--answers 20] [--timers 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures, bench.bench_throughput

from bench.bench_throughput import _cpu_seconds, _processes, _python_script  # noqa: E402
from tests.fixtures.prefect_server import PrefectServer, running_prefect_server  # noqa: E402

TEAM = """\
team:
  people:
    li.na: {name: Li Na, email: li.na@example.com, notify: [console]}
    huang.lei: {name: Huang Lei, email: huang.lei@example.com, notify: [console]}
  roles:
    ops: [li.na]
"""
STEPS = 21
ANSWERS = "bench-answers"
FLOOR = "bench-floor"
TIMERS = "bench-timers"
PLAIN_SERVE = """\
import sys
from pathlib import Path
from prefect import serve
from aftercare.flows.serving import process_deployment
from aftercare.notifications import load_checked_library
library = load_checked_library(Path(sys.argv[1]))
serve(*[process_deployment(d, library) for d in library.definitions.values()])
"""


def _answers_definition() -> str:
    steps = "".join(
        f"  - id: a{n}\n    type: approval\n    title: Step {n}\n    assignee: person:li.na\n" for n in range(1, STEPS + 1)
    )
    return f"process: {ANSWERS}\ntitle: Answers\nversion: 1\nkey: BAN\ninputs:\n  title: {{type: string}}\nsteps:\n{steps}  - id: done\n    type: end\n    outcome: done\n"


FLOOR_DEFINITION = f"""\
process: {FLOOR}
title: Floor
version: 1
key: BFL
inputs:
  title: {{type: string}}
steps:
  - id: done
    type: end
    outcome: done
"""
TIMERS_DEFINITION = f"""\
process: {TIMERS}
title: Timers
version: 1
key: BTM
inputs:
  title: {{type: string}}
steps:
  - id: check
    type: approval
    title: Check
    assignee: person:li.na
    due: 1h
    escalate_to: person:huang.lei
  - id: done
    type: end
    outcome: done
"""


def _median_p90(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered):.2f} s, p90 {p90:.2f} s (n={len(ordered)})"


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {timeout} s")
        time.sleep(0.05)


def idle(server: PrefectServer, env: dict[str, str], root: Path, seconds: float) -> None:
    script = root / "plain_serve.py"
    script.write_text(PLAIN_SERVE, encoding="utf-8")
    commands = [[*_python_script("aftercare"), "serve", str(ROOT / "processes")], [sys.executable, str(script), str(ROOT / "processes")]]
    with _processes(commands, env, root) as (aftercare, plain):
        time.sleep(45)  # both started, deployments made, first polls done
        for process in (aftercare, plain):
            if process.poll() is not None:
                raise SystemExit(f"{process.args} exited with {process.returncode} (logs in {root})")
        before = [_cpu_seconds(p.pid) for p in (aftercare, plain)]
        server_before = _cpu_seconds(server.process.pid)
        time.sleep(seconds)
        used = [_cpu_seconds(p.pid) - b for p, b in zip((aftercare, plain), before, strict=True)]
        server_used = _cpu_seconds(server.process.pid) - server_before
    share = [100 * u / seconds for u in used]
    print(f"1. idle over {seconds:.0f} s, process group CPU (serve + its flow-run processes):")
    print(f"   aftercare serve processes/ : {used[0]:6.1f} CPU-s = {share[0]:.2f} % of a core (poll 1 s, timers and housekeeping on)")
    print(f"   plain Prefect serve        : {used[1]:6.1f} CPU-s = {share[1]:.2f} % of a core (Prefect's defaults, poll 10 s)")
    print(f"   difference {share[0] - share[1]:+.2f} % of a core (goal: within 1); Prefect server meanwhile {100 * server_used / seconds:.2f} %")
    for process in (aftercare, plain):
        if process.returncode not in (None, 0, -15, -9):
            print(f"   note: {process.args[-2:]} ended with {process.returncode}")


def answers(server: PrefectServer, env: dict[str, str], root: Path, count: int, think: float) -> None:
    from aftercare.engine.register import Register
    from aftercare.flows.answering import submit_answer
    from aftercare.notifications import load_checked_library

    folder = root / "answers"
    folder.mkdir()
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    (folder / f"{ANSWERS}.yaml").write_text(_answers_definition(), encoding="utf-8")
    (folder / f"{FLOOR}.yaml").write_text(FLOOR_DEFINITION, encoding="utf-8")
    register = Register(env["AFTERCARE_DATABASE_URL"])
    library = load_checked_library(folder)
    with _processes([[*_python_script("aftercare"), "serve", str(folder), "--no-system"]], env, root), server.client() as client:
        _wait(lambda: _has_deployment(client, ANSWERS) and _has_deployment(client, FLOOR), 120, "deployments")
        floor = []
        floor_deployment = client.read_deployment_by_name(f"{FLOOR}/{FLOOR}")
        for n in range(count):
            run = client.create_flow_run_from_deployment(floor_deployment.id, parameters={"title": f"floor {n}"})
            _wait(lambda: (r := client.read_flow_run(run.id)).start_time is not None, 60, "a floor run to start")
            started = client.read_flow_run(run.id)
            floor.append((started.start_time - started.created).total_seconds())
        deployment = client.read_deployment_by_name(f"{ANSWERS}/{ANSWERS}")
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"title": "answers"})
        _wait(lambda: register.case_for_run(str(run.id)) is not None, 60, "the case")
        key = register.case_for_run(str(run.id)).key  # type: ignore[union-attr]
        latencies, submits, to_running, replays = [], [], [], []
        for n in range(1, count + 1):
            step = f"a{n}"
            _wait(lambda: (client.read_flow_run(run.id).state_name == "Suspended" and register.case(key).current_step == step), 60,
                  f"suspension at {step}")
            time.sleep(think)  # a person reads the message first; meanwhile the suspended run's process exits
            answered = time.time()
            submit_answer(key, step, by="li.na", decision="approve", library=library, register=register)
            submitted = time.time()
            _wait(lambda: register.step_run(key, f"a{n + 1}", 1) is not None, 60, f"step a{n + 1}")
            next_start = register.step_run(key, f"a{n + 1}", 1).started_at.timestamp()  # type: ignore[union-attr]
            running = min(state.timestamp.timestamp() for state in client.read_flow_run_states(run.id)
                          if state.type.value == "RUNNING" and state.timestamp.timestamp() > submitted)
            latencies.append(next_start - answered)
            submits.append(submitted - answered)
            to_running.append(running - submitted)
            replays.append(next_start - running)
    print(f"2. from an answer (submit_answer, as `aftercare answer`; given {think:.0f} s after the step began waiting) "
          f"to the next step's start: {_median_p90(latencies)} (goal: median <= 3 s)")
    print(f"   floor, Prefect's own flow-run start (created -> Running) under the same serve: {_median_p90(floor)}")
    print(f"   of which: the answer's check and resume {_median_p90(submits)}; resumed -> Running {_median_p90(to_running)}; "
          f"Running -> next step begun (replay) {_median_p90(replays)}")


def _has_deployment(client: Any, process: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_deployment_by_name(f"{process}/{process}")
    except ObjectNotFound:
        return False
    return True


def timers(server: PrefectServer, env: dict[str, str], root: Path, count: int) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from aftercare.engine.clock import utc_now
    from aftercare.engine.register import WAIT_PERSON, Register
    from aftercare.flows.timers import Timer, schedule
    from aftercare.notifications import load_checked_library

    folder = root / "timers"
    folder.mkdir()
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    (folder / f"{TIMERS}.yaml").write_text(TIMERS_DEFINITION, encoding="utf-8")
    register = Register(env["AFTERCARE_DATABASE_URL"])
    definition = load_checked_library(folder).definitions[TIMERS]
    register.save_definition(definition.digest, TIMERS, 1, definition.path.read_text(encoding="utf-8"))
    with _processes([[*_python_script("aftercare"), "serve", str(folder)]], env, root), server.client() as client:
        _wait(lambda: _has_deployment(client, "aftercare-timer"), 120, "the timer deployment")
        time.sleep(5)
        minute = utc_now().replace(second=0, microsecond=0) + timedelta(minutes=2)
        dues = {}
        for n in range(count):
            due = minute + timedelta(seconds=n * 59 / max(1, count - 1))
            started = due - timedelta(hours=1)
            case = register.open_case(process=TIMERS, version=1, definition_hash=definition.digest, key_prefix="BTM",
                                      title=f"timer {n}", inputs={"title": f"timer {n}"}, opened_at=started)
            register.begin_step(case.key, "check", 1, started_at=started, due_at=due, eligible=["li.na"], wait_kind=WAIT_PERSON,
                                status="waiting")
            schedule(Timer("due", due, case.key, "check", 1))
            dues[case.key] = due
        print(f"3. {count} timers due between {minute:%H:%M:%S} and {max(dues.values()):%H:%M:%S} UTC; waiting for them to fire")

        def escalations() -> dict[str, list[Any]]:
            found: dict[str, list[Any]] = {key: [] for key in dues}
            for message in register.messages(limit=100_000):
                if message.case_key in found and "/check/1/escalation@" in message.idempotency_key:
                    found[message.case_key].append(message)
            return found

        _wait(lambda: all(escalations().values()), (max(dues.values()) - utc_now()).total_seconds() + 120, "every escalation")
        time.sleep(20)
        written = escalations()
        late = [(messages[0].created_at - dues[key]).total_seconds() for key, messages in written.items()]
        once = sum(1 for messages in written.values() if len(messages) == 1)
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["timer:due"])), limit=200)
        per_case: dict[str, int] = {}
        for run in runs:
            per_case[run.parameters.get("case", "")] = per_case.get(run.parameters.get("case", ""), 0) + 1
    print(f"   late: {_median_p90(late)}, max {max(late):.2f} s, min {min(late):.2f} s (goal: all within 10 s)")
    print(f"   escalated exactly once: {once} of {count}; timer runs per case: {sorted(set(per_case.values()))} (goal: [1])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=300.0, help="seconds of idle measurement")
    parser.add_argument("--answers", type=int, default=20)
    parser.add_argument("--think", type=float, default=3.0,
                        help="seconds between a step's suspension and its answer (the suspended run's process takes ~1 s to exit, "
                             "and its runner takes the run again only then)")
    parser.add_argument("--timers", type=int, default=100)
    parser.add_argument("--skip", choices=["idle", "answers", "timers"], action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as tmp:
        root = Path(tmp)
        with running_prefect_server(root / "prefect-home") as server:
            env = server.subprocess_env({"AFTERCARE_DATABASE_URL": f"sqlite:///{root / 'register.db'}", "PREFECT_LOGGING_LEVEL": "WARNING"})
            os.environ["AFTERCARE_DATABASE_URL"] = env["AFTERCARE_DATABASE_URL"]
            print(f"Prefect server on SQLite (up in {server.startup_seconds:.1f} s), register on SQLite; {os.cpu_count()} CPUs, "
                  f"load average {os.getloadavg()[0]:.1f}")
            if "idle" not in args.skip:
                idle(server, env, root, args.idle)
            with server.activate():
                if "answers" not in args.skip:
                    answers(server, env, root, args.answers, args.think)
                if "timers" not in args.skip:
                    timers(server, env, root, args.timers)
            print(f"load average at the end {os.getloadavg()[0]:.1f}; run id {uuid.uuid4().hex[:6]}")


if __name__ == "__main__":
    main()
