"""Starting linked cases as their own flow runs (``start`` steps), now or once a deployment serves them."""

from __future__ import annotations

import logging
from typing import Any

from aftercare.engine.register import CASE_QUEUED, Register

from .parameters import plain_value

log = logging.getLogger(__name__)


def deployment_name(process: str) -> str:
    """``flow/deployment`` of a process: both named after it."""
    return f"{process}/{process}"


def launch_case(key: str, process: str, inputs: dict[str, Any]) -> str | None:
    """Create the flow run of a pre-opened case on its deployment; None when no deployment serves it yet.

    The run carries the tag ``case:KEY`` so its flow drives that case instead of opening another.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run = run_deployment(
            deployment_name(process),
            parameters=plain_value(inputs),
            timeout=0,
            tags=[f"case:{key}"],
            as_subflow=False,
        )
    except ObjectNotFound:
        log.info("no deployment for %s yet: %s stays queued until `aftercare serve` launches it", process, key)
        return None
    register = Register()
    register.attach_run(key, str(flow_run.id))
    return str(flow_run.id)


def launch_queued(register: Register, limit: int = 100) -> list[str]:
    """Launch every queued case that has no flow run yet (the system flow calls this)."""
    launched = []
    for record in register.cases(status=CASE_QUEUED, limit=limit):
        if record.flow_run_id is None and launch_case(record.key, record.process, dict(record.inputs)):
            launched.append(record.key)
    return launched
