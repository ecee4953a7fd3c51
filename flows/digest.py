"""The weekly digest: the past week's figures as Prefect artifacts, and the report's summary to the roles the team names.

``aftercare serve`` and ``deploy`` make the ``aftercare-digest`` deployment with the team
file's ``digest.schedule`` (a cron in a timezone; defaults in docs/digest.md) on Prefect's
scheduler. Each run covers the seven days before the day it was scheduled for (midnight to
midnight in the digest's timezone), so a rerun that day covers the same week: its artifacts
are new versions under the same keys, and its messages are keyed per week and recipient,
so nobody gets the digest twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow
from prefect.context import FlowRunContext

from aftercare.engine import settings
from aftercare.engine.clock import UTC, utc_now
from aftercare.engine.loader import Library
from aftercare.engine.register import Register
from aftercare.notifications import MessageTemplates, deliver_pending, digest_messages, enqueue, load_checked_library

from .reporting import build_report, report_summary
from .timers import SYSTEM_TAG

log = logging.getLogger(__name__)

DIGEST_FLOW = "aftercare-digest"
TABLE_KEY = "aftercare-weekly-figures"
"""The table artifact's key: one row per process (each run a new version under it)."""
MARKDOWN_KEY = "aftercare-weekly-digest"
"""The markdown artifact's key: the summary and the cases that need attention."""
SCHEDULE_SLUG = "aftercare-digest-schedule"
ATTENTION_SHOWN = 15
"""The cases that need attention a digest lists (the report's order: overdue, risk, oldest)."""


@dataclass(frozen=True)
class DigestPlan:
    """When the digest goes out and to whom, the team file's defaults filled in."""

    cron: str
    timezone: str
    to: tuple[str, ...]


def digest_plan(library: Library) -> DigestPlan:
    """The team's ``digest``; its timezone defaults to the first scheduled definition's (by process id), else UTC."""
    spec = library.team.digest
    scheduled = [definition.spec.schedule for _, definition in sorted(library.definitions.items()) if definition.spec.schedule]
    timezone = spec.timezone or (scheduled[0].timezone if scheduled else "UTC")
    return DigestPlan(spec.schedule, timezone, library.team.digest_recipients())


@dataclass(frozen=True)
class Week:
    """The seven days a digest covers: ``since`` inclusive, ``until`` exclusive, named by its ISO week."""

    since: datetime
    until: datetime
    label: str
    key: str
    """What keys the week's messages: its first day in the digest's timezone."""


def week_before(moment: datetime, timezone: str) -> Week:
    """The seven days before the day of ``moment`` (midnight to midnight in ``timezone``)."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    until = datetime(local.year, local.month, local.day, tzinfo=zone)
    since = (until - timedelta(days=7)).replace(tzinfo=zone)  # wall-clock midnight, whatever DST did
    year, week, _ = since.isocalendar()
    return Week(since.astimezone(UTC), until.astimezone(UTC), f"{year}-W{week:02d}", since.date().isoformat())


def process_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The table artifact's rows: one per process, the week's figures (durations in hours)."""
    rows = []
    for process, figures in sorted(report["processes"].items()):
        rows.append({
            "process": process,
            "title": figures.get("title", process),
            "opened": figures["opened"],
            "closed": figures["closed"],
            "open": figures["open"],
            "cancelled": figures["cancelled"],
            "cycle_median_h": _hours(figures["cycle_time"]["median"]),
            "cycle_p90_h": _hours(figures["cycle_time"]["p90"]),
            "sla_met_pct": figures["sla"]["met_pct"],
            "sla_breached": figures["sla"]["breached"],
            "rework": figures["rework"],
            "first_answer_median_h": _hours(figures.get("first_answer", {}).get("median")),
        })
    return rows


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 1)


def digest_markdown(week: Week, report: dict[str, Any], summary: list[str]) -> str:
    """The markdown artifact: the summary, then the cases that need attention with links to their runs."""
    lines = [f"# Aftercare weekly digest {week.label}", "", f"{week.since.isoformat()} – {week.until.isoformat()} (until exclusive)", ""]
    lines += [f"- {line}" for line in summary]
    attention = report.get("attention", [])[:ATTENTION_SHOWN]
    lines += ["", "## Needs attention", ""]
    if not attention:
        lines.append("Nothing overdue, at risk or old.")
    else:
        lines += ["| case | process | reason | detail | age (days) |", "|---|---|---|---|---|"]
        for item in attention:
            case = f"[{item['case']}]({item['link']})" if item.get("link") else item["case"]
            detail = _cell(str(item.get("detail") or ""))
            lines.append(f"| {case} {_cell(item.get('title') or '')} | {item['process']} | {item['reason']} | {detail} | {item['age_days']:.1f} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|")


