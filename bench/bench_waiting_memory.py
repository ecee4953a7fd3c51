"""Memory of one ``aftercare serve`` while many cases wait on an approval.

Issue #4: "200 cases waiting on approval at once under one serve process: its memory does
not grow with the number of waiting cases (a test or bench that shows it)".

A local ``prefect server start`` (its own PREFECT_HOME, analytics off) and one
``aftercare serve FOLDER`` (``python -m aftercare.flows.cli serve``, the system flows on
unless ``--no-system``, ``PREFECT_RUNNER_POLL_FREQUENCY=1``) of a folder whose definition
starts with an approval. The bench creates flow runs of that deployment in waves (a served
run has its own process until it suspends, and ``aftercare serve`` sets no process limit:
180 runs created at once would start 180 Python processes on this 2-core machine), waits
until every run is Suspended, and measures:

* the RSS of the serve process and of its whole process tree (``VmRSS`` of
  ``/proc/PID/status`` for the serve pid and every descendant), taken at a quiet moment
  (no child process: a timer or housekeeping run may be running);
* the children of serve, each named by its flow run (``PREFECT__FLOW_RUN_ID`` in its
  environment): a waiting case must hold none.

It prints the numbers at idle, after ``--first`` (20) and after ``--total`` (200) waiting
cases, and the growth per waiting case; exit 1 when the tree grew more than ``--bound-mb``
(30 MB) from first to total, or a process is left per waiting case.

    .venv/bin/python bench/bench_waiting_memory.py [--first 20] [--total 200] [--wave 20]
        [--no-system] [--bound-mb 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures

from tests.fixtures.prefect_server import (  # noqa: E402
    PrefectServer,
    ServedProcess,
    running_prefect_server,
    serve_subprocess,
)

PROCESS = "bench-approval"
DEPLOYMENT = f"{PROCESS}/{PROCESS}"

TEAM_YAML = """\
team:
  people:
    li.na: {name: Li Na, email: li.na@example.com, notify: [console]}
    wang.wei: {name: Wang Wei, email: wang.wei@example.com, notify: [console]}
  roles:
    support-lead: [li.na, wang.wei]
"""

DEFINITION_YAML = f"""\
process: {PROCESS}
title: Bench approval
version: 1
description: A case that waits on an approval first, for the waiting-memory benchmark.
key: APR
inputs:
  title: {{type: string}}
steps:
  - id: approve
    type: approval
    title: "Approve {{{{ inputs.title }}}}"
    assignee: role:support-lead
  - id: done
    type: end
    outcome: approved
"""


# --- processes and their memory (no psutil here: /proc) -------------------------------


def rss_kb(pid: int) -> int:
    """VmRSS of a process in kB (0 when it is gone or has no memory of its own)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses
    return int(text[text.rindex(")") + 2 :].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def flow_run_of(pid: int) -> str | None:
    """The flow run a runner's child process executes (``PREFECT__FLOW_RUN_ID``), if any."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            for item in environ.read().split(b"\0"):
                if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                    return item.split(b"=", 1)[1].decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None


@dataclass
class Sample:
    """The serve process tree at one moment."""

    waiting: int
    serve_kb: int
    tree_kb: int
    children: list[tuple[int, int, str | None]] = field(default_factory=list)
    """(pid, RSS kB, flow run id) of each descendant."""

    def line(self, label: str) -> str:
        return (
            f"  {label:<22} waiting {self.waiting:>4}   serve {self.serve_kb / 1024:7.1f} MB   "
            f"tree {self.tree_kb / 1024:7.1f} MB   child processes {len(self.children)}"
        )


def sample(pid: int, waiting: int) -> Sample:
    """RSS of ``pid`` and of its whole tree, and its descendants."""
    kids = [(child, rss_kb(child), flow_run_of(child)) for child in descendants(pid)]
    serve = rss_kb(pid)
    return Sample(waiting=waiting, serve_kb=serve, tree_kb=serve + sum(kb for _, kb, _ in kids), children=kids)


def quiet_sample(pid: int, waiting: int, *, timeout: float = 90.0, settle: float = 2.0) -> Sample:
    """A sample taken when serve has had no child process for ``settle`` seconds.

    A timer or housekeeping run may start a short-lived process; waiting for a quiet moment
    measures what serve itself holds. Falls back to the last sample after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        current = sample(pid, waiting)
        now = time.monotonic()
        if current.children:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle:
            return current
        if now > deadline:
            return current
        time.sleep(0.25)


# --- flow runs --------------------------------------------------------------------------


def create_runs(server: PrefectServer, deployment_id: uuid.UUID, count: int, start: int) -> list[uuid.UUID]:
    """``count`` flow runs of the deployment, as ``run_deployment(timeout=0)`` would make them."""
    with server.client() as client:
        return [
            client.create_flow_run_from_deployment(deployment_id, parameters={"title": f"Case {start + n}"}).id
            for n in range(count)
        ]


def wait_until_suspended(
    server: PrefectServer, ids: Iterable[uuid.UUID], served: ServedProcess, *, timeout: float
) -> tuple[float, int]:
    """Wait until every run is Suspended. A failed run is an error.

    Returns:
        The seconds it took, and the most child processes serve had meanwhile.
    """
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    pending = set(ids)
    started = time.monotonic()
    peak = 0
    with server.client() as client:
        while pending:
            peak = max(peak, len(descendants(served.process.pid)))
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(pending))), limit=len(pending))
            for run in runs:
                if run.state_name == "Suspended":
                    pending.discard(run.id)
                elif run.state is not None and run.state.is_final():
                    raise RuntimeError(f"flow run {run.id} ended {run.state_name} instead of waiting:\n{served.log_tail()}")
            if not pending:
                break
            if served.process.poll() is not None:
                raise RuntimeError(f"serve exited with {served.process.returncode}:\n{served.log_tail()}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{len(pending)} run(s) not Suspended within {timeout} s:\n{served.log_tail()}")
            time.sleep(0.5)
    return time.monotonic() - started, peak


