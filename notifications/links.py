"""How a message tells people to answer: the Prefect UI link of a run and the ``aftercare answer`` line."""

from __future__ import annotations

import shlex
from urllib.parse import urlencode
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


def form_url(flow_run_id: str | None, *, base: str | None = None) -> str | None:
    """A run's page in the UI Prefect opens by default (``BASE/v2/runs/flow-run/ID``), where its form's Resume is in the menu."""
    root = (base or settings.ui_url() or "").rstrip("/")
    if not flow_run_id or not root:
        return None
    return f"{root}/v2/runs/flow-run/{flow_run_id}"


WAITING_STATES = ("Paused", "Suspended")
"""The run states of a form that can be answered now (a foreground pause, a served suspension)."""


def tasks_url(person: str | None, *, base: str | None = None) -> str | None:
    """The runs view of the Prefect UI (``/v2``) filtered to one person's waiting work: their ``waiting:PERSON`` runs.

    ``BASE/v2/runs?tags=waiting:li.na&state=Paused,Suspended``: the runs list takes
    comma-separated ``tags`` and ``state`` names in its URL (checked in Chromium).

    Args:
        person: a person id; None gives None.
        base: the UI's base address (``links["ui"]``); by default :func:`aftercare.engine.settings.ui_url`.
    """
    root = (base or settings.ui_url() or "").rstrip("/")
    if not person or not root:
        return None
    query = urlencode({"tags": f"waiting:{person}", "state": ",".join(WAITING_STATES)}, safe=":,")
    return f"{root}/v2/runs?{query}"


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
