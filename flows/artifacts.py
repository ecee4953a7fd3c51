"""A Prefect markdown artifact per case: its timeline, updated as the case moves."""

from __future__ import annotations

import re

from typing import Any

from aftercare.engine.case import CaseState
from aftercare.engine.register import Register

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
    lines += ["| when (UTC) | what | step | detail |", "|---|---|---|---|"]
    for entry in timeline.entries:
        detail = entry.summary.replace("|", "\\|").replace("\n", " ")[:300]
        step = f"{entry.step_id} #{entry.visit}" if entry.step_id else ""
        lines.append(f"| {entry.at:%Y-%m-%d %H:%M:%S} | {entry.kind} | {step} | {detail} |")
    return "\n".join(lines)


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