def serve_command(folder: Path, register_url: str, *, system: bool) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment of ``aftercare serve FOLDER`` as the benches run it: runner poll 1 s, quiet logs."""
    env = {
        "AFTERCARE_DATABASE_URL": register_url,
        "AFTERCARE_PROCESSES": str(folder),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    return ["-m", "aftercare.flows.cli", "serve", str(folder), *([] if system else ["--no-system"])], env


@dataclass
class Report:
    """What the bench measured."""

    idle: Sample
    first: Sample
    total: Sample
    peak_children: int
    seconds: float
    open_steps: int

    @property
    def growth_kb_per_case(self) -> float:
        return (self.total.tree_kb - self.first.tree_kb) / max(1, self.total.waiting - self.first.waiting)

    @property
    def growth_mb(self) -> float:
        return (self.total.tree_kb - self.first.tree_kb) / 1024


def waiting_cases_under_serve(
    server: PrefectServer,
    folder: Path,
    register_url: str,
    *,
    first: int = 20,
    total: int = 200,
    wave: int = 20,
    system: bool = True,
    log: bool = True,
) -> Report:
    """Serve ``folder``, make ``first`` then ``total`` cases wait on their approval, sample the tree."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(TEAM_YAML, encoding="utf-8")
    (folder / f"{PROCESS}.yaml").write_text(DEFINITION_YAML, encoding="utf-8")
    argv, env = serve_command(folder, register_url, system=system)

    def say(text: str) -> None:
        if log:
            print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    with serve_subprocess(server, argv, [DEPLOYMENT], cwd=folder.parent, extra_env=env, timeout=120) as served:
        pid = served.process.pid
        deployment_id = served.deployment_ids[DEPLOYMENT]
        idle = quiet_sample(pid, 0)
        say(idle.line("idle"))
        ids: list[uuid.UUID] = []
        peak = 0
        samples: dict[int, Sample] = {}
        for target in (first, total):
            while len(ids) < target:
                batch = create_runs(server, deployment_id, min(wave, target - len(ids)), len(ids))
                ids += batch
                took, most = wait_until_suspended(server, batch, served, timeout=300)
                peak = max(peak, most)
                say(f"  {len(ids):>4} suspended (this wave of {len(batch)}: {took:.1f} s)")
            samples[target] = quiet_sample(pid, len(ids))
            say(samples[target].line(f"after {target}"))
        from aftercare.engine.register import Register

        register = Register(register_url)
        open_steps = [run for run in register.open_steps(limit=total * 2) if run.step_id == "approve"]
        register.close()
    return Report(
        idle=idle,
        first=samples[first],
        total=samples[total],
        peak_children=peak,
        seconds=time.monotonic() - started,
        open_steps=len(open_steps),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", type=int, default=20, help="waiting cases at the first measurement (default 20)")
    parser.add_argument("--total", type=int, default=200, help="waiting cases at the second measurement (default 200)")
    parser.add_argument("--wave", type=int, default=20, help="runs created at a time (default 20)")
    parser.add_argument("--no-system", action="store_true", help="serve without the system flows")
    parser.add_argument("--bound-mb", type=float, default=30.0, help="allowed tree growth first→total (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (servers' homes, registers, logs)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-waiting-"))
    print(f"starting a Prefect server in {tmp / 'prefect-home'} ...", file=sys.stderr, flush=True)
    with running_prefect_server(tmp / "prefect-home") as server:
        print(f"  {server.api_url} up in {server.startup_seconds:.1f} s", file=sys.stderr, flush=True)
        report = waiting_cases_under_serve(
            server,
            tmp / "processes",
            f"sqlite:///{tmp / 'register.db'}",
            first=args.first,
            total=args.total,
            wave=args.wave,
            system=not args.no_system,
        )
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{args.total} cases waiting on an approval under one `aftercare serve` "
          f"(system flows {'off' if args.no_system else 'on'}; runs created {args.wave} at a time)")
    for label, item in (("idle", report.idle), (f"after {args.first}", report.first), (f"after {args.total}", report.total)):
        print(item.line(label))
    print(f"  tree growth {args.first}→{args.total}: {report.growth_mb:+.1f} MB, "
          f"{report.growth_kb_per_case:+.1f} kB per waiting case (bound {args.bound_mb:g} MB)")
    print(f"  most child processes while a wave started: {report.peak_children}; "
          f"left once all were suspended: {len(report.total.children)}")
    print(f"  open 'approve' steps in the register: {report.open_steps}; wall {report.seconds:.0f} s")
    ok = report.growth_mb <= args.bound_mb and len(report.total.children) == 0 and report.open_steps == args.total
    print(f"  {'OK' if ok else 'NOT OK'}: memory does not grow with waiting cases, no process per waiting case")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
