"""Helpers of the end-to-end tests: a processes folder, ``aftercare serve`` in a subprocess, waits on cases.

Every test gets its own register (``AFTERCARE_DATABASE_URL`` = a SQLite file in its tmp
dir), its own mail sink (``AFTERCARE_SMTP_URL``) and the session's Prefect server. Tests
that serve made-up processes give them names no other test serves, so a run one test
leaves behind is never taken up by the ``serve`` of another.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.register import CaseRecord, Register
from tests.fixtures import prefect_ui
from tests.fixtures.prefect_server import PrefectServer, ServedProcess, serve_subprocess
from tests.fixtures.smtp import SmtpSink

REPO = Path(__file__).resolve().parents[2]
PROCESSES = REPO / "processes"
AFTERCARE = Path(sys.executable).with_name("aftercare")
CORE_PROCESSES = ("issue-resolution", "risk-response", "improvement-cycle", "quality-improvement", "knowledge-capture")
SYSTEM_DEPLOYMENTS = ("aftercare-timer/aftercare-timer", "aftercare-housekeeping/aftercare-housekeeping")
SERVING_LINE = b"Your deployments are being served"
SCREENSHOTS = Path(os.environ.get("AFTERCARE_E2E_SCREENSHOTS", "/tmp/aftercare-e2e"))


def timing(name: str, seconds: float) -> None:
    """Print a timing line (``pytest -s`` shows them)."""
    print(f"[timing] {name}: {seconds:.1f} s", flush=True)


def copy_processes(folder: Path, names: Sequence[str]) -> Path:
    """A processes folder with some of the shipped definitions and the shipped team file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*names, "team"):
        shutil.copy(PROCESSES / f"{name}.yaml", folder / f"{name}.yaml")
    return folder


@dataclass
class Aftercare:
    """What a test needs around one ``aftercare serve``: its folder, environment and register."""

    server: PrefectServer
    folder: Path
    env: dict[str, str]
    register: Register
    processes: tuple[str, ...]
    logs: list[Path] = field(default_factory=list)

    @property
    def deployments(self) -> list[str]:
        return [f"{process}/{process}" for process in self.processes]

    @contextlib.contextmanager
    def serve(self, *, timeout: float = 120.0) -> Iterator[ServedProcess]:
        """``aftercare serve FOLDER`` in its own process group; yields once it polls for runs."""
        started = time.monotonic()
        with serve_subprocess(
            self.server,
            [str(AFTERCARE), "serve", str(self.folder)],
            [*self.deployments, *SYSTEM_DEPLOYMENTS],
            cwd=self.folder.parent,
            extra_env=self.env,
            timeout=timeout,
        ) as served:
            self.logs.append(served.log_path)
            # A deployment of the same name may exist from an earlier serve: wait for this one.
            wait_until(lambda: SERVING_LINE in served.log_path.read_bytes() or served.process.poll() is not None,
                       timeout, "serve to start polling", served.log_tail)
            if served.process.poll() is not None:
                raise AssertionError(f"aftercare serve exited with {served.process.returncode}:\n{served.log_tail()}")
            timing("aftercare serve until it polls", time.monotonic() - started)
            yield served

    def start(self, process: str, parameters: dict[str, Any]) -> uuid.UUID:
        """Create a run of a process's deployment through the API (the UI's "Run" does the same)."""
        with self.server.client() as client:
            deployment = client.read_deployment_by_name(f"{process}/{process}")
            run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        return run.id

    def case_of(self, run_id: uuid.UUID, timeout: float = 60.0) -> CaseRecord:
        """The case a run opened (waits for the run to open it)."""
        found: list[CaseRecord] = []

        def opened() -> bool:
            record = self.register.case_for_run(str(run_id))
            if record is not None:
                found.append(record)
            return record is not None

        wait_until(opened, timeout, f"run {run_id} to open its case", self.log_tail)
        return found[-1]

    def wait_waiting_at(self, run_id: uuid.UUID, case_key: str, step_id: str, visit: int = 1, timeout: float = 90.0) -> Any:
        """Wait until the run is suspended for an answer to ``step_id`` and the register says so."""
        from aftercare.flows.resume_form import pause_prefix

        prefix = pause_prefix(step_id, visit)

        def waiting(run: Any) -> bool:
            state = run.state
            return (
                state is not None
                and state.name == "Suspended"
                and (state.state_details.pause_key or "").startswith(prefix)
                and bool(state.state_details.run_input_keyset)
            )

        try:
            run = self.server.wait_for_flow_run(run_id, waiting, timeout=timeout, what=f"suspension at {step_id}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- serve log ---\n{self.log_tail()}") from None
        assert self.register.case(case_key).current_step == step_id
        return run

    def wait_final(self, run_id: uuid.UUID, timeout: float = 90.0) -> Any:
        try:
            return self.server.wait_for_final(run_id, timeout=timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- serve log ---\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 80) -> str:
        if not self.logs:
            return "(no serve log)"
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def forget_runs(self) -> None:
        """Delete the unfinished runs of this test's processes so no later serve takes them up."""
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with self.server.client() as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=list(self.processes))), limit=200)
            for run in runs:
                if run.state is None or not run.state.is_final():
                    with contextlib.suppress(Exception):
                        client.delete_flow_run(run.id)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, detail: Callable[[], str] | None = None) -> None:
    """Poll ``condition`` every 0.2 s; fail after ``timeout`` seconds saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s" + (f"\n{detail()}" if detail else ""))
        time.sleep(0.2)


def kill_group(process: Any) -> None:
    """``kill -9`` a process group (serve and the flow-run processes it started) and wait until it is gone."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    def gone() -> bool:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, 10, f"process group {process.pid} to die")


