"""Importable process flows for workers: ``aftercare.flows.compiled:issue_resolution`` builds that flow.

Deployments made by ``aftercare deploy`` (and served ones) name these attributes as their
entrypoint; a run's process imports this module and gets the flow of the definition in
``AFTERCARE_PROCESSES``, or a system flow.
"""

from __future__ import annotations

from typing import Any

from aftercare.engine import settings
from aftercare.notifications import load_checked_library

from .form_flow import FORM_FLOWS
from .process_flow import attribute_name, build_flow
from .system_flows import SYSTEM_FLOWS


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    if name in SYSTEM_FLOWS:
        return SYSTEM_FLOWS[name]
    if name in FORM_FLOWS:
        return FORM_FLOWS[name]
    folder = settings.processes_folder()
    library = load_checked_library(folder)
    for definition in library.definitions.values():
        if attribute_name(definition.spec.process) == name:
            return build_flow(definition, library)
    raise AttributeError(f"no process {name!r} in {folder}")
