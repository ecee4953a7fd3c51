"""``aftercare serve FOLDER`` against a real Prefect server, read back through Prefect's API.

One deployment per definition (named after the process, as is its flow) with its
description, version and tags, the typed parameter schema of its inputs, and its
schedule (cron, interval or rrule, timezone, the schedule's inputs as parameters). A
definition on a 15 s interval produces runs that finish as closed cases in the register.
Serving a changed definition updates its deployment while a case that started on the old
version finishes on it; a schedule paused in Prefect stays paused when ``serve`` restarts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.graph import mermaid
from aftercare.engine.library import load_library
from aftercare.engine.loader import Library
from aftercare.engine.register import Register
from aftercare.flows.answering import submit_answer
from tests.deploy.conftest import aftercare_command, wait_until, write_processes
from tests.fixtures.prefect_server import PrefectServer, ServedProcess, serve_subprocess

pytestmark = pytest.mark.prefect_server

SYSTEM_DEPLOYMENTS = [
    "aftercare-timer/aftercare-timer",
    "aftercare-housekeeping/aftercare-housekeeping",
]

TICKET = """\
process: dt-ticket
title: Ticket
version: 4
description: A ticket the support lead triages.
key: DTT
tags: [deploy-test, support]
inputs:
  title: {type: string, description: Short summary}
  severity: {type: choice, choices: [low, medium, high], default: medium, description: How bad it is}
  reporter: {type: person, description: Who reported it}
  details: {type: text, required: false}
steps:
  - id: triage
    type: approval
    assignee: role:support-lead
  - id: log
    type: record
    set: {status: triaged}
  - id: done
    type: end
    outcome: resolved
"""

HEARTBEAT = """\
process: dt-heartbeat
title: Heartbeat
version: 3
description: Checks itself every few seconds.
key: DTH
inputs:
  title: {type: string}
  level: {type: choice, choices: [low, high], default: low}
schedule:
  interval: 15s
  timezone: Asia/Shanghai
  inputs: {title: Heartbeat, level: high}
steps:
  - id: note
    type: record
    set: {checked_level: "{{ inputs.level }}"}
  - id: tell
    type: notify
    to: [role:support-lead]
    message: "{{ case.key }} checked at level {{ inputs.level }}"
  - id: done
    type: end
    outcome: checked
"""

WEEKLY = """\
process: dt-weekly
title: Weekly review
version: 1
description: The team looks back at the week.
key: DTW
inputs:
  topic: {type: string, description: What the review is about}
  chair: {type: person, default: li.na}
schedule:
  cron: "0 9 * * MON"
  timezone: Europe/Berlin
  inputs: {topic: Weekly review}
steps:
  - id: review
    type: approval
    assignee: "person:{{ inputs.chair }}"
  - id: done
    type: end
    outcome: reviewed
"""

MONTHLY = """\
process: dt-monthly
title: Monthly report
version: 2
description: A report on the first day of each month.
key: DTM
inputs:
  title: {type: string}
schedule:
  rrule: "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=8;BYMINUTE=0"
  timezone: Asia/Shanghai
  inputs: {title: Monthly report}
steps:
  - id: note
    type: record
    set: {reported: "yes"}
  - id: done
    type: end
    outcome: reported
