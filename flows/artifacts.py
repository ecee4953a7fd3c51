"""A Prefect markdown artifact per case: its process diagram with the steps marked, and its timeline, updated as the case moves."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aftercare.engine.case import CaseState
from aftercare.engine.errors import AftercareError
from aftercare.engine.graph import mermaid
from aftercare.engine.library import definition_of_case
from aftercare.engine.register import CASE_COMMENT, OPEN_STEP_STATUSES, STEP_DONE, STEP_WAITING, STEP_WITHDRAWN, Register, StepRunRecord
from aftercare.engine.spec import ProcessSpec, StartStep
from aftercare.engine.waiting import parse_row

from . import ui_updates


def artifact_key(case_key: str) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes."""
    return "case-" + re.sub(r"[^a-z0-9-]", "-", case_key.lower())


def timeline_markdown(register: Register, case: CaseState, links: dict[str, str], waiting: str | None = None) -> str:
    """The case's timeline as Markdown: status, steps with answers, messages."""
    timeline = register.timeline(case.key)
    record = timeline.case
    lines = [
        f"# {record.key} · {record.title}",
        "",
        f"**Process:** {record.process} v{record.version} · **Status:** {record.status}"
        + (f" · **Outcome:** {record.outcome}" if record.outcome else ""),
        "",
    ]
    if waiting:
        lines += [f"**Waiting:** {waiting}", ""]
    if links.get("run"):
        lines += [f"[Open the flow run]({links['run']})", ""]
    comments = [event for event in timeline.events if event.event == CASE_COMMENT]
    if comments:
        lines += ["## Comments", ""]
        lines += [f"- {c.at:%Y-%m-%d %H:%M} **{c.actor}**: {(c.detail or '').replace(chr(10), ' ')}" for c in comments]
        lines.append("")
    lines += diagram_markdown(register, record.process, record.definition_hash, timeline.steps)
    lines += ["| when (UTC) | what | step | detail |", "|---|---|---|---|"]
    for entry in timeline.entries:
        detail = entry.summary.replace("|", "\\|").replace("\n", " ")[:300]
        step = f"{entry.step_id} #{entry.visit}" if entry.step_id else ""
        lines.append(f"| {entry.at:%Y-%m-%d %H:%M:%S} | {entry.kind} | {step} | {detail} |")
    return "\n".join(lines)


LEGEND = "Steps: **done** green · **waiting** amber (thick border) · **running** blue · **withdrawn** grey, dashed"


def diagram_markdown(register: Register, process: str, definition_hash: str, runs: Iterable[StepRunRecord]) -> list[str]:
    """The case's process as a Mermaid block, its steps marked (the default Prefect UI draws it); empty if the definition is gone."""
    try:
        spec = definition_of_case(None, process, definition_hash, register.stored_definition).spec
    except AftercareError:  # the definition is gone: a timeline without its diagram beats no timeline
        return []
    return ["```mermaid", mermaid(spec, step_marks(runs, spec)).rstrip("\n"), "```", "", LEGEND, ""]


def step_marks(runs: Iterable[StepRunRecord], spec: ProcessSpec | None = None) -> dict[str, str]:
    """Each step's state in a case, from its latest visit (a ``for_each`` step's instance rows count as the step).

    ``waiting``: a row of the visit waits on people, a timer or linked cases; ``current``: an
    automatic step running, or one that failed (where the case stopped); ``withdrawn``: every
    row withdrawn; ``done``: finished.
    """
    latest: dict[str, tuple[int, list[StepRunRecord]]] = {}
    for run in runs:
        step_id, _ = parse_row(run.step_id)
        visit, rows = latest.get(step_id, (0, []))
        if run.visit > visit:
            latest[step_id] = (run.visit, [run])
        elif run.visit == visit:
            rows.append(run)
    waits_for_cases = {step.id for step in spec.steps if isinstance(step, StartStep) and step.wait is not None} if spec else set()
    marks = {}
    for step_id, (_, rows) in latest.items():
        open_rows = [row for row in rows if row.status in OPEN_STEP_STATUSES]
        if any(row.status == STEP_WAITING or row.wait_kind is not None for row in open_rows) or (open_rows and step_id in waits_for_cases):
            marks[step_id] = "waiting"
        elif open_rows or any(row.status not in (STEP_DONE, STEP_WITHDRAWN) for row in rows):
            marks[step_id] = "current"
        elif all(row.status == STEP_WITHDRAWN for row in rows):
            marks[step_id] = "withdrawn"
        else:
            marks[step_id] = "done"
    return marks


def publish(register: Register, case: CaseState, links: dict[str, str], flow_run_id: Any, waiting: str | None = None) -> None:
    """Create or update the case's artifact on its flow run (a new version under the same key).

    Held until the run waits or ends, then sent in the background (``ui_updates``), with
    the timeline read from the register as it is then.
    """
    from prefect.client.schemas.actions import ArtifactCreate

    key = case.key

    def create(client: Any) -> None:
        client.create_artifact(
            ArtifactCreate(
                key=artifact_key(key),
                type="markdown",
                description=f"Timeline of {key}",
                data=timeline_markdown(register, case, links, waiting),
                flow_run_id=flow_run_id,
            )
        )

    ui_updates.hold(flow_run_id, f"artifact of {key}", create)


def publish_now(register: Register, key: str, api_url: str | None = None) -> bool:
    """Write a new version of a case's artifact from outside its run (``aftercare comment``); False without a run or a server."""
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    from aftercare.notifications import run_url

    record = register.case(key)
    if record.flow_run_id is None:
        return False
    url = run_url(record.flow_run_id, api_url=api_url)
    case = CaseState.from_record(record, url=url)
    markdown = timeline_markdown(register, case, {"run": url} if url else {})
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(key=artifact_key(key), type="markdown", description=f"Timeline of {key}", data=markdown, flow_run_id=record.flow_run_id)
        )
    return True
