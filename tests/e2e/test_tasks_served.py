"""Issue #18 on a real Prefect server with ``aftercare serve``: people's waiting work.

Three cases wait on people at once: a case of two parallel forms for liu.yang and one for
li.na, a race of two warehouses (an any-join) and a lone approval. ``aftercare tasks --for``
lists exactly each person's waiting units (the two parallel ones of one case each on their
own), with the /v2 page of the run that holds each form. The runs that hold forms carry
``waiting:PERSON`` tags kept exact through an answer, a withdrawal and a hand-on; the link in
li.na's waiting mail opens the /v2 runs view that lists exactly her waiting runs (headless
Chromium); the lone approval handed on offers the new person in its Resume form, which
takes her answer, while the old person's CLI answer is refused.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AFTERCARE, SCREENSHOTS, Aftercare, answer_code, wait_until, write_team
from tests.e2e.test_parallel_served import DEFINITIONS as PARALLEL
from tests.e2e.test_parallel_served import _answer, _forms
from tests.fixtures import prefect_ui_v2
from tests.fixtures.smtp import SmtpSink

pytestmark = [pytest.mark.prefect_server, pytest.mark.timeout(600)]

PROCESSES = ("pair", "par-first", "solo")
DEFINITIONS = {
    "pair": """
process: pair
title: Two checks for one engineer, one for the support lead
version: 1
key: PR
inputs:
  title: {type: string}
steps:
  - id: checks
    type: parallel
    branches: [check-a, check-b, check-c]
  - {id: check-a, type: form, title: "Check A of {{ inputs.title }}", assignee: person:liu.yang, next: checked}
  - {id: check-b, type: form, title: "Check B of {{ inputs.title }}", assignee: person:liu.yang, next: checked}
  - {id: check-c, type: form, title: "Check C of {{ inputs.title }}", assignee: person:li.na, next: checked}
  - {id: checked, type: join}
""",
    "par-first": PARALLEL["par-first"],
    "solo": """
process: solo
title: One approval
version: 1
key: SO
inputs:
  title: {type: string}
steps:
  - id: approve
    type: approval
    title: "Approve {{ inputs.title }}"
    assignee: person:liu.yang
    due: 30d
    escalate_to: person:huang.lei
    on_reject: rejected
  - {id: approved, type: end, outcome: approved}
  - {id: rejected, type: end, outcome: rejected}
""",
}


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "processes"
    write_team(folder)
    for name, text in DEFINITIONS.items():
        (folder / f"{name}.yaml").write_text(text.lstrip(), encoding="utf-8")
    return folder


def _cli(aftercare: Aftercare, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AFTERCARE), *args], env=aftercare.server.subprocess_env(aftercare.env), capture_output=True, text=True, timeout=120)


def _tags(aftercare: Aftercare, run_id: Any) -> list[str]:
    with aftercare.server.client() as client:
        return sorted(tag for tag in client.read_flow_run(uuid.UUID(str(run_id))).tags if tag.startswith("waiting:"))


def _expect_tags(aftercare: Aftercare, expected: dict[str, list[str]], names: dict[str, Any]) -> None:
    """Wait until every named run's ``waiting:`` tags are as expected (the writers run in other processes)."""
    seen: dict[str, list[str]] = {}

    def right() -> bool:
        seen.clear()
        seen.update({name: _tags(aftercare, names[name]) for name in expected})
        return seen == expected

    wait_until(right, 60, f"waiting tags {expected}", lambda: f"seen {seen}\n{aftercare.log_tail(60)}")


