"""Every definition as a Prefect deployment: served by one process, or deployed for a work pool's workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from aftercare.engine import settings
from aftercare.engine.loader import Library, LoadedDefinition

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
        description=(spec.description or spec.title).strip(),
        version=f"{spec.version}-{definition.digest[:8]}",
        tags=run_tags(definition),
        schedules=[schedule] if schedule else None,
        **options,
    )


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


def serve_library(library: Library, *, system: bool = True, limit: int | None = None) -> None:
    """Serve every definition (and the system flows) from this process until stopped."""
    from prefect import serve

    # The runs' own processes build their flow from this folder (aftercare.flows.compiled).
    os.environ["AFTERCARE_PROCESSES"] = str(Path(library.root or "processes").resolve())
    deployments = [process_deployment(definition, library) for definition in library.definitions.values()]
    if system:
        deployments.extend(system_deployments())
    keep_schedule_states(deployments, library)
    _recover([deployment.flow_name for deployment in deployments])
    if limit is None:
        # prefect.serve hands limit=None to its Runner, which then runs every due run at
        # once and ignores PREFECT_RUNNER_PROCESS_LIMIT: a burst of scheduled or answered
        # cases would start a process each. Take Prefect's own setting (default 5).
        from prefect.settings import get_current_settings

        limit = get_current_settings().runner.process_limit
    serve(*deployments, limit=limit, print_starting_message=True)


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
    if system:
        deployments.extend(system_deployments(work_pool_name=pool, job_variables={"env": env}))
    keep_schedule_states(deployments, library)
    names = []
    for deployment in deployments:
        deployment.apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names
