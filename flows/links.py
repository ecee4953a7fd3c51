"""Links into the Prefect UI for messages, forms and artifacts."""

from __future__ import annotations


def ui_base_url() -> str | None:
    """The Prefect UI's address: PREFECT_UI_URL, else PREFECT_API_URL without ``/api``; None when embedded."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    ui = settings.ui_url if hasattr(settings, "ui_url") else None
    if ui:
        return str(ui).rstrip("/")
    api = settings.api.url
    if api and str(api).rstrip("/").endswith("/api"):
        return str(api).rstrip("/")[: -len("/api")]
    return None


def run_links(flow_run_id: str) -> dict[str, str]:
    """``{"run": URL}`` of a flow run's page, when there is a UI to link to."""
    base = ui_base_url()
    return {"run": f"{base}/runs/flow-run/{flow_run_id}"} if base else {}
