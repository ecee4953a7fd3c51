"""The Prefect UI as a task list: the ``waiting:PERSON`` tags of the runs people open to answer.

A run that holds a waiting step's form (the step's form run when it waits beside others,
else the case's own run) carries one ``waiting:li.na`` tag per person the step still waits
for, so the runs view filtered by that tag lists exactly that person's waiting work
(:func:`aftercare.notifications.links.tasks_url`). Prefect replaces a run's tags as a whole,
so this module is their one writer: :func:`sync_waiting_tags` computes every run's tags of a
case from the register (:func:`.tasks.case_waiting`) and writes those that differ. It is
called wherever the waiting set changes: a step begins waiting, an answer is taken, a step is
handed on, withdrawn or times out, the case is cancelled or closed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from uuid import UUID

from aftercare.engine.register import Register

from .forms import FORM_TAG
from .tasks import case_waiting

log = logging.getLogger(__name__)

WAITING_PREFIX = "waiting:"


def waiting_tag(person: str) -> str:
    """The tag of the runs that wait for a person: ``waiting:li.na``."""
    return f"{WAITING_PREFIX}{person}"


def with_waiting(tags: Iterable[str], people: Iterable[str]) -> list[str]:
    """A run's tags with its ``waiting:`` tags replaced by those of ``people`` (the others kept, in order)."""
    kept = [tag for tag in tags if not tag.startswith(WAITING_PREFIX)]
    return kept + sorted({waiting_tag(person) for person in people})


def desired_people(register: Register, case_key: str, case_run: str, form_runs: Mapping[tuple[str, int], str]) -> dict[str, set[str]]:
    """Who each run of a case waits for: a unit with a form run of its own on that run, the others on the case's run."""
    people: dict[str, set[str]] = {case_run: set(), **{run: set() for run in form_runs.values()}}
    for unit in case_waiting(register, case_key):
        holder = form_runs.get((unit.run.step_id, unit.run.visit), case_run)
        people.setdefault(holder, set()).update(unit.people)
    return people


def sync_waiting_tags(register: Register, case_key: str) -> bool:
    """Write the ``waiting:`` tags of a case's runs as the register says now; True when every write succeeded.

    Never fails the caller: a Prefect server out of reach is logged and the next change writes them.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    try:
        record = register.case(case_key)
        if record.flow_run_id is None:
            return True
        case_run = record.flow_run_id
        with get_client(sync_client=True) as client:
            forms = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[FORM_TAG, f"forms-of:{case_run}"])), limit=200)
            units = [(_unit_of(run.tags, case_run), str(run.id)) for run in forms]
            wanted = desired_people(register, case_key, case_run, {unit: run_id for unit, run_id in units if unit is not None})
            current = {str(run.id): list(run.tags) for run in forms}
            if case_run not in current:
                current[case_run] = list(client.read_flow_run(UUID(case_run)).tags)
            for run_id, people in wanted.items():
                tags = with_waiting(current.get(run_id, []), people)
                if tags != current.get(run_id):
                    client.update_flow_run(UUID(run_id), tags=tags)
        return True
    except Exception as error:  # noqa: BLE001 - tags are a view; a case never fails for them
        log.warning("could not write the waiting tags of %s: %s", case_key, error)
        return False


def _unit_of(tags: Iterable[str], case_run: str) -> tuple[str, int] | None:
    """(register step id, visit) of a form run from its ``form:CASE_RUN:ROW:VISIT`` tag; None without one."""
    prefix = f"form:{case_run}:"
    for tag in tags:
        if tag.startswith(prefix):
            row, _, visit = tag[len(prefix):].rpartition(":")
            if visit.isdigit():
                return (row, int(visit))
    return None


__all__ = ["WAITING_PREFIX", "desired_people", "sync_waiting_tags", "waiting_tag", "with_waiting"]
