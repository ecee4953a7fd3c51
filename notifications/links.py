"""How a message tells people to answer: the Prefect UI link of a run and the ``aftercare answer`` line."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from aftercare.engine.spec import ApprovalStep, ChecklistStep, FieldSpec, HumanStepBase

EMBEDDED_UI_URL = "http://127.0.0.1:4200"
"""Where Prefect's embedded server serves its UI when nothing else is configured."""


def ui_url() -> str:
    """The Prefect UI's base URL: ``PREFECT_UI_URL``, else ``PREFECT_API_URL`` without ``/api``, else the embedded one.

    Read from the environment rather than Prefect's settings so that this package
    does not import Prefect (a deployment can always set ``PREFECT_UI_URL``).
    """
    configured = os.environ.get("PREFECT_UI_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    api = os.environ.get("PREFECT_API_URL", "").strip().rstrip("/")
    if api:
        return api[: -len("/api")] if api.endswith("/api") else api
    return EMBEDDED_UI_URL


def run_url(flow_run_id: str | None, base: str | None = None) -> str | None:
    """The Prefect UI page of a flow run (where its "Resume" form is), or None without a run."""
    if not flow_run_id:
        return None
    return f"{(base or ui_url()).rstrip('/')}/runs/flow-run/{flow_run_id}"


def _placeholder(name: str, field: FieldSpec) -> str:
    if field.type == "choice" and field.choices:
        value = "|".join(field.choices)
    elif field.type == "person":
        value = "PERSON"
    elif field.type == "boolean":
        value = "true|false"
    elif field.type in ("integer", "number"):
        value = "NUMBER"
    elif field.type == "date":
        value = "YYYY-MM-DD"
    elif field.type == "datetime":
        value = "YYYY-MM-DDTHH:MM"
    else:
        value = '"..."'
    item = f"{name}={value}"
    return f"[{item}]" if field.optional else item


def answer_command(case_key: str, step: HumanStepBase, people: Sequence[str]) -> str:
    """The command line that answers a human step, with placeholders for what the person fills in.

    ``aftercare answer ISS-0001 triage --as li.na --approve|--reject --comment "..." priority=P1|P2``

    Args:
        case_key: the case.
        step: the human step.
        people: who the line is for: one person, or several (a role's channel) shown as ``a|b``.
    """
    who = "|".join(people) if people else "PERSON"
    parts = ["aftercare", "answer", shlex.quote(case_key), shlex.quote(step.id), "--as", who]
    if isinstance(step, ApprovalStep):
        parts.append("--approve|--reject")
    parts.append('--comment "..."')
    if isinstance(step, ChecklistStep):
        parts.extend(f"{item.id}=pass|fail" for item in step.items)
    parts.extend(_placeholder(name, field) for name, field in step.form.items())
    return " ".join(parts)