def send_digest(register: Register, library: Library, moment: datetime, *, api_url: str | None = None) -> dict[str, Any]:
    """Build the week's report, publish both artifacts (inside a flow run), queue and deliver the messages."""
    plan = digest_plan(library)
    week = week_before(moment, plan.timezone)
    report = build_report(register, library, since=week.since, until=week.until, process=None, now=utc_now())
    summary = report_summary(report)
    rows = process_rows(report)
    artifacts = _publish(week, report, summary, rows)
    processes = report["processes"].values()
    digest = {
        "period": week.label,
        "since": week.since.isoformat(),
        "until": week.until.isoformat(),
        "summary": summary,
        "opened": sum(p["opened"] for p in processes),
        "closed": sum(p["closed"] for p in processes),
        "open": sum(p["open"] for p in processes),
        "processes": [_message_row(row) for row in rows if row["opened"] or row["closed"] or row["open"]],
        "attention": report.get("attention", [])[:ATTENTION_SHOWN],
        "link": _artifact_link(api_url),
    }
    if not plan.to:
        log.warning("the weekly digest goes to nobody: the team has no digest.to and none of the roles management, project-manager")
    messages = digest_messages(library.team, plan.to, digest, period=week.key, now=utc_now(), templates=MessageTemplates.for_library(library))
    stored = enqueue(register, messages)
    delivered = deliver_pending(register, now=utc_now(), limit=500)
    return {
        "period": week.label, "since": digest["since"], "until": digest["until"], "artifacts": artifacts,
        "messages": [m.idempotency_key for m in stored], "delivered": len(delivered.delivered),
    }


def _message_row(row: dict[str, Any]) -> dict[str, Any]:
    cycle = row["cycle_median_h"]
    met = row["sla_met_pct"]
    return {**row, "cycle_time": f"{cycle} h" if cycle is not None else None, "sla_met": f"{met} %" if met is not None else None}


def _publish(week: Week, report: dict[str, Any], summary: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The table and markdown artifacts, when running as a Prefect flow run (they belong to a run)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    if FlowRunContext.get() is None:
        return []
    create_table_artifact(rows, key=TABLE_KEY, description=f"Aftercare weekly figures {week.label}: one row per process (durations in hours)")
    create_markdown_artifact(digest_markdown(week, report, summary), key=MARKDOWN_KEY, description=f"Aftercare weekly digest {week.label}")
    return [TABLE_KEY, MARKDOWN_KEY]


def _artifact_link(api_url: str | None) -> str | None:
    base = settings.ui_url(api_url)
    return f"{base}/artifacts/key/{MARKDOWN_KEY}" if base else None


@flow(name=DIGEST_FLOW, log_prints=False, persist_result=False)
def aftercare_digest(at: str | None = None) -> dict[str, Any]:
    """The weekly digest: the week before the day this run was scheduled for (or ``at``, ISO 8601 with offset)."""
    from prefect.settings import PREFECT_API_URL

    context = FlowRunContext.get()
    scheduled = context.flow_run.expected_start_time if context is not None and context.flow_run is not None else None
    moment = datetime.fromisoformat(at) if at else (scheduled or utc_now())
    library = load_checked_library(settings.processes_folder())
    url = PREFECT_API_URL.value()
    return send_digest(Register(), library, moment.astimezone(UTC), api_url=str(url) if url else None)


def digest_deployment(library: Library, **options: Any) -> Any:
    """The digest's deployment, its cron on Prefect's scheduler (the slug keeps a schedule paused in the UI paused)."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    plan = digest_plan(library)
    return aftercare_digest.to_deployment(
        name=DIGEST_FLOW,
        tags=[SYSTEM_TAG],
        entrypoint_type=EntrypointType.MODULE_PATH,
        description=f"The weekly digest: the week's figures as artifacts ({TABLE_KEY}, {MARKDOWN_KEY}), the summary to {', '.join(plan.to) or 'nobody'}.",
        schedules=[Cron(plan.cron, timezone=plan.timezone, slug=SCHEDULE_SLUG)],
        **options,
    )


__all__ = [
    "DIGEST_FLOW", "MARKDOWN_KEY", "TABLE_KEY", "DigestPlan", "Week", "aftercare_digest", "digest_deployment", "digest_plan",
    "digest_markdown", "process_rows", "send_digest", "week_before",
]
