"""Issue #17: the weekly digest on a real Prefect server with ``aftercare serve``.

The served ``aftercare-digest`` deployment carries the team file's cron and timezone on
Prefect's scheduler; a run of it (made through the API, as the scheduler or the UI's "Run"
would) writes the week's table and markdown artifacts and mails the summary once to each
person the team names, and a second run the same day mails nobody again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.clock import utc_now
from aftercare.flows.digest import MARKDOWN_KEY, TABLE_KEY, week_before
from tests.fixtures.smtp import SmtpSink

from .conftest import PROCESSES, Aftercare, copy_processes

pytestmark = [pytest.mark.prefect_server, pytest.mark.timeout(420)]

PROCESS = "issue-resolution"
DIGEST = "aftercare-digest/aftercare-digest"
SHIPPED_DIGEST = """  digest:
    schedule: "0 9 * * MON"
    timezone: Asia/Shanghai
    to: [role:management, role:quality-lead]
"""
OUR_DIGEST = """  digest:
    schedule: "30 8 * * FRI"
    timezone: Europe/Berlin
    to: [role:management, person:huang.lei]
"""
RECIPIENTS = {"zhang.wei@example.com", "emma.clark@example.com", "david.miller@example.com", "huang.lei@customer.example.com"}


def _folder(tmp_path: Path) -> Path:
    """The shipped library (the report's practices name its processes), its team's digest on Friday 08:30 in Berlin."""
    definitions = [path.stem for path in PROCESSES.glob("*.yaml") if not path.name.endswith(".scenarios.yaml") and path.stem not in ("team", "practices")]
    folder = copy_processes(tmp_path / "processes", definitions)
    team = folder / "team.yaml"
    text = team.read_text(encoding="utf-8")
    assert SHIPPED_DIGEST in text
    team.write_text(text.replace(SHIPPED_DIGEST, OUR_DIGEST), encoding="utf-8")
    return folder


def _fill(aftercare: Aftercare) -> str:
    """Two cases opened in the week before today (Berlin): one closed two hours later, one still open."""
    week = week_before(utc_now(), "Europe/Berlin")
    register = aftercare.register
    common: dict[str, Any] = {"process": PROCESS, "version": 1, "definition_hash": "0" * 16, "key_prefix": "ISS", "inputs": {"title": "x"}}
    first = register.open_case(title="Pump 1", opened_at=week.since + timedelta(days=1), **common)
    register.close_case(first.key, "done", at=week.since + timedelta(days=1, hours=2))
    register.open_case(title="Pump 2", opened_at=week.since + timedelta(days=2), **common)
    return week.label


def _run_digest(aftercare: Aftercare) -> Any:
    with aftercare.server.client() as client:
        deployment = client.read_deployment_by_name(DIGEST)
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"at": utc_now().isoformat()})
    return aftercare.wait_final(run.id, timeout=120)


def _artifacts(aftercare: Aftercare, run_id: Any) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with aftercare.server.client() as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {artifact.key: artifact for artifact in found}


def test_the_served_digest_runs_on_its_cron_publishes_the_week_and_mails_each_person_once(
    aftercare_env: Callable[..., Aftercare], tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    aftercare = aftercare_env(_folder(tmp_path), [PROCESS])
    label = _fill(aftercare)
    with aftercare.serve():
        with aftercare.server.client() as client:
            deployment = client.read_deployment_by_name(DIGEST)
        [schedule] = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.slug) == ("30 8 * * FRI", "Europe/Berlin", "aftercare-digest-schedule")
        assert schedule.active and deployment.tags == ["aftercare-system"]

        first = _run_digest(aftercare)
        assert first.state_name == "Completed", aftercare.log_tail()
        artifacts = _artifacts(aftercare, first.id)
        assert set(artifacts) == {TABLE_KEY, MARKDOWN_KEY}
        table = artifacts[TABLE_KEY]
        rows = json.loads(table.data) if isinstance(table.data, str) else table.data
        [row] = [row for row in rows if row["process"] == PROCESS]
        assert (row["opened"], row["closed"], row["open"], row["cycle_median_h"]) == (2, 1, 1, 2.0)
        markdown = artifacts[MARKDOWN_KEY].data
        assert markdown.startswith(f"# Aftercare weekly digest {label}\n")
        assert "2 cases opened, 1 closed (0 cancelled), 1 still open." in markdown

        mails = smtp_sink.wait_for(4, timeout=60)
        assert sorted(rcpt for mail in mails for rcpt in mail.rcpt_tos) == sorted(RECIPIENTS)  # each once
        by_rcpt = {mail.rcpt_tos[0]: mail for mail in mails}
        assert by_rcpt["emma.clark@example.com"].subject == f"Aftercare weekly digest {label}: 2 opened, 1 closed, 1 open"
        assert by_rcpt["zhang.wei@example.com"].subject.startswith(f"Aftercare 周报 {label}")
        assert "issue-resolution: 2 / 1 / 1; 2.0 h" in by_rcpt["emma.clark@example.com"].text

        second = _run_digest(aftercare)  # the same day again: new artifact versions, no second mail
        assert second.state_name == "Completed", aftercare.log_tail()
        assert set(_artifacts(aftercare, second.id)) == {TABLE_KEY, MARKDOWN_KEY}
        time.sleep(5)
        assert len(smtp_sink.messages) == 4
    digest_messages = [m for m in aftercare.register.messages(limit=1000) if "/digest-" in m.idempotency_key]
    assert len(digest_messages) == 4 and all(m.status == "delivered" for m in digest_messages)