@pytest.fixture
def aftercare_env(prefect_server: PrefectServer, smtp_sink: SmtpSink, tmp_path: Path) -> Iterator[Callable[..., Aftercare]]:
    """Make an :class:`Aftercare` for a folder; its unfinished runs are deleted after the test."""
    made: list[Aftercare] = []

    def make(folder: Path, processes: Sequence[str], **extra_env: str) -> Aftercare:
        url = f"sqlite:///{tmp_path / 'register.db'}"
        env = {
            "AFTERCARE_DATABASE_URL": url,
            "AFTERCARE_PROCESSES": str(folder),
            "AFTERCARE_SMTP_URL": smtp_sink.url,
            **extra_env,
        }
        aftercare = Aftercare(prefect_server, folder, env, Register(url), tuple(processes))
        made.append(aftercare)
        return aftercare

    yield make
    for aftercare in made:
        aftercare.forget_runs()
        aftercare.register.close()


def write_team(folder: Path, hook_url: str | None = None) -> None:
    """A small team file; ``hook.bot`` is reached only through a JSON webhook (Apprise ``json://``)."""
    hook = f'    hook.bot: {{name: Hook Bot, notify: ["{hook_url}"]}}\n' if hook_url else ""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(
        "team:\n"
        "  people:\n"
        "    li.na: {name: 李娜 Li Na, email: li.na@example.com, locale: zh}\n"
        "    liu.yang: {name: Liu Yang, email: liu.yang@example.com}\n"
        "    huang.lei: {name: 黄磊 Huang Lei, email: huang.lei@customer.example.com, locale: zh}\n"
        f"{hook}"
        "  roles:\n"
        "    support-lead: [li.na]\n"
        "    engineering: [liu.yang]\n",
        encoding="utf-8",
    )


CODE_IN_MAIL = re.compile(r"(?:Your answer code|您的答复码)[:：]\s*([A-Z0-9]{4}-[A-Z0-9]{4})")


def answer_codes(sink: SmtpSink, case_key: str, address: str) -> list[str]:
    """The answer codes the waiting mails of a case carried to one address, oldest first."""
    return [
        found.group(1)
        for mail in list(sink.messages)
        if case_key in mail.subject and address in mail.rcpt_tos and (found := CODE_IN_MAIL.search(mail.text))
    ]


def answer_code(sink: SmtpSink, case_key: str, address: str, count: int = 1, timeout: float = 60.0) -> str:
    """The code of the latest waiting mail of a case to ``address``, once ``count`` such mails came (a new code comes in a new mail)."""
    wait_until(lambda: len(answer_codes(sink, case_key, address)) >= count, timeout, f"{count} answer code mail(s) of {case_key} to {address}",
               lambda: "\n".join(f"{m.rcpt_tos} {m.subject}" for m in sink.messages))
    return answer_codes(sink, case_key, address)[-1]


def submit_classic(aftercare: Aftercare, run_id: uuid.UUID, dialog: Any) -> None:
    """Submit, and submit again once if the server refused it while the run still waits.

    On a loaded machine the Prefect server's SQLite can answer the resume with "database
    is locked" (a 500: the UI shows "Oops. Something went wrong." and keeps the dialog
    open); a person would press Submit again, and so does this.
    """
    with aftercare.server.client() as client:
        key = client.read_flow_run(run_id).state.state_details.pause_key
    try:
        prefect_ui.submit(dialog)
        return
    except AssertionError:
        with aftercare.server.client() as client:
            state = client.read_flow_run(run_id).state
        if state is None or state.name != "Suspended" or state.state_details.pause_key != key:
            raise  # the answer went through; the dialog is stuck for another reason
        print(f"[ui] the resume of {run_id} was refused by the server; submitting again", flush=True)
    prefect_ui.submit(dialog)


def json_hook(url: str, path: str = "/hook", **options: str) -> str:
    """The Apprise ``json://`` URL of an HTTP listener (``http://127.0.0.1:PORT``)."""
    host_port = url.removeprefix("http://")
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"json://{host_port}{path}" + (f"?{query}" if query else "")


def wait_delivered(register: Register, keys: Sequence[str], channel_prefix: str = "", timeout: float = 60.0) -> list[Any]:
    """The outbox messages of some cases once all of them (on channels starting so) are delivered.

    The case's own run delivers at once; a timer or housekeeping run, which may claim a
    message first, delivers it a moment later.
    """
    from aftercare.engine.register import MESSAGE_DELIVERED

    found: list[Any] = []

    def delivered() -> bool:
        found[:] = [m for key in keys for m in register.messages(case_key=key) if m.channel.startswith(channel_prefix)]
        return all(m.status == MESSAGE_DELIVERED for m in found)

    wait_until(delivered, timeout, "delivery of every message",
               lambda: "\n".join(f"{m.idempotency_key} {m.status} {m.last_error}" for m in found))
    return found
