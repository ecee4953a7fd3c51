"""Every definition as a Prefect deployment: served by one process, or deployed for a work pool's workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from aftercare.engine import settings
from aftercare.engine.graph import mermaid
from aftercare.engine.loader import Library, LoadedDefinition
from aftercare.engine.spec import ProcessSpec

from .digest import digest_deployment
from .form_flow import form_deployment
from .process_flow import build_flow, run_tags
from .schedules import prefect_schedule
from .system_flows import system_deployments


def process_deployment(definition: LoadedDefinition, library: Library, **options: Any) -> RunnerDeployment:
    """The deployment of one definition, named after the process, its schedule on."""
    spec = definition.spec
    schedule = prefect_schedule(spec)
    return build_flow(definition, library).to_deployment(
        name=spec.process,
        entrypoint_type=EntrypointType.MODULE_PATH,
        description=deployment_description(spec),
        version=f"{spec.version}-{definition.digest[:8]}",
        tags=run_tags(definition),
        schedules=[schedule] if schedule else None,
        **options,
    )


def deployment_description(spec: ProcessSpec) -> str:
    """The definition's description, then its diagram as a Mermaid block: the default Prefect UI (/v2) draws it on
    the deployment's Description tab; the classic UI shows the block as code (docs/graph.md)."""
    return f"{(spec.description or spec.title).strip()}\n\n```mermaid\n{mermaid(spec)}```"


