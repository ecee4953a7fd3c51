"""Issue #16 on a real Prefect server with ``aftercare serve``: steps that wait side by side.

Each human step of a parallel branch waits in a form run of its own ("PAR-0001 ·
tech-review"), suspended, so no process is held while people think; the case's run is
suspended too until a form run decides its step. Answered in the Prefect UI (headless
Chromium) in the reverse order of the branches; an any-join withdraws the slower branch,
whose form run ends Cancelled (its Resume form is gone); a kill -9 of ``serve`` while three
steps wait loses nothing.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.register import Register
from tests.e2e.conftest import AFTERCARE, SCREENSHOTS, Aftercare, answer_code, kill_group, submit_classic, timing, wait_delivered, wait_until, write_team
from tests.fixtures import prefect_ui, prefect_ui_v2
from tests.fixtures.smtp import SmtpSink

pytestmark = [pytest.mark.prefect_server, pytest.mark.timeout(420)]

PROCESSES = ("par-reviews", "par-first", "par-three", "par-scores", "par-round", "par-finding")
DEFINITIONS = {
    "par-reviews": """
process: par-reviews
title: Change reviewed by engineering and the customer
version: 1
key: PAR
inputs:
  title: {type: string}
steps:
  - id: reviews
    type: parallel
    branches: [tech-review, customer-review]
  - id: tech-review
    type: approval
    title: "Engineering review of {{ inputs.title }}"
    assignee: role:engineering
    on_reject: rejected
    next: reviewed
  - id: customer-review
    type: approval
    title: "Customer review of {{ inputs.title }}"
    assignee: person:huang.lei
    on_reject: rejected
    next: reviewed
  - id: reviewed
    type: join
    next: approved
  - {id: approved, type: end, outcome: approved}
  - {id: rejected, type: end, outcome: rejected}
""",
    "par-first": """
process: par-first
title: The first warehouse with the part wins
version: 1
key: PFW
inputs:
  title: {type: string}
steps:
  - id: search
    type: parallel
    branches: [warehouse-a, warehouse-b]
  - id: warehouse-a
    type: form
    assignee: role:engineering
    form: {bin: {type: string}}
    next: found
  - id: warehouse-b
    type: form
    assignee: person:li.na
    form: {bin: {type: string}}
    next: found
  - id: found
    type: join
    wait: any
""",
    "par-three": """
process: par-three
title: Three checks side by side
version: 1
key: PTH
inputs:
  title: {type: string}
steps:
  - id: checks
    type: parallel
    branches: [check-a, check-b, check-c]
  - {id: check-a, type: form, assignee: person:liu.yang, next: checked}
  - {id: check-b, type: form, assignee: person:li.na, next: checked}
  - {id: check-c, type: form, assignee: person:huang.lei, next: checked}
  - {id: checked, type: join}
""",
    "par-round": """
process: par-round
title: A round that waits for the issues it opened
version: 1
key: PRD
inputs:
  title: {type: string}
  failed: {type: list}
steps:
  - id: open-issues
    type: start
    process: par-finding
    for_each: "{{ inputs.failed }}"
    inputs: {title: "{{ item }}"}
    wait: all
  - id: log
    type: record
    set: {outcomes: "{{ steps['open-issues'].outcomes }}"}
""",
    "par-finding": """
process: par-finding
title: A finding fixed
version: 1
key: PFX
inputs:
  title: {type: string}
steps:
  - id: fix
    type: form
    assignee: person:liu.yang
    form: {how: {type: string}}
  - {id: fixed, type: end, outcome: fixed}
""",
    "par-scores": """
process: par-scores
title: Every stakeholder scores the project
version: 1
key: PSC
inputs:
  title: {type: string}
  stakeholders: {type: list}
steps:
  - id: score
    type: form
    for_each: "{{ inputs.stakeholders }}"
    title: "Score of {{ item }}"
    assignee: "person:{{ item }}"
    form: {score: {type: integer, minimum: 1, maximum: 5}}
  - id: log
    type: record
    set: {scores: "{{ score.instances | map(attribute='score') | list }}"}
