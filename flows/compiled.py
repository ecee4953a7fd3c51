"""Importable process flows for workers: ``aftercare.flows.compiled:issue_resolution`` builds that flow.

Deployments made by ``aftercare deploy`` name these attributes as their entrypoint; a worker
imports this module and gets the flow of the definition in ``AFTERCARE_PROCESSES``.
"""

from __future__ import annotations

from typing import Any


def attribute_name(process: str) -> str:
    """The module attribute a process's flow is found under."""
    return process.replace("-", "_")


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    from aftercare.engine.library import load_library

    from .cli import processes_folder
    from .process_flow import build_flow
    from .system_flows import SYSTEM_FLOWS
    from .templates_bridge import template_sources

    if name in SYSTEM_FLOWS:
        return SYSTEM_FLOWS[name]
    folder = processes_folder()
    library = load_library(folder, template_sources([folder]))
    for definition in library.definitions.values():
        if attribute_name(definition.spec.process) == name:
            return build_flow(definition, library)
    raise AttributeError(f"no process {name!r} in {folder}")
