"""Every definition as a Prefect deployment: served by one process, or deployed for a work pool's workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from aftercare.engine.loader import Library, LoadedDefinition

from .process_flow import build_flow
from .schedules import prefect_schedule
from .system_flows import system_deployments


def deployment_tags(definition: LoadedDefinition) -> list[str]:
    """Tags of a process's deployment and runs: its process, version and own tags."""
    spec = definition.spec
    return [f"process:{spec.process}", f"version:{spec.version}", *spec.tags]


def process_deployment(definition: LoadedDefinition, library: Library, **options: Any) -> RunnerDeployment:
    """The deployment of one definition, named after the process, its schedule on."""
    spec = definition.spec
    schedule = prefect_schedule(spec)
    return build_flow(definition, library).to_deployment(
        name=spec.process,
        entrypoint_type=EntrypointType.MODULE_PATH,
        description=(spec.description or spec.title).strip(),
        version=f"{spec.version}-{definition.digest[:8]}",
        tags=deployment_tags(definition),
        schedules=[schedule] if schedule else None,
        **options,
    )


def serve_library(library: Library, *, system: bool = True, limit: int | None = None) -> None:
    """Serve every definition (and the system flows) from this process until stopped."""
    from prefect import serve

    # The runs' own processes build their flow from this folder (aftercare.flows.compiled).
    os.environ["AFTERCARE_PROCESSES"] = str(Path(library.root or "processes").resolve())
    deployments = [process_deployment(definition, library) for definition in library.definitions.values()]
    if system:
        deployments.extend(system_deployments())
    serve(*deployments, limit=limit, print_starting_message=True)


def worker_environment(library: Library) -> dict[str, str]:
    """What a worker's flow run process needs to find the definitions and the register."""
    env = {"AFTERCARE_PROCESSES": str(Path(library.root or "processes").resolve())}
    for name in ("AFTERCARE_DATABASE_URL", "AFTERCARE_SMTP_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def deploy_library(library: Library, *, pool: str, system: bool = True) -> list[str]:
    """Register a deployment per definition on a work pool; workers import the flows by module path.

    Returns:
        ``flow/deployment`` names created or updated.
    """
    env = worker_environment(library)
    names = []
    for definition in library.definitions.values():
        deployment = process_deployment(definition, library, work_pool_name=pool, job_variables={"env": env})
        deployment.apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    if system:
        for deployment in system_deployments(work_pool_name=pool, job_variables={"env": env}):
            deployment.apply(work_pool_name=pool)
            names.append(f"{deployment.flow_name}/{deployment.name}")
    return names
