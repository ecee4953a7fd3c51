"""Issue #4: a served issue-resolution case answered step by step in the Prefect UI (headless Chromium).

``aftercare serve`` serves the four core processes (and knowledge-capture, which
issue-resolution starts) against a real Prefect server; the case is started through the
API; triage, resolve and verify are answered in each step's Resume form.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CORE_PROCESSES, SCREENSHOTS, Aftercare, answer_code, copy_processes, submit_classic, timing, wait_delivered
from tests.fixtures import prefect_ui
from tests.fixtures.smtp import SmtpSink

TITLE = "Login fails after the upgrade"
TRIAGE_COMMENT = "已确认：升级后会话缓存失效，分配给刘洋处理"
RESOLVE_COMMENT = "Hotfix deployed at 14:00"
VERIFY_COMMENT = "验证通过，可以关闭"


def _answer_in_browser(page: Any, aftercare: Aftercare, run_id: uuid.UUID, shot: str, fill: Callable[[Any], None]) -> str:
    """Open the run's page, click Resume, fill the form, screenshot it, Submit; returns the form's description text."""
    started = time.monotonic()
    dialog = prefect_ui.open_resume_form(page, aftercare.server.ui_url, run_id)
    description = dialog.locator("article.markdown-renderer").first.inner_text()
    fill(dialog)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"))
    submit_classic(aftercare, run_id, dialog)
    timing(f"browser answer {shot}", time.monotonic() - started)
    return description


@pytest.mark.prefect_server
@pytest.mark.browser
@pytest.mark.timeout(300)
def test_issue_resolution_answered_in_the_prefect_ui(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    from aftercare.flows.artifacts import artifact_key

    test_started = time.monotonic()
    aftercare = aftercare_env(copy_processes(tmp_path / "processes", CORE_PROCESSES), CORE_PROCESSES)
    register = aftercare.register
    with aftercare.serve():
        started = time.monotonic()
        run_id = aftercare.start(
            "issue-resolution",
            {"title": TITLE, "details": "用户升级后无法登录", "severity": "high", "reporter": "huang.lei", "source": "customer"},
        )
        case = aftercare.case_of(run_id)
        key = case.key
        aftercare.wait_waiting_at(run_id, key, "triage")
        timing("created -> waiting at triage", time.monotonic() - started)

        # -- triage: the support lead approves with a priority and an owner ---------------
        def triage(dialog: Any) -> None:
            prefect_ui.choose_option(dialog, "Answering as", "li.na")
            prefect_ui.fill_code(dialog, answer_code(smtp_sink, key, "li.na@example.com"))  # from her waiting mail
            prefect_ui.choose_option(dialog, "Decision", "approve")
            prefect_ui.choose_option(dialog, "Priority", "P2")
            prefect_ui.choose_option(dialog, "Owner", "liu.yang")
            prefect_ui.fill_text(dialog, "Comment", TRIAGE_COMMENT)

        description = _answer_in_browser(browser_page, aftercare, run_id, "issue-triage-form", triage)
        # The form carries the case context (flows/run_input.describe).
        assert f"{key} · Triage {key}: {TITLE}" in description
        assert "Severity high, reported by huang.lei" in description
        assert "issue-resolution v1" in description
        assert "li.na" in description  # who may answer
        aftercare.wait_waiting_at(run_id, key, "resolve")

        # -- resolve: the owner the triage named fills the form ---------------------------
        def resolve(dialog: Any) -> None:
            prefect_ui.choose_option(dialog, "Answering as", "liu.yang")
            prefect_ui.fill_code(dialog, answer_code(smtp_sink, key, "liu.yang@example.com"))
            prefect_ui.fill_text(dialog, "Root cause", "Session cache keyed by the old schema")
            prefect_ui.fill_text(dialog, "Fix", "Flush the cache on upgrade")
            prefect_ui.set_switch(dialog, "Worth a kb entry", False)
            prefect_ui.fill_text(dialog, "Comment", RESOLVE_COMMENT)

        description = _answer_in_browser(browser_page, aftercare, run_id, "issue-resolve-form", resolve)
        assert f"{key} · Resolve {key}: {TITLE}" in description
        assert "triage" in description and "li.na" in description  # earlier answers are shown
        aftercare.wait_waiting_at(run_id, key, "verify")

        # -- verify: the reporter approves ------------------------------------------------
        def verify(dialog: Any) -> None:
            prefect_ui.choose_option(dialog, "Answering as", "huang.lei")
            prefect_ui.fill_code(dialog, answer_code(smtp_sink, key, "huang.lei@customer.example.com"))
            prefect_ui.choose_option(dialog, "Decision", "approve")
            prefect_ui.fill_text(dialog, "Comment", VERIFY_COMMENT)

        description = _answer_in_browser(browser_page, aftercare, run_id, "issue-verify-form", verify)
        assert f"{key} · Verify the fix of {key}" in description
        final = aftercare.wait_final(run_id)
        timing("created -> completed (three answers in the browser)", time.monotonic() - started)

    # -- the Prefect side: state, name, tags, a task per step, the case artifact -----------
    assert final.state_name == "Completed"
    assert final.name == f"{key} · {TITLE}"
    assert {"process:issue-resolution", "version:1"} <= set(final.tags)
    with aftercare.server.client() as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        # Attached to this run: other tests' registers on the session's server have an ISS-0001 too.
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(key)])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        )
    task_names = Counter(task.name for task in task_runs)
    assert all(task.state_name == "Completed" for task in task_runs), [(t.name, t.state_name) for t in task_runs]

    # -- the register: the outcome, each step once, each answer as given in the browser ----
    record = register.case(key)
    assert (record.status, record.outcome) == ("closed", "resolved")
    assert record.flow_run_id == str(run_id)
    steps = register.step_runs(key)
    path = [step.step_id for step in steps]
    assert path == ["acknowledge", "triage", "route", "alert-urgent", "resolve", "tell-reporter", "verify", "log", "kb-needed", "resolved"]
    assert len({(step.step_id, step.visit) for step in steps}) == len(steps)
    assert all(step.status == "done" for step in steps)

    answers = {step: register.answers(key, step) for step in ("triage", "resolve", "verify")}
    assert [(a.person, a.decision, a.comment) for a in answers["triage"]] == [("li.na", "approve", TRIAGE_COMMENT)]
    assert answers["triage"][0].fields["priority"] == "P2"
    assert answers["triage"][0].fields["owner"] == "liu.yang"
    assert answers["triage"][0].fields["category"] == "defect"  # the form's default
    assert [(a.person, a.comment) for a in answers["resolve"]] == [("liu.yang", RESOLVE_COMMENT)]
    assert answers["resolve"][0].fields == {
        "root_cause": "Session cache keyed by the old schema",
        "fix": "Flush the cache on upgrade",
        "worth_a_kb_entry": False,
    }
    assert [(a.person, a.decision, a.comment) for a in answers["verify"]] == [("huang.lei", "approve", VERIFY_COMMENT)]

    # Every step is a task run named after it, once: automatic steps "<step> #1", each
    # answer "<step> #1: <person> <decision>" (replays take the register's result instead).
    human = {"triage": "li.na approve", "resolve": "liu.yang submit", "verify": "huang.lei approve"}
    expected = Counter(f"{step.step_id} #{step.visit}" + (f": {human[step.step_id]}" if step.step_id in human else "") for step in steps)
    assert task_names == expected, f"task runs {sorted(task_names)} != steps {sorted(expected)}"

    # The case's markdown artifact, its latest version showing the outcome.
    assert artifacts, f"no artifact {artifact_key(key)}"
    assert {artifact.type for artifact in artifacts} == {"markdown"}
    latest = max(artifacts, key=lambda artifact: artifact.created)
    assert "Outcome:** resolved" in str(latest.data) and key in str(latest.data)

    # -- mail: every outbox message delivered, each arrived exactly once --------------------
    messages = wait_delivered(register, [key])
    emails = [m for m in messages if m.channel.startswith("email:")]
    assert len({m.idempotency_key for m in messages}) == len(messages)
    mails = smtp_sink.wait_for(len(emails), timeout=30)
    time.sleep(1)  # nothing more may arrive
    mails = list(smtp_sink.messages)
    assert len(mails) == len(emails), [m.subject for m in mails]
    assert len({m.message["Message-ID"] for m in mails}) == len(mails)
    waiting = {m.step_id: m for m in emails if "/waiting/" in m.idempotency_key}
    assert set(waiting) == {"triage", "resolve", "verify"}
    for step_id, person in (("triage", "li.na"), ("resolve", "liu.yang"), ("verify", "huang.lei")):
        message = waiting[step_id]
        arrived = [mail for mail in mails if mail.subject == message.subject]
        assert len(arrived) == 1, f"waiting mail of {step_id} arrived {len(arrived)} times"
        assert arrived[0].rcpt_tos == [message.channel.removeprefix("email:")]
        assert message.recipient == f"person:{person}"
    timing("whole UI test", time.monotonic() - test_started)
