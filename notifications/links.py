"""How a message tells people to answer: the Prefect UI link of a run and the ``aftercare answer`` line."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from aftercare.engine import settings
from aftercare.engine.spec import ApprovalStep, ChecklistStep, FieldSpec, HumanStepBase


def run_url(flow_run_id: str | None, *, api_url: str | None = None) -> str | None:
    """The Prefect UI page of a flow run (where its "Resume" form is): the one link to a case's run.

    Args:
        flow_run_id: the run; None gives None.
        api_url: the Prefect API the caller talks to, when it knows it (the Prefect layer
            does: a profile or an embedded server); else ``PREFECT_UI_URL`` or
            ``PREFECT_API_URL`` (:func:`aftercare.engine.settings.ui_url`).

    Returns:
        The page's URL, or None when there is no run or no UI to link to.
    """
    base = settings.ui_url(api_url)
    if not flow_run_id or base is None:
        return None
    return f"{base}/runs/flow-run/{flow_run_id}"


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
