"""Issue #18: attributable answers. A served case answered in the Prefect UI (/v2, headless Chromium) needs the personal
answer code of the person's waiting mail (SMTP sink): a wrong code, an answer as a person the step no longer names and five
wrong codes are refused (audited, told in the form; the fifth sends a new code); the right code is taken; the register never
holds a code in clear; ``aftercare answer`` at the operator's shell needs no code and records the OS user.
"""

from __future__ import annotations

import getpass
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AFTERCARE, SCREENSHOTS, Aftercare, answer_code, answer_codes, wait_until
from tests.fixtures import prefect_ui_v2
from tests.fixtures.smtp import SmtpSink

pytestmark = [pytest.mark.prefect_server, pytest.mark.timeout(480)]

TEAM = """\
team:
  people:
    li.na: {name: 李娜 Li Na, email: li.na@example.com, locale: zh}
    liu.yang: {name: Liu Yang, email: liu.yang@example.com}
  roles:
    reviewers: [li.na, liu.yang]
"""
DEFINITION = """\
process: cost-review
title: A cost review signed off
version: 1
key: CST
inputs:
  title: {type: string}
steps:
  - id: review
    type: approval
    title: "Cost review of {{ inputs.title }}"
    assignee: role:reviewers
    on_reject: rejected
    next: sign-off
  - id: sign-off
    type: form
    assignee: person:liu.yang
    form: {budget_code: {type: string}}
  - {id: done, type: end, outcome: approved}
  - {id: rejected, type: end, outcome: rejected}
"""
LI_NA, LIU_YANG = "li.na@example.com", "liu.yang@example.com"


def _folder(tmp_path: Path, codes: bool = True) -> Path:
    folder = tmp_path / "processes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(TEAM + ("" if codes else "  answer_codes: false\n"), encoding="utf-8")
    (folder / "cost-review.yaml").write_text(DEFINITION, encoding="utf-8")
    return folder


def _pause_key(aftercare: Aftercare, run_id: uuid.UUID) -> str:
    with aftercare.server.client() as client:
        return str(client.read_flow_run(run_id).state.state_details.pause_key)


def _answer_in_v2(page: Any, aftercare: Aftercare, run_id: uuid.UUID, person: str, code: str, shot: str) -> str:
    """Answer ``review`` in the default UI as ``person`` with ``code``; returns the form's description (its note of a refusal)."""
    dialog = prefect_ui_v2.open_resume_form(page, aftercare.server.ui_url, run_id)
    description = dialog.inner_text()
    assert dialog.locator("input[type=password]").count() == 1  # the code is a masked field
    prefect_ui_v2.choose_option(dialog, "Answering as", person)
    prefect_ui_v2.fill_code(dialog, code)
    prefect_ui_v2.choose_option(dialog, "Decision", "approve")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"codes-{shot}.png"))
    prefect_ui_v2.submit(dialog)
    return description


def _refused(aftercare: Aftercare, key: str, run_id: uuid.UUID, before: str, count: int) -> list[str]:
    """The refusals audited so far, once the run took the ``count``-th and waits again under a new pause key."""
    register = aftercare.register

    def waits_again() -> bool:
        refusals = [e for e in register.audit_events(key) if e.event == "answer.refused"]
        return len(refusals) >= count and _pause_key(aftercare, run_id) not in (before, "None")

    wait_until(waits_again, 120, f"refusal {count} of {key} and a new wait", aftercare.log_tail)
    aftercare.wait_waiting_at(run_id, key, "review")
    return [str(e.detail) for e in register.audit_events(key) if e.event == "answer.refused"]


def _resume_with_code(aftercare: Aftercare, run_id: uuid.UUID, person: str, code: str) -> None:
    with aftercare.server.client() as client:
        result = client.resume_flow_run(run_id, run_input={"answering_as": person, "answer_code": code, "decision": "approve", "comment": ""})
    assert str(getattr(result.status, "value", result.status)).upper() == "ACCEPT", result