"""


@dataclass
class Served:
    folder: Path
    library: Library
    register: Register
    process: ServedProcess


SERVING = "Your deployments are being served"
"""What serve prints once it has applied every deployment (a restart finds the old ones there)."""


@contextlib.contextmanager
def _serve(server: PrefectServer, folder: Path, register_url: str, deployments: list[str]) -> Iterator[ServedProcess]:
    """``aftercare serve FOLDER`` in a subprocess, once it has applied every deployment."""
    with serve_subprocess(
        server,
        [*aftercare_command()[1:], "serve", str(folder)],
        deployments,
        extra_env={"AFTERCARE_DATABASE_URL": register_url},
        timeout=90,
    ) as served:
        wait_until(
            lambda: SERVING in served.log_path.read_text(errors="replace"),
            timeout=90, interval=0.2, what="deployments applied by serve", explain=served.log_tail,
        )
        yield served


@contextlib.contextmanager
def _removed_afterwards(server: PrefectServer, names: list[str]) -> Iterator[None]:
    """Delete these deployments at the end: the session's server outlives the test, and a
    stopped serve leaves its schedules making runs nobody takes."""
    from prefect.exceptions import ObjectNotFound

    try:
        yield
    finally:
        with server.client() as client:
            for name in names:
                with contextlib.suppress(ObjectNotFound):
                    client.delete_deployment(client.read_deployment_by_name(name).id)


def _deployment(server: PrefectServer, name: str) -> Any:
    with server.client() as client:
        return client.read_deployment_by_name(name)


def _why_no_runs(server: PrefectServer, served: ServedProcess) -> str:
    hint = ""
    if "Can't evaluate bulk DML statement" in server.log_path.read_text(errors="replace"):
        hint = "Prefect 3.8.8's scheduler cannot insert scheduled runs with SQLAlchemy 2.1: pin sqlalchemy<2.1\n"
    return f"{hint}--- serve log ---\n{served.log_tail(40)}\n--- server log ---\n{server.log_tail(40)}"


# -- a folder served once: deployments, parameters, schedules, scheduled cases -------------


@pytest.fixture(scope="class")
def served(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve-folder")
    folder = write_processes(
        root / "processes", {"dt-ticket": TICKET, "dt-heartbeat": HEARTBEAT, "dt-weekly": WEEKLY, "dt-monthly": MONTHLY}
    )
    register_url = f"sqlite:///{root / 'register.db'}"
    names = [f"{p}/{p}" for p in ("dt-ticket", "dt-heartbeat", "dt-weekly", "dt-monthly")]
    with _removed_afterwards(prefect_server, names), _serve(prefect_server, folder, register_url, names + SYSTEM_DEPLOYMENTS) as process:
        yield Served(folder, load_library(folder), Register(register_url), process)


class TestServedFolder:
    def test_a_deployment_per_definition_named_after_its_process(self, prefect_server: PrefectServer, served: Served) -> None:
        expected = {
            "dt-ticket": ("A ticket the support lead triages.", 4, ["deploy-test", "support"]),
            "dt-heartbeat": ("Checks itself every few seconds.", 3, []),
            "dt-weekly": ("The team looks back at the week.", 1, []),
            "dt-monthly": ("A report on the first day of each month.", 2, []),
        }
        with prefect_server.client() as client:
            for process, (description, version, own_tags) in expected.items():
                deployment = client.read_deployment_by_name(f"{process}/{process}")
                digest = served.library.definitions[process].digest
                assert deployment.name == process
                assert client.read_flow(deployment.flow_id).name == process
                # the description, then the process's diagram for the default UI (docs/graph.md)
                assert deployment.description == f"{description}\n\n```mermaid\n{mermaid(served.library.definitions[process].spec)}```"
                assert deployment.version == f"{version}-{digest[:8]}"
                assert deployment.tags == [f"process:{process}", f"version:{version}", *own_tags]
                assert deployment.entrypoint == f"aftercare.flows.compiled.{process.replace('-', '_')}"
                assert deployment.paused is False
                assert deployment.enforce_parameter_schema is True
            for name in SYSTEM_DEPLOYMENTS:  # the system's flows are served beside them, with no schedule:
                system = client.read_deployment_by_name(name)  # their runs are made for their moments
                assert system.schedules == []
                assert system.tags == ["aftercare-system"]
            # The safety net is one run, Scheduled at the next 5-minute mark, and no more.
            housekeeping = client.read_deployment_by_name("aftercare-housekeeping/aftercare-housekeeping")
            now = datetime.now(timezone.utc)
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[housekeeping.id])), limit=200)
            pending = [r for r in runs if r.state_name == "Scheduled" and r.expected_start_time > now]
            assert len(pending) == 1 and pending[0].name == "aftercare · housekeeping"
            assert pending[0].expected_start_time.minute % 5 == 0 and pending[0].expected_start_time.second == 0

    def test_inputs_become_a_typed_parameter_schema(self, prefect_server: PrefectServer, served: Served) -> None:
        schema = _deployment(prefect_server, "dt-ticket/dt-ticket").parameter_openapi_schema
        properties = schema["properties"]
        assert list(properties) == ["title", "severity", "reporter", "details"]
        assert [p["position"] for p in properties.values()] == [0, 1, 2, 3]
        assert schema["required"] == ["title", "reporter"]
        assert properties["title"] == {"title": "title", "type": "string", "description": "Short summary", "position": 0}
        # choices and people are enums (a select in the UI's Run form), with defaults and descriptions
        assert properties["severity"]["$ref"] == "#/definitions/Severity"
        assert properties["severity"]["default"] == "medium"
        assert properties["severity"]["description"] == "How bad it is"
        assert schema["definitions"]["Severity"] == {"enum": ["low", "medium", "high"], "title": "Severity", "type": "string"}
        assert properties["reporter"]["$ref"] == "#/definitions/Reporter"
        assert properties["reporter"]["description"] == "Who reported it"
        assert schema["definitions"]["Reporter"]["enum"] == ["li.na", "wang.wei"]
        # an optional text: string or null, null by default
        assert properties["details"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
        assert properties["details"]["default"] is None

        weekly = _deployment(prefect_server, "dt-weekly/dt-weekly").parameter_openapi_schema
        assert weekly["required"] == ["topic"]
        assert weekly["properties"]["chair"]["default"] == "li.na"
        assert weekly["definitions"]["Chair"]["enum"] == ["li.na", "wang.wei"]

    def test_schedules_carry_their_rule_timezone_and_inputs(self, prefect_server: PrefectServer, served: Served) -> None:
        [heartbeat] = _deployment(prefect_server, "dt-heartbeat/dt-heartbeat").schedules
        assert heartbeat.schedule.interval == timedelta(seconds=15)
        assert heartbeat.schedule.timezone == "Asia/Shanghai"
        assert heartbeat.parameters == {"title": "Heartbeat", "level": "high"}
        assert heartbeat.active is True
        assert heartbeat.slug == "dt-heartbeat-schedule"

        [weekly] = _deployment(prefect_server, "dt-weekly/dt-weekly").schedules
        assert weekly.schedule.cron == "0 9 * * MON"
        assert weekly.schedule.timezone == "Europe/Berlin"
        assert weekly.parameters == {"topic": "Weekly review"}
        assert weekly.active is True

        [monthly] = _deployment(prefect_server, "dt-monthly/dt-monthly").schedules
        assert "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=8;BYMINUTE=0" in monthly.schedule.rrule
        assert monthly.schedule.timezone == "Asia/Shanghai"
        assert monthly.parameters == {"title": "Monthly report"}

        assert _deployment(prefect_server, "dt-ticket/dt-ticket").schedules == []

    def test_a_short_interval_produces_cases_that_close(self, prefect_server: PrefectServer, served: Served) -> None:
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        deployment_id = served.process.deployment_ids["dt-heartbeat/dt-heartbeat"]

        def completed() -> list[Any] | None:
            with prefect_server.client() as client:
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
                    ),
                )
            return runs if len(runs) >= 2 else None

        runs = wait_until(
            completed, timeout=150, interval=1, what="two completed runs of the 15 s schedule",
            explain=lambda: _why_no_runs(prefect_server, served.process),
        )
        keys = set()
        with prefect_server.client() as client:
            for run in runs:
                case = served.register.case_for_run(str(run.id))
                assert case is not None, f"run {run.name} has no case"
                keys.add(case.key)
                assert run.parameters == {"title": "Heartbeat", "level": "high"}
                assert run.created_by is not None and run.created_by.type == "SCHEDULE"
                assert "auto-scheduled" in run.tags
                # the case was closed before the run completed, and the run carries its name
                case = served.register.case(case.key)
                assert (case.process, case.version, case.status, case.outcome) == ("dt-heartbeat", 3, "closed", "checked")
                assert case.inputs == {"title": "Heartbeat", "level": "high"}
                assert case.fields == {"checked_level": "high"}
                assert client.read_flow_run(run.id).name == f"{case.key} · Heartbeat"
                steps = served.register.step_runs(case.key)
                assert [(s.step_id, s.visit, s.status) for s in steps] == [
                    ("note", 1, "done"), ("tell", 1, "done"), ("done", 1, "done")
                ]
                told = [m for m in served.register.messages(case_key=case.key) if m.step_id == "tell"]
                assert [(m.recipient, m.channel) for m in told] == [("person:li.na", "console")]
        assert len(keys) == len(runs)


# -- a changed definition: the deployment follows, a waiting case keeps its version --------

CHANGE_V1 = """\
process: dt-change
title: Change
version: 1
description: First version.
key: DTC
inputs:
  title: {type: string}
