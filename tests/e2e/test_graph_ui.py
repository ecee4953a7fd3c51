"""Issue #17 on a real Prefect server with ``aftercare serve``: the process diagram in the Prefect UI.

A served case waits on a customer's approval while engineering's, beside it, is answered:
the case's markdown artifact carries its process as a Mermaid block, and the UI Prefect
opens by default (/v2) draws it, the waiting step in the ``waiting`` class (amber) and the
steps done in ``done`` (green). The deployment's Description tab draws the diagram too; the
classic UI shows that block as code. A case whose customer rejects ends in the branch's
``end`` and its artifact marks the other review withdrawn.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.graph import graph, mermaid_id
from aftercare.engine.library import load_library
from aftercare.flows.artifacts import artifact_key
from tests.e2e.conftest import AFTERCARE, SCREENSHOTS, Aftercare, wait_until, write_team

pytestmark = [pytest.mark.prefect_server, pytest.mark.timeout(420)]

PROCESS = "gr-change"
DEFINITION = """
process: gr-change
title: 变更 Change reviewed "side by side"
version: 1
key: GRC
description: A change reviewed by engineering and the customer at once.
inputs:
  title: {type: string}
steps:
  - id: log-request
    type: record
    set: {status: reviewing}
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
    title: "客户审批 Customer review of {{ inputs.title }}"
    assignee: person:huang.lei
    on_reject: rejected
    next: reviewed
  - id: reviewed
    type: join
    next: approved
  - {id: approved, type: end, outcome: approved}
  - {id: rejected, type: end, outcome: rejected}
"""
AMBER, GREEN = "rgb(254, 243, 199)", "rgb(220, 252, 231)"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "processes"
    write_team(folder)
    (folder / f"{PROCESS}.yaml").write_text(DEFINITION.lstrip(), encoding="utf-8")
    return folder


def _answer(aftercare: Aftercare, key: str, step: str, person: str, *extra: str) -> None:
    done = subprocess.run([str(AFTERCARE), "answer", key, step, "--as", person, *extra], env=aftercare.server.subprocess_env(aftercare.env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _both_waiting(aftercare: Aftercare, key: str) -> None:
    def waiting() -> bool:
        open_steps = {run.step_id for run in aftercare.register.step_runs(key) if run.is_open}
        return open_steps == {"tech-review", "customer-review"}

    wait_until(waiting, 90, f"{key} to wait on both reviews", aftercare.log_tail)


def _artifact_with(aftercare: Aftercare, run_id: uuid.UUID, key: str, *lines: str, timeout: float = 90.0) -> Any:
    """The latest version of the case's artifact once its Mermaid block has every line given."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    found: list[Any] = []

    def has_them() -> bool:
        with aftercare.server.client() as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(key)])),
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            )
        if not artifacts:
            return False
        latest = max(artifacts, key=lambda artifact: artifact.created)
        found[:] = [latest]
        text = latest.data or ""
        return "```mermaid\nflowchart TD\n" in text and all(line in text.splitlines() for line in lines)

    wait_until(has_them, timeout, f"an artifact of {key} with {lines}",
               lambda: (found[0].data if found else "(no artifact)") + "\n--- serve log ---\n" + aftercare.log_tail())
    return found[0]


def _classes(page: Any) -> dict[str, list[str]]:
    """The rendered Mermaid nodes by class: ``{"waiting": ["n_step rgb(...)"]}``, each node id with its shape's computed fill."""
    return page.evaluate("""() => {
      const out = {};
      for (const node of document.querySelectorAll('svg g.node')) {
        const shape = node.querySelector('rect, polygon, path');
        const fill = shape ? getComputedStyle(shape).fill : '';
        const step = (node.id.match(/flowchart-(n_[A-Za-z0-9_]+)-[0-9]+$/) || [, node.id])[1];
        for (const name of node.classList) (out[name] = out[name] || []).push(step + ' ' + fill);
      }
      return out;
    }""")