def _latest_artifact(aftercare: Aftercare, key: str, run_id: uuid.UUID) -> str:
    """The text of the latest version of a case's artifact."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from aftercare.flows.artifacts import artifact_key

    with aftercare.server.client() as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(key)])))
    mine = [a for a in artifacts if a.flow_run_id == run_id]
    assert mine, f"no artifact of {key}"
    return str(max(mine, key=lambda artifact: artifact.created).data or "")


@pytest.mark.browser
def test_tasks_tags_links_and_a_hand_on(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    aftercare = aftercare_env(_folder(tmp_path), PROCESSES)
    ui = aftercare.server.ui_url
    with aftercare.serve():
        pair_run = aftercare.start("pair", {"title": "the pumps"})
        race_run = aftercare.start("par-first", {"title": "Fan for PLC-3"})
        solo_run = aftercare.start("solo", {"title": "the budget"})
        pair, race, solo = (aftercare.case_of(run).key for run in (pair_run, race_run, solo_run))
        assert (pair, race, solo) == ("PR-0001", "PFW-0001", "SO-0001")
        pair_forms = _forms(aftercare, pair_run, 3)
        race_forms = _forms(aftercare, race_run, 2)
        aftercare.wait_waiting_at(solo_run, solo, "approve")
        runs = {
            "check-a": pair_forms["Check A of the pumps"].id, "check-b": pair_forms["Check B of the pumps"].id,
            "check-c": pair_forms["Check C of the pumps"].id, "pair": pair_run,
            "warehouse-a": race_forms["warehouse-a"].id, "warehouse-b": race_forms["warehouse-b"].id, "race": race_run, "solo": solo_run,
        }

        # aftercare tasks --for: exactly liu.yang's waiting units, the two parallel ones of one case each on their own
        done = _cli(aftercare, "tasks", "--for", "liu.yang", "--json")
        assert done.returncode == 0, done.stderr
        listed = sorted(json.loads(done.stdout), key=lambda task: (task["case"], task["step"]))
        solo_due = aftercare.register.step_run(solo, "approve", 1).due_at
        assert solo_due is not None and listed[-1]["due_text"] == f"{solo_due:%Y-%m-%d %H:%M} UTC"
        assert [(t["case"], t["step"], t["title"], t["who"], t["due"], t["overdue"], t["link"]) for t in listed] == [
            (race, "warehouse-a", "warehouse-a", ["liu.yang"], None, False, f"{ui}/v2/runs/flow-run/{runs['warehouse-a']}"),
            (pair, "check-a", "Check A of the pumps", ["liu.yang"], None, False, f"{ui}/v2/runs/flow-run/{runs['check-a']}"),
            (pair, "check-b", "Check B of the pumps", ["liu.yang"], None, False, f"{ui}/v2/runs/flow-run/{runs['check-b']}"),
            (solo, "approve", "Approve the budget", ["liu.yang"], solo_due.isoformat(), False, f"{ui}/v2/runs/flow-run/{solo_run}"),
        ]
        done = _cli(aftercare, "tasks", "--for", "li.na")
        assert done.returncode == 0, done.stderr
        assert sorted(line.split()[:2] for line in done.stdout.splitlines() if not line.startswith(" ")) == [[race, "warehouse-b"], [pair, "check-c"]]

        # the runs that hold the forms name their people; a case's run that holds none, nobody
        _expect_tags(aftercare, {
            "check-a": ["waiting:liu.yang"], "check-b": ["waiting:liu.yang"], "check-c": ["waiting:li.na"], "pair": [],
            "warehouse-a": ["waiting:liu.yang"], "warehouse-b": ["waiting:li.na"], "race": [], "solo": ["waiting:liu.yang"],
        }, runs)

        # li.na's waiting mail links to the /v2 runs view of exactly her waiting runs
        def hers(mail: Any) -> bool:
            return mail.rcpt_tos == ["li.na@example.com"] and pair in mail.subject and "Check C of the pumps" in mail.subject

        wait_until(lambda: any(hers(m) for m in smtp_sink.messages), 60, "li.na's waiting mail")
        mail = next(m for m in smtp_sink.messages if hers(m))
        links = re.findall(r"https?://\S+", mail.text)
        tasks_link = next(link for link in links if "/v2/runs?" in link)
        assert tasks_link == f"{ui}/v2/runs?tags=waiting:li.na&state=Paused,Suspended"
        browser_page.goto(tasks_link, wait_until="networkidle")
        expect(browser_page.get_by_text(f"{pair} · Check C of the pumps").first).to_be_visible(timeout=30_000)
        expect(browser_page.get_by_text(f"{race} · warehouse-b").first).to_be_visible(timeout=30_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_page.screenshot(path=str(SCREENSHOTS / "tasks-waiting-li-na-v2.png"), full_page=True)
        expect(browser_page.get_by_text("2 Flow runs")).to_be_visible(timeout=30_000)
        body = browser_page.locator("body").inner_text()
        for other in ("Check A of the pumps", "Check B of the pumps", "warehouse-a", "Approve the budget"):
            assert other not in body, other

        # an answer: the form run that took it no longer waits for anybody
        _answer(aftercare, pair, "check-a", "liu.yang", "--comment", "done")
        aftercare.server.wait_for_final(runs["check-a"], timeout=90)
        # a withdrawal: li.na's warehouse wins, the other warehouse's form is withdrawn
        _answer(aftercare, race, "warehouse-b", "li.na", "bin=B-07")
        aftercare.wait_final(race_run)
        # a comment: in the case's artifact at once, and in the next messages about the case
        said = _cli(aftercare, "comment", solo, "--as", "huang.lei", "-m", "Budget line 7 is wrong")
        assert (said.returncode, said.stdout) == (0, f"{solo}: comment from huang.lei kept\n"), said.stderr
        artifact = _latest_artifact(aftercare, solo, solo_run)
        assert "## Comments" in artifact and "**huang.lei**: Budget line 7 is wrong" in artifact
        # a hand-on: liu.yang gives the lone approval to li.na
        done = _cli(aftercare, "reassign", solo, "approve", "--to", "li.na", "--as", "liu.yang", "--reason", "on leave", "--json")
        assert done.returncode == 0, done.stderr
        handed = json.loads(done.stdout)
        assert (handed["from"], handed["to"], handed["form_rebuilt"], handed["problems"]) == (["liu.yang"], ["li.na"], True, [])
        _expect_tags(aftercare, {
            "check-a": [], "check-b": ["waiting:liu.yang"], "check-c": ["waiting:li.na"], "pair": [],
            "warehouse-a": [], "warehouse-b": [], "race": [], "solo": ["waiting:li.na"],
        }, runs)
        done = _cli(aftercare, "tasks", "--for", "li.na", "--json")
        assert sorted((t["case"], t["step"]) for t in json.loads(done.stdout)) == [(pair, "check-c"), (solo, "approve")]

        # the old person's CLI answer is refused; the form in the browser offers the new person, and takes her answer
        refused = _cli(aftercare, "answer", solo, "approve", "--as", "liu.yang", "--approve")
        assert refused.returncode == 1 and "'liu.yang' may not answer step 'approve'" in refused.stderr, refused.stderr
        dialog = prefect_ui_v2.open_resume_form(browser_page, ui, solo_run)
        expect(dialog).to_contain_text("Handed on to li.na", timeout=30_000)  # the description comes after the form's schema
        dialog.get_by_role("button", name=re.compile(r"^Select Answering as$")).click()
        options = [option.inner_text().strip() for option in browser_page.get_by_role("option").all()]
        assert options == ["li.na"]
        browser_page.get_by_role("option", name="li.na", exact=True).click()
        prefect_ui_v2.fill_code(dialog, answer_code(smtp_sink, solo, "li.na@example.com"))  # from the hand-on's waiting mail
        prefect_ui_v2.choose_option(dialog, "Decision", "approve")
        prefect_ui_v2.fill_text(dialog, "Comment", "ok for li.na")
        browser_page.screenshot(path=str(SCREENSHOTS / "tasks-handed-on-form-v2.png"))
        prefect_ui_v2.submit(dialog)
        final = aftercare.wait_final(solo_run)
        _expect_tags(aftercare, {"solo": []}, runs)
    assert final.state_name == "Completed"
    register = aftercare.register
    assert register.case(solo).outcome == "approved"
    assert [(a.person, a.decision, a.comment) for a in register.answers(solo, "approve")] == [("li.na", "approve", "ok for li.na")]
    assert register.case(race).outcome == "completed"
    statuses = {run.step_id: run.status for run in register.step_runs(race)}
    assert (statuses["warehouse-a"], statuses["warehouse-b"]) == ("withdrawn", "done")
    told = sorted((m.recipient, m.idempotency_key.split("/")[3].split("-")[0]) for m in register.messages(case_key=solo))
    assert [entry for entry in told if entry[1] in ("handed", "reassigned")] == [("person:li.na", "reassigned"), ("person:liu.yang", "handed")]
    show = _cli(aftercare, "show", solo).stdout
    assert "step.reassigned by liu.yang: approve #1 from liu.yang to li.na: on leave" in show
    assert "case.comment by huang.lei: Budget line 7 is wrong" in show
    handed_mail = next(m for m in smtp_sink.messages if m.subject == f"[{solo}] Handed on: Approve the budget")
    assert handed_mail.rcpt_tos == ["liu.yang@example.com"]
    assert "handed it on to 李娜 Li Na" in handed_mail.text and "Why: on leave" in handed_mail.text
    assert "huang.lei: Budget line 7 is wrong" in handed_mail.text  # the comment reached the next message