steps:
  - id: triage
    type: approval
    assignee: role:support-lead
  - id: log
    type: record
    set: {handled_by: v1}
  - id: done
    type: end
    outcome: resolved
"""

CHANGE_V2 = """\
process: dt-change
title: Change
version: 2
description: Second version, with a notice.
key: DTC
tags: [changed]
inputs:
  title: {type: string}
steps:
  - id: triage
    type: approval
    assignee: role:support-lead
  - id: notice
    type: notify
    to: [role:approvers]
    message: "{{ case.key }} was triaged"
  - id: log
    type: record
    set: {handled_by: v2}
  - id: done
    type: end
    outcome: fixed
"""


def _start_and_wait_at_triage(server: PrefectServer, register: Register, title: str) -> tuple[Any, str]:
    from prefect.deployments import run_deployment

    run = run_deployment("dt-change/dt-change", parameters={"title": title}, timeout=0)
    server.wait_for_state_name(run.id, "Suspended", timeout=120)
    case = register.case_for_run(str(run.id))
    assert case is not None and case.current_step == "triage"
    return run, case.key


@pytest.fixture
def removed_afterwards(prefect_server: PrefectServer) -> Iterator[list[str]]:
    """Names of deployments the test makes, deleted at its end."""
    names: list[str] = []
    with _removed_afterwards(prefect_server, names):
        yield names


def test_a_changed_definition_updates_its_deployment_and_a_waiting_case_finishes_on_its_old_version(
    prefect_server: PrefectServer, tmp_path: Path, removed_afterwards: list[str]
) -> None:
    removed_afterwards.append("dt-change/dt-change")
    folder = write_processes(tmp_path / "processes", {"dt-change": CHANGE_V1})
    register_url = f"sqlite:///{tmp_path / 'register.db'}"
    register = Register(register_url)
    library = load_library(folder)
    with _serve(prefect_server, folder, register_url, ["dt-change/dt-change"]) as first:
        before = _deployment(prefect_server, "dt-change/dt-change")
        old_run, old_key = _start_and_wait_at_triage(prefect_server, register, "Started on v1")

    (folder / "dt-change.yaml").write_text(CHANGE_V2, encoding="utf-8")
    v2_digest = load_library(folder).definitions["dt-change"].digest
    with _serve(prefect_server, folder, register_url, ["dt-change/dt-change"]):
        after = _deployment(prefect_server, "dt-change/dt-change")
        assert after.id == before.id  # updated in place, not a second deployment
        assert before.version.startswith("1-") and after.version == f"2-{v2_digest[:8]}"
        assert after.description.split("\n\n")[0] == "Second version, with a notice."
        assert "n_notice" in after.description.split("```mermaid\n")[1]  # the diagram is the new version's
        assert after.tags == ["process:dt-change", "version:2", "changed"]

        # The case that waited through the change is answered and replayed by the new serve ...
        submit_answer(old_key, "triage", by="li.na", decision="approve", register=register, library=library)
        assert prefect_server.wait_for_final(old_run.id, timeout=120).state_name == "Completed"
        # ... and a case started now runs the new version.
        new_run, new_key = _start_and_wait_at_triage(prefect_server, register, "Started on v2")
        submit_answer(new_key, "triage", by="li.na", decision="approve", register=register, library=library)
        assert prefect_server.wait_for_final(new_run.id, timeout=120).state_name == "Completed"

    old, new = register.case(old_key), register.case(new_key)
    assert (old.version, old.outcome, old.fields) == (1, "resolved", {"handled_by": "v1"})
    assert [s.step_id for s in register.step_runs(old_key)] == ["triage", "log", "done"]
    assert (new.version, new.outcome, new.fields) == (2, "fixed", {"handled_by": "v2"})
    assert [s.step_id for s in register.step_runs(new_key)] == ["triage", "notice", "log", "done"]
    assert old.definition_hash != new.definition_hash == v2_digest
    assert "version: 1" in register.definition_text(old.definition_hash)


# -- schedules people paused stay paused -------------------------------------------------

PAUSABLE = """\
process: dt-pausable
title: Pausable
version: 1
key: DTP
inputs:
  topic: {type: string}
