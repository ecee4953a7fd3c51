"""The Prefect API a command talks to: PREFECT_API_URL, or the embedded server ``aftercare run`` starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from . import ui_updates

RUNTIME_FILE = "embedded-prefect.json"
EMBEDDED_START_SECONDS = 180


def runtime_file() -> Path:
    """Where a running ``aftercare run`` leaves the address of its embedded Prefect server."""
    return Path(platformdirs.user_data_dir("aftercare")) / RUNTIME_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def embedded_api_url() -> str | None:
    """The API of an embedded server still running in another ``aftercare run``, if any."""
    path = runtime_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return str(data["api_url"]) if _pid_alive(int(data.get("pid", 0))) else None


def configured_api_url() -> str | None:
    """PREFECT_API_URL as Prefect sees it (environment or profile)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


@contextmanager
def prefect_api(*, start_embedded: bool) -> Iterator[str | None]:
    """Use the configured Prefect API; else join a running embedded one, or start one when asked.

    The embedded server is Prefect's own temporary server (local SQLite under PREFECT_HOME);
    its address is written to a runtime file so ``aftercare answer`` in another shell finds it.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if configured_api_url():
        yield configured_api_url()
        return
    joined = embedded_api_url()
    if joined or not start_embedded:
        if joined:
            with temporary_settings(updates={PREFECT_API_URL: joined}):
                yield joined
        else:
            yield None
        return
    from prefect.server.api.server import SubprocessASGIServer

    # No network for telemetry here (DESIGN.md); the temporary server's process inherits this.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = SubprocessASGIServer()
    # Prefect's own default (20 s) is too short on a busy machine; a first start also migrates its database.
    server.start(timeout=EMBEDDED_START_SECONDS)
    path = runtime_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": server.api_url, "pid": os.getpid()}))
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        ui_updates.forget(server.api_url)
        _flush_run_logs()
        server.stop()


def _flush_run_logs() -> None:
    """Send the runs' logs and events before the embedded server goes, not after.

    Otherwise the process retries them against the stopped server at exit for a minute
    ("Error logging to API ... All connection attempts failed").
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=10)
        except Exception:  # noqa: BLE001 - logs and events are best effort; the case is in the register
            pass