@pytest.mark.browser
def test_the_case_artifact_draws_the_process_with_the_waiting_step_marked(
    aftercare_env: Callable[..., Aftercare], browser_page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    folder = _folder(tmp_path)
    spec = load_library(folder).get(PROCESS).spec
    aftercare = aftercare_env(folder, (PROCESS,))
    with aftercare.serve():
        run_id = aftercare.start(PROCESS, {"title": "Upgrade to 4.2"})
        key = aftercare.case_of(run_id).key
        _both_waiting(aftercare, key)
        _answer(aftercare, key, "tech-review", "liu.yang", "--approve")
        artifact = _artifact_with(aftercare, run_id, key, "    class n_customer_review waiting",
                                  "    class n_log_request,n_reviews,n_tech_review done")

        # -- the default UI (/v2) draws the artifact's Mermaid: an <svg>, the waiting step amber --------
        started = time.monotonic()
        browser_page.goto(f"{aftercare.server.ui_url}/v2/artifacts/artifact/{artifact.id}", wait_until="domcontentloaded")
        waiting = browser_page.locator("svg g.node.waiting")
        expect(waiting).to_have_count(1, timeout=60_000)
        expect(waiting).to_contain_text("customer-review")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_page.wait_for_load_state("networkidle")
        expect(waiting).to_be_visible(timeout=60_000)  # drawn, not still behind the loading skeleton (the page renders twice)
        browser_page.screenshot(path=str(SCREENSHOTS / "graph-case-artifact-v2.png"), full_page=True)
        classes = _classes(browser_page)
        assert [entry.split()[0] for entry in classes["waiting"]] == [mermaid_id("customer-review")]
        assert classes["waiting"][0].endswith(AMBER)
        done = {entry.split()[0]: entry for entry in classes["done"]}
        assert set(done) == {mermaid_id(step) for step in ("log-request", "reviews", "tech-review")}
        assert all(entry.endswith(GREEN) for entry in done.values())
        assert len(browser_page.locator("svg g.node").all()) == len(graph(spec).nodes)
        assert browser_page.get_by_text("Failed to render mermaid diagram").count() == 0
        assert browser_page.get_by_text(key).count() >= 1  # the timeline is there too
        print(f"[timing] artifact page drawn: {time.monotonic() - started:.1f} s")

        # -- the deployment's Description tab (/v2) draws the same diagram, nothing marked ---------------
        with aftercare.server.client() as client:
            deployment = client.read_deployment_by_name(f"{PROCESS}/{PROCESS}")
        assert deployment.description.startswith("A change reviewed by engineering and the customer at once.\n\n```mermaid\nflowchart TD\n")
        browser_page.goto(f"{aftercare.server.ui_url}/v2/deployments/deployment/{deployment.id}", wait_until="domcontentloaded")
        browser_page.get_by_role("tab", name="Description").click()
        expect(browser_page.locator("svg g.node")).to_have_count(len(graph(spec).nodes), timeout=60_000)
        browser_page.wait_for_load_state("networkidle")
        expect(browser_page.locator("svg g.node").first).to_be_visible(timeout=60_000)
        assert browser_page.locator("svg g.node.waiting").count() == 0
        expect(browser_page.get_by_text("A change reviewed by engineering and the customer at once.")).to_be_visible()
        browser_page.screenshot(path=str(SCREENSHOTS / "graph-deployment-description-v2.png"), full_page=True)

        # -- the classic UI shows the block as code: readable, not drawn ------------------------------
        browser_page.goto(f"{aftercare.server.ui_url}/deployments/deployment/{deployment.id}", wait_until="domcontentloaded")
        browser_page.get_by_text("Description", exact=True).first.click()
        expect(browser_page.get_by_text("A change reviewed by engineering and the customer at once.").first).to_be_visible()
        expect(browser_page.locator("code", has_text="flowchart TD").first).to_be_visible()
        browser_page.screenshot(path=str(SCREENSHOTS / "graph-deployment-description-classic.png"), full_page=True)

        # -- the customer rejects a second case: its end is reached in the branch, the other review withdrawn --
        second = aftercare.start(PROCESS, {"title": "Downgrade"})
        second_key = aftercare.case_of(second).key
        _both_waiting(aftercare, second_key)
        _answer(aftercare, second_key, "customer-review", "huang.lei", "--reject", "--comment", "not now")
        assert aftercare.wait_final(second).state_name == "Completed"
        _artifact_with(aftercare, second, second_key, "    class n_tech_review withdrawn",
                       "    class n_log_request,n_reviews,n_customer_review,n_rejected done")
    assert aftercare.register.case(second_key).outcome == "rejected"