def keep_schedule_states(deployments: list[RunnerDeployment], library: Library) -> None:
    """Schedules people paused (or resumed) in Prefect keep that state when serve or deploy runs again.

    Prefect 3.8 sends every schedule with ``active`` set and the server takes it, so each
    restart of ``serve`` switched paused schedules back on (PrefectHQ/prefect#19302). A
    schedule the deployment already has keeps its ``active``, unless the definition says
    ``active:`` itself (then the file owns the switch); a new schedule starts as the
    definition says, active by default.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for deployment in deployments:
            definition = library.definitions.get(deployment.name)
            declared = definition is not None and definition.spec.schedule is not None and "active" in definition.spec.schedule.model_fields_set
            if not deployment.schedules or declared:
                continue
            try:
                existing = client.read_deployment_by_name(f"{deployment.flow_name}/{deployment.name}").schedules
            except ObjectNotFound:
                continue
            deployment.schedules = [_with_current_state(schedule, existing) for schedule in deployment.schedules]


def _with_current_state(schedule: Any, existing: list[Any]) -> Any:
    """The schedule to send, with the ``active`` of the one it updates (matched by slug)."""
    same = [current for current in existing if schedule.slug is not None and current.slug == schedule.slug]
    if not same and len(existing) == 1 and existing[0].slug is None:
        same = existing  # made before schedules had slugs, or a system flow's
    return schedule.model_copy(update={"active": same[0].active}) if same else schedule


POLL_SECONDS = 1.0
"""How often ``aftercare serve`` asks Prefect for runs due (Prefect's own default is 10 s)."""
SYSTEM_LIMIT = 2
"""System runs (timers, housekeeping) at once, in their own runner: never in a case's slot."""
SYSTEM_POLL_SECONDS = 5.0
"""How often the system's runner asks for timer runs. Their moments are known ahead and a
runner takes runs up to its prefetch (10 s) early, the run sleeping until its moment, so a
slower poll costs no lateness and saves idle CPU."""


def serve_library(library: Library, *, system: bool = True, limit: int | None = None, poll: float = POLL_SECONDS) -> None:
    """Serve every definition (and the system flows) from this process until stopped.

    Two Prefect runners share the process: one for cases, with ``limit`` (Prefect's
    ``PREFECT_RUNNER_PROCESS_LIMIT`` by default), and one for the system's timer and
    housekeeping runs with its own small limit, so cases never wait behind system work.
    The cases' runner asks for due runs every ``poll`` seconds: an answered or rescheduled
    case starts within about that, plus the time Prefect takes to start a run's process.
    The system's runner asks every :data:`SYSTEM_POLL_SECONDS` (docs/time.md).
    """
    import asyncio

    # The runs' own processes build their flow from this folder (aftercare.flows.compiled).
    os.environ["AFTERCARE_PROCESSES"] = str(Path(library.root or "processes").resolve())
    cases = [process_deployment(definition, library) for definition in library.definitions.values()]
    cases.append(form_deployment())  # form runs start on the cases' runner: an answer moves its case as fast
    systems = [*system_deployments(), digest_deployment(library)] if system else []
    keep_schedule_states([*cases, *systems], library)
    _recover([deployment.flow_name for deployment in [*cases, *systems]])
    if limit is None:
        # prefect.serve hands limit=None to its Runner, which then runs every due run at
        # once and ignores PREFECT_RUNNER_PROCESS_LIMIT: a burst of scheduled or answered
        # cases would start a process each. Take Prefect's own setting (default 5).
        from prefect.settings import get_current_settings

        limit = get_current_settings().runner.process_limit
    try:
        asyncio.run(_serve(cases, systems, limit=limit, poll=poll))
    except KeyboardInterrupt:
        print("aftercare serve: stopped")


async def _serve(cases: list[RunnerDeployment], systems: list[RunnerDeployment], *, limit: int, poll: float) -> None:
    """Run the cases' runner and the system's runner side by side until stopped."""
    import asyncio

    from prefect.flows import _display_serve_start_message
    from prefect.runner import Runner

    runners = []
    case_runner = Runner(limit=limit, query_seconds=poll, pause_on_shutdown=True)
    for deployment in cases:
        await case_runner.aadd_deployment(deployment)
    runners.append(case_runner)
    if systems:
        system_runner = Runner(limit=SYSTEM_LIMIT, query_seconds=max(poll, SYSTEM_POLL_SECONDS), pause_on_shutdown=False)
        for deployment in systems:
            await system_runner.aadd_deployment(deployment)
        runners.append(system_runner)
        await asyncio.to_thread(_after_start, library_root=os.environ["AFTERCARE_PROCESSES"])
    _display_serve_start_message(*cases, *systems)  # once every deployment is up to date: the line people (and tests) wait for
    await asyncio.gather(*(runner.start() for runner in runners))


def _after_start(library_root: str) -> None:
    """Once the system deployments exist: the housekeeping chain, and linked cases queued while nothing served them."""
    from aftercare.engine.register import Register

    from .launching import launch_queued
    from .timers import ensure_housekeeping, forget_deployments

    forget_deployments()
    ensure_housekeeping()
    try:
        launched = launch_queued(Register())
    except Exception as error:  # noqa: BLE001 - the housekeeping run tries again
        print(f"aftercare serve: could not launch queued linked cases: {error}")
        return
    if launched:
        print(f"aftercare serve: {len(launched)} queued linked case(s) launched from {library_root}")


def _recover(flow_names: list[str]) -> None:
    """Before taking runs: runs a killed ``serve`` left Running go back to Scheduled (replayed now)."""
    from .recovery import recover_dead_runs

    try:
        report = recover_dead_runs(flow_names)
    except Exception as error:  # noqa: BLE001 - recovery must never keep serve from starting
        print(f"aftercare serve: could not check for runs left by a dead process: {error}")
        return
    if report.rescheduled or report.crashed:
        print(f"aftercare serve: {len(report.rescheduled)} run(s) whose process died scheduled again, {len(report.crashed)} system run(s) marked Crashed")


def worker_environment(library: Library) -> dict[str, str]:
    """What a worker's flow run process needs to find the definitions and the register."""
    env = {"AFTERCARE_PROCESSES": str(Path(library.root or "processes").resolve())}
    configured = settings.current()
    if configured.database_url:
        env["AFTERCARE_DATABASE_URL"] = configured.database_url
    if configured.smtp_url:
        env["AFTERCARE_SMTP_URL"] = configured.smtp_url
    return env


def deploy_library(library: Library, *, pool: str, system: bool = True) -> list[str]:
    """Register a deployment per definition on a work pool; workers import the flows by module path.

    Returns:
        ``flow/deployment`` names created or updated.
    """
    env = worker_environment(library)
    deployments = [
        process_deployment(definition, library, work_pool_name=pool, job_variables={"env": env})
        for definition in library.definitions.values()
    ]
    deployments.append(form_deployment(work_pool_name=pool, job_variables={"env": env}))
    if system:
        deployments.extend(system_deployments(work_pool_name=pool, job_variables={"env": env}))
        deployments.append(digest_deployment(library, work_pool_name=pool, job_variables={"env": env}))
    keep_schedule_states(deployments, library)
    names = []
    for deployment in deployments:
        deployment.apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    if system:
        from .timers import ensure_housekeeping, forget_deployments

        forget_deployments()
        ensure_housekeeping()  # each housekeeping run schedules the next
    return names
