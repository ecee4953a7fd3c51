"""A Prefect markdown artifact per case: its timeline, updated as the case moves."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact

from aftercare.engine.case import CaseState
from aftercare.engine.register import Register


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


def publish(register: Register, case: CaseState, links: dict[str, str], waiting: str | None = None) -> None:
    """Create or update the case's artifact (a new version under the same key)."""
    create_markdown_artifact(
        markdown=timeline_markdown(register, case, links, waiting),
        key=artifact_key(case.key),
        description=f"Timeline of {case.key}",
    )