@pytest.mark.browser
def test_answers_in_the_ui_need_the_persons_code_from_the_mail(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    aftercare = aftercare_env(_folder(tmp_path), ("cost-review",))
    with aftercare.serve():
        run_id = aftercare.start("cost-review", {"title": "Q3 cloud bill"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "review")
        li_na, liu_yang = answer_code(smtp_sink, key, LI_NA), answer_code(smtp_sink, key, LIU_YANG)
        assert li_na != liu_yang
        register = aftercare.register
        started = time.monotonic()

        # liu.yang is reassigned away while the form offers him: his right code is refused, the run keeps waiting
        register.update_step(key, "review", 1, eligible=["li.na"])
        before = _pause_key(aftercare, run_id)
        _answer_in_v2(browser_page, aftercare, run_id, "liu.yang", liu_yang, "not-named")
        refusals = _refused(aftercare, key, run_id, before, 1)
        assert refusals == [f"'liu.yang' may not answer step 'review' of {key} now: it names li.na"]

        # a wrong code: refused, and the form says why
        before = _pause_key(aftercare, run_id)
        description = _answer_in_v2(browser_page, aftercare, run_id, "li.na", "ABCD-EFGH" if li_na != "ABCD-EFGH" else "HGFE-DCBA", "wrong")
        assert f"The last answer was refused: 'liu.yang' may not answer step 'review' of {key} now" in description
        refusals = _refused(aftercare, key, run_id, before, 2)
        assert refusals[-1] == "wrong answer code for li.na (1 of 5 tries)"
        assert register.step_run(key, "review", 1).is_open  # type: ignore[union-attr]

        # four more wrong codes (through the API, as a script would try): the fifth voids the code and mails a new one
        for count in range(3, 7):
            before = _pause_key(aftercare, run_id)
            _resume_with_code(aftercare, run_id, "li.na", "WRONG-CODE")
            refusals = _refused(aftercare, key, run_id, before, count)
        assert refusals[-1] == "wrong answer code for li.na (5 wrong codes: that code is void, a new one is on its way)"
        renewed = answer_code(smtp_sink, key, LI_NA, count=2)
        assert renewed != li_na and len(answer_codes(smtp_sink, key, LI_NA)) == 2

        # the old code is void now; the new one from the mail is taken
        before = _pause_key(aftercare, run_id)
        _resume_with_code(aftercare, run_id, "li.na", li_na)
        refusals = _refused(aftercare, key, run_id, before, 7)
        assert refusals[-1] == "wrong answer code for li.na (1 of 5 tries)"
        description = _answer_in_v2(browser_page, aftercare, run_id, "li.na", renewed.lower(), "right")
        assert "wrong answer code for li.na (1 of 5 tries)" in description
        aftercare.wait_waiting_at(run_id, key, "sign-off", timeout=120)
        print(f"[timing] browser answers with codes: {time.monotonic() - started:.1f} s", flush=True)

        # the operator's shell needs no code, and the OS user is kept beside the person
        done = subprocess.run([str(AFTERCARE), "answer", key, "sign-off", "--as", "liu.yang", "budget_code=CC-7"],
                              env=aftercare.server.subprocess_env(aftercare.env), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        final = aftercare.wait_final(run_id)
    assert final.state_name == "Completed"
    assert register.case(key).outcome == "approved"
    answers = [(a.step_id, a.person, a.operator) for step in ("review", "sign-off") for a in register.answers(key, step)]
    assert answers == [("review", "li.na", None), ("sign-off", "liu.yang", getpass.getuser())]
    shown = subprocess.run([str(AFTERCARE), "show", key], env=aftercare.server.subprocess_env(aftercare.env), capture_output=True, text=True, timeout=60)
    assert "liu.yang answered sign-off #1: submit" in shown.stdout
    assert f"(at the operator's shell, as the OS user {getpass.getuser()})" in shown.stdout
    assert "answer.operator" in shown.stdout

    # the register never holds a code in clear: not in the database file, not in its WAL
    codes = answer_codes(smtp_sink, key, LI_NA) + answer_codes(smtp_sink, key, LIU_YANG)
    assert len(codes) == 4  # li.na's first and renewed code; liu.yang's for review and for sign-off
    database = tmp_path / "register.db"
    files = [path for path in (database, Path(f"{database}-wal")) if path.exists()]
    assert database in files
    for path in files:
        data = path.read_bytes()
        for code in codes:
            for form in (code, code.replace("-", "")):
                assert form.encode() not in data, f"{form} in {path.name}"
    stored = [m.body for m in register.messages(case_key=key) if "/waiting" in m.idempotency_key]
    assert stored and all("[[answer-code:" in body for body in stored)


def test_a_team_that_turns_codes_off_answers_without_them(aftercare_env: Callable[..., Aftercare], smtp_sink: SmtpSink, tmp_path: Path) -> None:
    aftercare = aftercare_env(_folder(tmp_path, codes=False), ("cost-review",))
    with aftercare.serve():
        run_id = aftercare.start("cost-review", {"title": "Q4 cloud bill"})
        key = aftercare.case_of(run_id).key
        aftercare.wait_waiting_at(run_id, key, "review")
        with aftercare.server.client() as client:
            result = client.resume_flow_run(run_id, run_input={"answering_as": "li.na", "decision": "approve", "comment": ""})
        assert str(getattr(result.status, "value", result.status)).upper() == "ACCEPT", result
        aftercare.wait_waiting_at(run_id, key, "sign-off", timeout=120)
        smtp_sink.wait_for(3, timeout=60)
    assert answer_codes(smtp_sink, key, LI_NA) == [] and answer_codes(smtp_sink, key, LIU_YANG) == []
    assert [(a.person, a.operator) for a in aftercare.register.answers(key, "review")] == [("li.na", None)]