""",
}


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "processes"
    write_team(folder)
    for name, text in DEFINITIONS.items():
        (folder / f"{name}.yaml").write_text(text.lstrip(), encoding="utf-8")
    return folder


def _forms(aftercare: Aftercare, case_run: uuid.UUID, count: int, timeout: float = 90.0) -> dict[str, Any]:
    """The case's form runs by step, once ``count`` of them are suspended with their form.

    Found by the case's run, not its key: every test's register has a ``PAR-0001``, and a
    failed test's forms may still wait on the shared Prefect server.
    """
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    found: dict[str, Any] = {}

    def ready() -> bool:
        with aftercare.server.client() as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"forms-of:{case_run}"])), limit=50)
        found.clear()
        for run in runs:
            if run.state is not None and run.state.name == "Suspended" and run.state.state_details.run_input_keyset:
                found[run.name.split(" · ", 1)[1]] = run
        return len(found) >= count

    wait_until(ready, timeout, f"{count} suspended form runs of the case run {case_run}", aftercare.log_tail)
    return found


def _answer(aftercare: Aftercare, case_key: str, step: str, person: str, *extra: str) -> None:
    done = subprocess.run([str(AFTERCARE), "answer", case_key, step, "--as", person, *extra], env=aftercare.server.subprocess_env(aftercare.env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _suspended(aftercare: Aftercare, run_id: uuid.UUID) -> None:
    aftercare.server.wait_for_flow_run(run_id, lambda run: run.state is not None and run.state.name == "Suspended", timeout=90,
                                       what="the case's run to suspend while its steps wait")


@pytest.mark.browser
def test_parallel_approvals_answered_in_the_ui_in_reverse_order(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    with aftercare.serve():
        run_id = aftercare.start("par-reviews", {"title": "Upgrade to 4.2"})
        key = aftercare.case_of(run_id).key
        forms = _forms(aftercare, run_id, 2)
        assert set(forms) == {"Engineering review of Upgrade to 4.2", "Customer review of Upgrade to 4.2"}
        _suspended(aftercare, run_id)  # no process held: the case's run and both forms are suspended
        by_step = {"customer-review": forms["Customer review of Upgrade to 4.2"], "tech-review": forms["Engineering review of Upgrade to 4.2"]}
        # the second branch first, in the UI Prefect opens by default (/v2); then the first, in the classic one
        started = time.monotonic()
        customer = by_step["customer-review"]
        dialog = prefect_ui_v2.open_resume_form(browser_page, aftercare.server.ui_url, customer.id)
        description = dialog.inner_text()
        assert key in description and "Customer review of Upgrade to 4.2" in description  # its own case context
        prefect_ui_v2.choose_option(dialog, "Answering as", "huang.lei")
        prefect_ui_v2.fill_code(dialog, answer_code(smtp_sink, key, "huang.lei@customer.example.com"))  # from his waiting mail
        prefect_ui_v2.choose_option(dialog, "Decision", "approve")
        prefect_ui_v2.fill_text(dialog, "Comment", "customer-review ok")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_page.screenshot(path=str(SCREENSHOTS / "parallel-customer-form-v2.png"))
        prefect_ui_v2.submit(dialog)
        aftercare.server.wait_for_final(customer.id, timeout=90)
        timing("browser answer customer-review (v2 UI)", time.monotonic() - started)
        assert "Resume" not in prefect_ui_v2.menu_items(browser_page, aftercare.server.ui_url, customer.id)

        started = time.monotonic()
        tech = by_step["tech-review"]
        dialog = prefect_ui.open_resume_form(browser_page, aftercare.server.ui_url, tech.id)
        description = dialog.locator("article.markdown-renderer").first.inner_text()
        assert key in description and "Engineering review of Upgrade to 4.2" in description
        assert "customer-review" not in description or "huang.lei" in description
        prefect_ui.choose_option(dialog, "Answering as", "liu.yang")
        prefect_ui.fill_code(dialog, answer_code(smtp_sink, key, "liu.yang@example.com"))
        prefect_ui.choose_option(dialog, "Decision", "approve")
        prefect_ui.fill_text(dialog, "Comment", "tech-review ok")
        browser_page.screenshot(path=str(SCREENSHOTS / "parallel-tech-form-classic.png"))
        submit_classic(aftercare, tech.id, dialog)
        aftercare.server.wait_for_final(tech.id, timeout=90)
        timing("browser answer tech-review (classic UI)", time.monotonic() - started)
        final = aftercare.wait_final(run_id)
    assert final.state_name == "Completed"
    register = aftercare.register
    assert register.case(key).outcome == "approved"
    answers = [(a.person, a.decision) for step in ("tech-review", "customer-review") for a in register.answers(key, step)]
    assert answers == [("liu.yang", "approve"), ("huang.lei", "approve")]
    runs = Counter(run.step_id for run in register.step_runs(key))
    assert all(count == 1 for count in runs.values()), runs
    messages = wait_delivered(register, [key], "email")
    waiting = Counter(m.recipient for m in messages if "/waiting/" in m.idempotency_key)
    assert waiting == {"person:liu.yang": 1, "person:huang.lei": 1}
    mails = [m for m in smtp_sink.messages if key in m.subject]
    assert Counter(m.subject for m in mails) == Counter(m.subject for m in messages)


@pytest.mark.browser
def test_an_any_join_withdraws_the_slower_branch_and_its_form(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    with aftercare.serve():
        run_id = aftercare.start("par-first", {"title": "Fan for PLC-3"})
        key = aftercare.case_of(run_id).key
        forms = _forms(aftercare, run_id, 2)
        _answer(aftercare, key, "warehouse-b", "li.na", "bin=B-07")
        final = aftercare.wait_final(run_id)
        slower = forms["warehouse-a"]
        aftercare.server.wait_for_final(slower.id, timeout=60)
        # its form is gone: in the default UI its menu has no Resume, in the classic one no Resume button
        assert "Resume" not in prefect_ui_v2.menu_items(browser_page, aftercare.server.ui_url, slower.id)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_page.screenshot(path=str(SCREENSHOTS / "parallel-withdrawn-form-v2.png"))
        browser_page.goto(f"{aftercare.server.ui_url}/runs/flow-run/{slower.id}", wait_until="domcontentloaded")
        expect(browser_page.get_by_text("Cancelled").first).to_be_visible(timeout=30_000)
        browser_page.screenshot(path=str(SCREENSHOTS / "parallel-withdrawn-form.png"))
        assert browser_page.get_by_role("button", name="Resume", exact=True).count() == 0
        refused = subprocess.run([str(AFTERCARE), "answer", key, "warehouse-a", "--as", "liu.yang", "bin=A-01"], env=aftercare.server.subprocess_env(aftercare.env),
                                 capture_output=True, text=True, timeout=60)
    assert final.state_name == "Completed"
    assert refused.returncode == 1 and "closed" in refused.stdout + refused.stderr
    register = aftercare.register
    runs = {run.step_id: run for run in register.step_runs(key)}
    assert runs["warehouse-a"].status == "withdrawn"
    assert runs["warehouse-b"].result["bin"] == "B-07"
    messages = wait_delivered(register, [key], "email")
    assert Counter(m.recipient for m in messages if "/withdrawn/" in m.idempotency_key) == {"person:liu.yang": 1}


def test_three_waiting_steps_survive_a_kill_of_serve(aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, tmp_path: Path) -> None:
    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    with aftercare.serve() as served:
        run_id = aftercare.start("par-three", {"title": "Quarterly"})
        key = aftercare.case_of(run_id).key
        _forms(aftercare, run_id, 3)
        _suspended(aftercare, run_id)
        kill_group(served.process)
    with aftercare.serve():
        for step, person in (("check-c", "huang.lei"), ("check-a", "liu.yang"), ("check-b", "li.na")):
            _answer(aftercare, key, step, person, "--comment", "done")
        final = aftercare.wait_final(run_id, timeout=120)
    assert final.state_name == "Completed"
    register: Register = aftercare.register
    assert register.case(key).outcome == "completed"
    runs = Counter(run.step_id for run in register.step_runs(key))
    assert runs == {"checks": 1, "check-a": 1, "check-b": 1, "check-c": 1, "checked": 1}
    answers = Counter(a.person for step in ("check-a", "check-b", "check-c") for a in register.answers(key, step))
    assert answers == {"huang.lei": 1, "liu.yang": 1, "li.na": 1}


@pytest.mark.browser
def test_a_parallel_case_cancelled_in_the_prefect_ui(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    from tests.e2e.test_cancel import _housekeeping

    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    with aftercare.serve():
        run_id = aftercare.start("par-reviews", {"title": "Wrong project"})
        key = aftercare.case_of(run_id).key
        forms = _forms(aftercare, run_id, 2)
        _suspended(aftercare, run_id)
        prefect_ui_v2.cancel_run(browser_page, aftercare.server.ui_url, run_id)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_page.screenshot(path=str(SCREENSHOTS / "parallel-cancelled-v2.png"))
        final = aftercare.wait_final(run_id)
        _housekeeping(aftercare)  # a suspended run has no process for a hook: the 5-minute housekeeping run notices
        for form in forms.values():
            try:
                assert aftercare.server.wait_for_final(form.id, timeout=60).state_name == "Cancelled"
            except AssertionError as error:
                raise AssertionError(f"{error}\ncase: {aftercare.register.case(key)}\n{aftercare.log_tail(150)}") from None
        register = aftercare.register
        messages = wait_delivered(register, [key], "email")
        _housekeeping(aftercare)  # again: nothing more happens
    assert final.state_name == "Cancelled"
    case = register.case(key)
    assert (case.status, case.outcome) == ("cancelled", "cancelled")
    statuses = {run.step_id: run.status for run in register.step_runs(key)}
    assert statuses == {"reviews": "done", "tech-review": "withdrawn", "customer-review": "withdrawn"}
    told = Counter(m.recipient for m in register.messages(case_key=key) if "/cancelled/" in m.idempotency_key)
    assert told == {"person:liu.yang": 1, "person:huang.lei": 1}
    assert len(messages) == len(register.messages(case_key=key))


def test_one_form_per_stakeholder_served(aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, tmp_path: Path) -> None:
    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    with aftercare.serve():
        run_id = aftercare.start("par-scores", {"title": "Project evaluation", "stakeholders": ["li.na", "huang.lei"]})
        key = aftercare.case_of(run_id).key
        forms = _forms(aftercare, run_id, 2)
        assert set(forms) == {"Score of li.na", "Score of huang.lei"}
        _answer(aftercare, key, "score", "huang.lei", "score=4")
        _answer(aftercare, key, "score", "li.na", "score=5")
        final = aftercare.wait_final(run_id)
    assert final.state_name == "Completed"
    register = aftercare.register
    assert register.case(key).fields["scores"] == [5, 4]  # item order, whatever the answering order
    result = next(run.result for run in register.step_runs(key) if run.step_id == "score")
    assert [(i["item"], i["by"], i["score"]) for i in result["instances"]] == [("li.na", "li.na", 5), ("huang.lei", "huang.lei", 4)]
    messages = wait_delivered(register, [key], "email")
    assert Counter(m.recipient for m in messages if "/waiting/" in m.idempotency_key) == {"person:li.na": 1, "person:huang.lei": 1}


def test_a_round_waits_for_the_linked_cases_it_opened(aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, tmp_path: Path) -> None:
    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    with aftercare.serve():
        run_id = aftercare.start("par-round", {"title": "Morning round", "failed": ["Disk 91 % full", "Certificate expires"]})
        key = aftercare.case_of(run_id).key
        register = aftercare.register
        children: list[Any] = []

        def opened() -> bool:
            children[:] = [c for c in register.cases() if c.parent_key == key and c.current_step == "fix"]
            return len(children) == 2

        wait_until(opened, 120, "two linked cases waiting at fix", aftercare.log_tail)
        _suspended(aftercare, run_id)  # the round's run waits, suspended, for its linked cases
        for child in sorted(children, key=lambda c: c.key, reverse=True):
            aftercare.wait_waiting_at(uuid.UUID(child.flow_run_id), child.key, "fix")
            _answer(aftercare, child.key, "fix", "liu.yang", "how=done")
        final = aftercare.wait_final(run_id, timeout=120)
    assert final.state_name == "Completed"
    round_case = register.case(key)
    assert round_case.outcome == "completed"
    assert round_case.fields["outcomes"] == ["fixed", "fixed"]
    result = next(run.result for run in register.step_runs(key) if run.step_id == "open-issues")
    assert result["cases"] == sorted(c.key for c in children)
