"""Smoke tests of the real-server fixtures and of the Prefect 3.8.8 behaviour Aftercare uses.

Each test states one fact the Prefect layer builds on (see tests/fixtures/README.md).
Timings are printed (``pytest -s``) and attached as ``record_property`` entries.
"""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.fixtures import prefect_ui
from tests.fixtures.http_listener import HttpListener
from tests.fixtures.prefect_server import PrefectServer, ServedProcess, serve_subprocess
from tests.fixtures.smtp import SmtpSink

DEMO_FLOWS = Path(__file__).parent / "fixtures" / "demo_flows.py"
DEMO_DEPLOYMENTS = ["suspend-demo/demo", "model-param/demo", "typed-params/demo", "dynamic-process/demo"]
SCREENSHOT_DIR = Path(os.environ.get("AFTERCARE_SCREENSHOT_DIR", "/tmp/aftercare-screenshots"))


def _timing(record_property: Any, name: str, seconds: float) -> None:
    record_property(name, round(seconds, 2))
    print(f"[timing] {name}: {seconds:.2f} s")


@pytest.fixture(scope="module")
def served_demo(prefect_server: PrefectServer) -> Iterator[ServedProcess]:
    """tests/fixtures/demo_flows.py served by ``serve(*deployments)`` in a subprocess."""
    started = time.monotonic()
    with serve_subprocess(
        prefect_server, [str(DEMO_FLOWS)], DEMO_DEPLOYMENTS, cwd=DEMO_FLOWS.parent
    ) as served:
        print(f"[timing] serve registered {len(DEMO_DEPLOYMENTS)} deployments: {time.monotonic() - started:.2f} s")
        yield served


# -- the server fixture itself ------------------------------------------------------------