schedule:
  cron: "30 8 * * *"
  timezone: Asia/Shanghai
  inputs: {topic: Daily check}
steps:
  - id: done
    type: end
    outcome: checked
"""

DECLARED_OFF = PAUSABLE.replace("dt-pausable", "dt-declared").replace("DTP", "DTD").replace(
    "  inputs: {topic: Daily check}", "  inputs: {topic: Daily check}\n  active: false"
)


def test_a_schedule_paused_in_prefect_stays_paused_when_serve_restarts(
    prefect_server: PrefectServer, tmp_path: Path, removed_afterwards: list[str]
) -> None:
    folder = write_processes(tmp_path / "processes", {"dt-pausable": PAUSABLE, "dt-declared": DECLARED_OFF})
    register_url = f"sqlite:///{tmp_path / 'register.db'}"
    names = ["dt-pausable/dt-pausable", "dt-declared/dt-declared"]
    removed_afterwards.extend(names)
    with _serve(prefect_server, folder, register_url, names):
        [schedule] = _deployment(prefect_server, names[0]).schedules
        assert schedule.active is True
        [declared] = _deployment(prefect_server, names[1]).schedules
        assert declared.active is False  # `active: false` in the definition
        with prefect_server.client() as client:  # what the schedule's toggle in the UI does
            client.update_deployment_schedule(schedule.deployment_id, schedule.id, active=False)
            client.update_deployment_schedule(declared.deployment_id, declared.id, active=True)

    # serve pauses its deployments when it stops (Prefect's pause_on_shutdown, best effort) ...
    (folder / "dt-pausable.yaml").write_text(PAUSABLE.replace('"30 8 * * *"', '"45 8 * * *"'), encoding="utf-8")
    started = time.monotonic()
    with _serve(prefect_server, folder, register_url, names):
        deployment = _deployment(prefect_server, names[0])
        assert deployment.paused is False  # ... and takes them up again when it starts
        [kept] = deployment.schedules
        assert kept.active is False, "serve switched a schedule people paused back on"
        assert kept.id == schedule.id  # updated in place: same schedule, its new rule
        assert kept.schedule.cron == "45 8 * * *"
        assert kept.parameters == {"topic": "Daily check"}
        # A definition that says `active:` itself owns the switch.
        [declared_again] = _deployment(prefect_server, names[1]).schedules
        assert declared_again.active is False
    print(f"[timing] restart of serve with a paused schedule: {time.monotonic() - started:.1f} s")


def test_a_schedule_paused_before_schedules_had_slugs_stays_paused(
    prefect_server: PrefectServer, tmp_path: Path, removed_afterwards: list[str]
) -> None:
    from aftercare.flows.serving import process_deployment

    legacy = PAUSABLE.replace("dt-pausable", "dt-legacy").replace("DTP", "DTL")
    folder = write_processes(tmp_path / "processes", {"dt-legacy": legacy})
    name = "dt-legacy/dt-legacy"
    removed_afterwards.append(name)
    library = load_library(folder)
    # What serve made before its schedules had a slug: Prefect then replaces them all on update.
    old = process_deployment(library.definitions["dt-legacy"], library)
    old.schedules = [schedule.model_copy(update={"slug": None}) for schedule in old.schedules]
    old.apply()
    [before] = _deployment(prefect_server, name).schedules
    assert before.slug is None
    with prefect_server.client() as client:
        client.update_deployment_schedule(before.deployment_id, before.id, active=False)

    with _serve(prefect_server, folder, f"sqlite:///{tmp_path / 'register.db'}", [name]):
        [after] = _deployment(prefect_server, name).schedules
    assert (after.slug, after.active) == ("dt-legacy-schedule", False)
    assert after.schedule.cron == "30 8 * * *"