@pytest.mark.prefect_server
def test_prefect_server_is_active_in_this_process_and_its_threads(
    prefect_server: PrefectServer, record_property: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    _timing(record_property, "prefect_server_startup", prefect_server.startup_seconds)
    with urllib.request.urlopen(f"{prefect_server.api_url}/health") as response:
        assert json.load(response) is True
    # The UI must call this server, not the default 127.0.0.1:4200.
    with urllib.request.urlopen(f"{prefect_server.ui_url}/ui-settings") as response:
        assert json.load(response)["api_url"] == prefect_server.api_url

    assert os.environ["PREFECT_API_URL"] == prefect_server.api_url
    assert PREFECT_API_URL.value() == prefect_server.api_url
    seen: list[str] = []

    def in_a_thread() -> None:  # a new thread has no contextvars: it reads the global context
        seen.append(PREFECT_API_URL.value())
        with get_client(sync_client=True) as client:
            seen.append(str(client.api_url))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(30)
    assert seen == [prefect_server.api_url, prefect_server.api_url + "/"]


@pytest.mark.prefect_server
def test_prefect_server_on_postgresql(
    prefect_server: PrefectServer, prefect_server_pg: PrefectServer, record_property: Any
) -> None:
    import psycopg
    from prefect import flow
    from prefect.exceptions import ObjectNotFound
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL

    _timing(record_property, "prefect_server_pg_startup", prefect_server_pg.startup_seconds)
    assert prefect_server_pg.database_url.startswith("postgresql+asyncpg://postgres@127.0.0.1:5432/prefect_test_")
    assert PREFECT_API_URL.value() == prefect_server_pg.api_url  # the function-scoped one wins

    @flow(name="pg-trivial")
    def trivial() -> str:
        return str(flow_run.id)

    run_id = uuid.UUID(trivial())
    with prefect_server_pg.client() as client:
        assert client.read_flow_run(run_id).state_name == "Completed"
    with prefect_server.client() as client, pytest.raises(ObjectNotFound):
        client.read_flow_run(run_id)
    database = prefect_server_pg.database_url.rsplit("/", 1)[1]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as conn:
        row = conn.execute("SELECT count(*) FROM flow_run WHERE id = %s", (run_id,)).fetchone()
    assert row == (1,)


# -- a. served flow, suspend_flow_run, answered through the API -------------------------------


@pytest.mark.prefect_server
def test_served_suspend_is_resumed_through_the_api(
    prefect_server: PrefectServer, served_demo: ServedProcess, tmp_path: Path, record_property: Any
) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import NotPausedError
    from prefect.flow_runs import resume_flow_run

    trace = tmp_path / "trace.txt"
    started = time.monotonic()
    run = run_deployment(
        "suspend-demo/demo",
        parameters={"title": "Leak in 3F", "trace_path": str(trace)},
        timeout=0,  # create the run and return at once
    )
    assert (run.state_type.value, run.state_name) == ("SCHEDULED", "Scheduled")

    suspended = prefect_server.wait_for_state_name(run.id, "Suspended", timeout=30)
    _timing(record_property, "created_to_suspended", time.monotonic() - started)
    state = suspended.state
    assert state is not None and state.type.value == "PAUSED"
    assert state.state_details.pause_reschedule is True  # suspend = pause with reschedule
    keyset = state.state_details.run_input_keyset
    assert keyset == {
        "description": "suspended-1-description",
        "response": "suspended-1-response",
        "schema": "suspended-1-schema",
    }
    with prefect_server.client() as client:
        description = json.loads(client.read_flow_run_input(run.id, keyset["description"]))
        schema = json.loads(client.read_flow_run_input(run.id, keyset["schema"]))
    assert description == "**Case** ISS-0001: Leak in 3F\n\nPlease *review*."
    assert schema["required"] == ["owner"]  # decision got a default from with_initial_data
    assert schema["properties"]["decision"] == {
        "default": "approve", "enum": ["approve", "reject"], "title": "Decision", "type": "string"
    }
    # Field(title=...) equal to the Enum class name is dropped by pydantic; the UI labels it "Owner".
    assert schema["properties"]["owner"] == {"$ref": "#/definitions/Owner"}
    assert schema["definitions"]["Owner"]["enum"] == ["li.na"]
    assert trace.read_text().count("start ") == 1

    # The server validates run_input against the saved schema; a refused answer leaves the
    # run Suspended, so a wrong answer can be retried.
    with pytest.raises(RuntimeError, match="Validation failed for field 'decision'. Failure reason: 'maybe' is not one of"):
        resume_flow_run(run.id, run_input={"decision": "maybe", "owner": "li.na"})
    with pytest.raises(RuntimeError, match="'owner' is a required property"):
        resume_flow_run(run.id)
    with prefect_server.client() as client:
        assert client.read_flow_run(run.id).state_name == "Suspended"

    answered = time.monotonic()
    resume_flow_run(
        run.id,
        run_input={"decision": "reject", "priority": "P1", "owner": "li.na", "comment": "中文 ok", "urgent": True},
    )
    final = prefect_server.wait_for_final(run.id, timeout=30)
    _timing(record_property, "resume_to_completed", time.monotonic() - answered)
    assert final.state_name == "Completed", final.state
    assert final.run_count == 1  # the re-execution after a suspend is not counted as a retry
    expected = {"decision": "reject", "priority": "P1", "owner": "li.na", "comment": "中文 ok", "hours": 0, "urgent": True}
    assert final.state.result() == expected
    with prefect_server.client() as client:
        history = [(s.type.value, s.name) for s in client.read_flow_run_states(run.id)]
    assert history == [
        ("SCHEDULED", "Scheduled"),
        ("PENDING", "Pending"),
        ("PENDING", "Submitting"),
        ("RUNNING", "Running"),
        ("PAUSED", "Suspended"),
        ("SCHEDULED", "Resuming"),
        ("PENDING", "Pending"),
        ("PENDING", "Submitting"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    with pytest.raises(NotPausedError):
        resume_flow_run(run.id, run_input=expected)
    lines = trace.read_text().splitlines()
    # Re-executed from the top: two starts, one answer (the second suspend call returned it).
    assert [line.split(" ", 1)[0] for line in lines] == ["start", "start", "answered"]
    assert json.loads(lines[2].split(" ", 1)[1]) == expected


# -- b. the same, answered in the Prefect UI in headless Chromium ----------------------------


@pytest.mark.prefect_server
@pytest.mark.browser
def test_served_suspend_is_answered_in_the_prefect_ui(
    prefect_server: PrefectServer,
    served_demo: ServedProcess,
    browser_page: Any,
    tmp_path: Path,
    record_property: Any,
) -> None:
    from playwright.sync_api import expect
    from prefect.deployments import run_deployment

    trace = tmp_path / "trace.txt"
    # Playwright's sync API keeps an asyncio loop running in this thread, so Prefect's
    # dual sync/async functions would return coroutines: force them with _sync=True.
    run = run_deployment(
        "suspend-demo/demo",
        parameters={"title": "Browser case", "trace_path": str(trace)},
        timeout=0,
        _sync=True,
    )
    prefect_server.wait_for_state_name(run.id, "Suspended", timeout=30)

    started = time.monotonic()
    dialog = prefect_ui.open_resume_form(browser_page, prefect_server.ui_url, run.id)
    expect(dialog).to_contain_text("ISS-0001: Browser case")  # the Markdown description
    expect(dialog.locator(".markdown-renderer__text--strong", has_text="Case")).to_be_visible()
    expect(prefect_ui.form_field(dialog, "Decision").locator("button.p-select-button__control")).to_have_text("approve")
    prefect_ui.choose_option(dialog, "Decision", "reject")
    prefect_ui.choose_option(dialog, "Priority", "P1")
    prefect_ui.choose_option(dialog, "Owner", "li.na")  # one-option Enum, required
    prefect_ui.fill_text(dialog, "Comment", "漏水已修复 fixed")
    prefect_ui.fill_number(dialog, "Hours", 3)
    prefect_ui.set_switch(dialog, "Urgent", True)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser_page.screenshot(path=str(SCREENSHOT_DIR / "resume-form.png"))
    prefect_ui.submit(dialog)
    _timing(record_property, "ui_open_fill_submit", time.monotonic() - started)

    final = prefect_server.wait_for_final(run.id, timeout=30)
    assert final.state_name == "Completed", final.state
    lines = trace.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["start", "start", "answered"]
    assert json.loads(lines[2].split(" ", 1)[1]) == {
        "decision": "reject", "priority": "P1", "owner": "li.na", "comment": "漏水已修复 fixed", "hours": 3,
        "urgent": True,
    }


# -- c. foreground pause_flow_run in a thread, answered by resume_flow_run -------------------

_FOREGROUND_RUN_IDS: dict[str, str] = {}


def _pause_demo_flow() -> Any:
    from prefect import flow
    from prefect.flow_runs import pause_flow_run
    from prefect.input import RunInput
    from prefect.runtime import flow_run

    class Approval(RunInput):
        decision: Literal["approve", "reject"]
        comment: str = ""

    @flow(name="pause-demo")
    def pause_demo(token: str) -> dict[str, Any]:
        _FOREGROUND_RUN_IDS[token] = str(flow_run.id)
        answer = pause_flow_run(
            wait_for_input=Approval.with_initial_data(description="Approve?", decision="approve"),
            timeout=60,
            poll_interval=1,
        )
        return answer.model_dump()

    return pause_demo


@pytest.mark.prefect_server
def test_foreground_pause_is_resumed_from_another_thread(
    prefect_server: PrefectServer, record_property: Any
) -> None:
    from prefect.flow_runs import resume_flow_run

    pause_demo = _pause_demo_flow()
    token = uuid.uuid4().hex
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(pause_demo(token))
        except BaseException as exc:  # surfaced by the assertion below
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while token not in _FOREGROUND_RUN_IDS:
        assert time.monotonic() < deadline and thread.is_alive(), results
        time.sleep(0.05)
    run_id = _FOREGROUND_RUN_IDS[token]
    paused = prefect_server.wait_for_state_name(run_id, "Paused", timeout=30)
    assert paused.state is not None and paused.state.type.value == "PAUSED"
    assert paused.state.state_details.pause_reschedule is False  # the process keeps waiting
    assert paused.state.state_details.run_input_keyset == {
        "description": "paused-1-description", "response": "paused-1-response", "schema": "paused-1-schema"
    }

    answered = time.monotonic()
    resume_flow_run(run_id, run_input={"decision": "reject", "comment": "no"})
    thread.join(30)
    _timing(record_property, "foreground_resume_to_return", time.monotonic() - answered)
    assert results == [{"decision": "reject", "comment": "no"}]
    assert prefect_server.wait_for_final(run_id).state_name == "Completed"
    with prefect_server.client() as client:
        history = [(s.type.value, s.name) for s in client.read_flow_run_states(uuid.UUID(run_id))]
    # resume_flow_run sets Running directly; the waiting process notices within poll_interval.
    assert history == [
        ("PENDING", "Pending"), ("RUNNING", "Running"), ("PAUSED", "Paused"), ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]


# -- d. embedded (ephemeral) mode: no PREFECT_API_URL -----------------------------------------


def _ephemeral_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # Prefect's own 20 s for the temporary server to start is too short on a busy 2-core machine.
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"})
    return env


_EPHEMERAL_TRIVIAL = """
import json, time
t0 = time.monotonic()
from prefect import flow
t1 = time.monotonic()
@flow
def trivial(x: int) -> int:
    return x + 1
first = trivial(1)
t2 = time.monotonic()
second = trivial(2)
t3 = time.monotonic()
print("RESULT " + json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2, "results": [first, second]}), flush=True)
"""


@pytest.mark.prefect_server
def test_ephemeral_mode_runs_a_flow_without_a_server(tmp_path: Path, record_property: Any) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _EPHEMERAL_TRIVIAL],
        env=_ephemeral_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["results"] == [2, 3]
    assert "Starting temporary server on http://127.0.0.1:" in proc.stderr + proc.stdout
    _timing(record_property, "ephemeral_process_wall", wall)
    _timing(record_property, "ephemeral_first_flow", result["first"])
    _timing(record_property, "ephemeral_second_flow", result["second"])


_EPHEMERAL_PAUSE = """
import json
from prefect import flow
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

class Ok(RunInput):
    ok: bool

@flow
def pauser() -> bool:
    print("FLOW_RUN_ID " + str(flow_run.id), flush=True)
    return pause_flow_run(wait_for_input=Ok, timeout=90, poll_interval=1).ok

print("RESULT " + json.dumps(pauser()), flush=True)
"""

_EPHEMERAL_RESUME = """
import sys
from prefect.flow_runs import resume_flow_run
try:
    resume_flow_run(sys.argv[1], run_input={"ok": True})
    print("RESUMED", flush=True)
except Exception as exc:
    print("ERROR " + type(exc).__name__, flush=True)
"""


@pytest.mark.prefect_server
def test_ephemeral_pause_is_resumable_from_a_process_sharing_its_prefect_home(
    tmp_path: Path, record_property: Any
) -> None:
    home = tmp_path / "home"
    pauser = subprocess.Popen(
        [sys.executable, "-c", _EPHEMERAL_PAUSE],
        env=_ephemeral_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert pauser.stdout is not None
        line = pauser.stdout.readline()  # blocks until the flow is running
        assert line.startswith("FLOW_RUN_ID "), line
        run_id = line.split()[1]
        started = time.monotonic()
        # A process with the same PREFECT_HOME starts a second ephemeral server on the same
        # SQLite file, and so can resume the run.
        same = subprocess.run(
            [sys.executable, "-c", _EPHEMERAL_RESUME, run_id],
            env=_ephemeral_env(home),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert same.stdout.strip() == "RESUMED", same.stdout + same.stderr[-2000:]
        _timing(record_property, "ephemeral_resume_process", time.monotonic() - started)
        out, _ = pauser.communicate(timeout=60)
        assert "RESULT true" in out
    finally:
        if pauser.poll() is None:
            pauser.kill()


# -- e. parameter schemas of served deployments ------------------------------------------------


@pytest.mark.prefect_server
def test_parameter_schema_of_a_model_parameter_vs_typed_parameters(
    prefect_server: PrefectServer, served_demo: ServedProcess
) -> None:
    with prefect_server.client() as client:
        model = client.read_deployment_by_name("model-param/demo").parameter_openapi_schema
        typed = client.read_deployment_by_name("typed-params/demo").parameter_openapi_schema
        dynamic = client.read_deployment_by_name("dynamic-process/demo").parameter_openapi_schema

    # One pydantic model parameter: one property, a $ref into "definitions" (not "$defs").
    assert model["properties"] == {"inputs": {"$ref": "#/definitions/IssueInputs", "position": 0, "title": "inputs"}}
    assert model["required"] == ["inputs"]
    issue = model["definitions"]["IssueInputs"]
    assert issue["description"] == "Inputs of issue-resolution."
    assert issue["required"] == ["title", "reporter"]
    assert issue["properties"]["title"] == {"description": "Short summary", "title": "Title", "type": "string"}
    assert issue["properties"]["severity"] == {
        "default": "medium", "description": "How bad", "enum": ["low", "medium", "high", "critical"],
        "title": "Severity", "type": "string",
    }
    assert issue["properties"]["reporter"] == {"$ref": "#/definitions/Owner", "description": "A person"}
    assert issue["properties"]["due"]["anyOf"] == [{"format": "date", "type": "string"}, {"type": "null"}]
    assert model["definitions"]["Owner"] == {"enum": ["li.na"], "title": "Owner", "type": "string"}

    # Separate parameters: titles are the raw names, "position" orders them, descriptions
    # come from the Google-style docstring, a Literal is an inline enum, an Enum a $ref.
    assert typed["required"] == ["title"]
    props = typed["properties"]
    assert props["title"] == {"description": "Short summary", "position": 0, "title": "title", "type": "string"}
    assert props["severity"] == {
        "default": "medium", "description": "How bad it is", "enum": ["low", "medium", "high", "critical"],
        "position": 1, "title": "severity", "type": "string",
    }
    assert props["level"] == {"$ref": "#/definitions/Severity", "default": "medium", "position": 2, "title": "level"}
    assert props["reporter"] == {"$ref": "#/definitions/Owner", "default": "li.na", "position": 3, "title": "reporter"}
    assert props["details"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "position": 4, "title": "details"
    }
    assert props["urgent"] == {"default": False, "position": 5, "title": "urgent", "type": "boolean"}
    assert typed["definitions"]["Severity"]["enum"] == ["low", "medium", "high"]

    # A flow built at import time with a __signature__ from a model looks like typed params.
    assert dynamic["required"] == ["title"]
    assert dynamic["properties"] == {
        "title": {"description": "Short summary", "position": 0, "title": "title", "type": "string"},
        "severity": {
            "default": "medium", "description": "How bad", "enum": ["low", "medium", "high", "critical"],
            "position": 1, "title": "severity", "type": "string",
        },
    }


@pytest.mark.prefect_server
def test_server_validates_parameters_against_the_schema_and_dynamic_flow_runs(
    prefect_server: PrefectServer, served_demo: ServedProcess
) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError

    with pytest.raises(PrefectHTTPStatusError) as refused:
        run_deployment("dynamic-process/demo", parameters={"title": "x", "severity": "bogus"}, timeout=0)
    assert refused.value.response.status_code == 409
    assert "'bogus' is not one of ['low', 'medium', 'high', 'critical']" in refused.value.response.text

    run = run_deployment("dynamic-process/demo", parameters={"title": "Leak"}, timeout=0)
    final = prefect_server.wait_for_final(run.id, timeout=30)
    assert final.state_name == "Completed", final.state
    assert final.state.result() == {"title": "Leak", "severity": "medium"}


# -- SMTP and HTTP sinks ---------------------------------------------------------------------


def _mail(subject: str, text: str, html: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "aftercare@example.com"
    msg["To"] = "li.na@example.com"
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def test_smtp_sink_decodes_utf8_and_survives_an_outage(smtp_sink: SmtpSink) -> None:
    assert smtp_sink.url == f"smtp://127.0.0.1:{smtp_sink.port}"
    with smtplib.SMTP("127.0.0.1", smtp_sink.port, timeout=10) as smtp:
        smtp.send_message(_mail("问题 ISS-0001 已解决", "您好，\n问题已解决。\n", "<p>问题<b>已解决</b></p>"))
    [mail] = smtp_sink.wait_for(1)
    assert mail.subject == "问题 ISS-0001 已解决"
    assert mail.text == "您好，\n问题已解决。\n"
    assert mail.html.strip() == "<p>问题<b>已解决</b></p>"
    assert mail.rcpt_tos == ["li.na@example.com"]
    assert mail.mail_from == "aftercare@example.com"

    port = smtp_sink.port
    with smtp_sink.outage():
        assert not smtp_sink.accepts_connections()
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP("127.0.0.1", port, timeout=5)
    assert smtp_sink.port == port and smtp_sink.accepts_connections()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(_mail("after the outage", "back"))
    assert [m.subject for m in smtp_sink.wait_for(2)] == ["问题 ISS-0001 已解决", "after the outage"]

    smtp_sink.reply = "451 4.3.0 try again later"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.send_message(_mail("refused", "no"))
    assert refused.value.smtp_code == 451 and smtp_sink.refused == 1 and len(smtp_sink.messages) == 2


def test_http_listener_records_json_and_answers_as_told(http_listener: HttpListener) -> None:
    def post(body: dict[str, Any]) -> int:
        request = urllib.request.Request(
            f"{http_listener.url}/hook?x=1",
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json", "X-Token": "t"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    http_listener.queue_statuses(500)
    assert post({"text": "第一"}) == 500
    assert post({"text": "第二"}) == 200
    http_listener.status = 503
    assert post({"text": "third"}) == 503
    requests = http_listener.wait_for(3)
    assert [(r.method, r.path, r.json, r.status) for r in requests] == [
        ("POST", "/hook?x=1", {"text": "第一"}, 500),
        ("POST", "/hook?x=1", {"text": "第二"}, 200),
        ("POST", "/hook?x=1", {"text": "third"}, 503),
    ]
    assert requests[0].headers["x-token"] == "t"
