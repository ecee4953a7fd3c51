"""What the Prefect UI shows of a case (its run's name, its timeline artifact), sent off the case's path.

A case never waits for the UI. A run's updates are held while its steps run and released
when the run waits for people or a timer, or ends (``release_run``, from the flow's state
hooks): a Prefect server on SQLite writes one thing at a time, and an update sent while
steps run makes the steps' own state changes queue behind it. Released updates go out on
one background thread, in order, with a client per API. They are views of the register,
best effort: a failure is logged, and the next update (or a replay) sends a newer view.
``drain`` waits for what is queued; it runs before the embedded server stops, and Python
runs it at exit (also in the process of a served or deployed run).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_sender: ThreadPoolExecutor | None = None
_clients: dict[str, Any] = {}
"""API URL -> the sender thread's sync Prefect client (only the sender thread touches them)."""


def current_api_url() -> str:
    """The Prefect API the calling thread talks to (settings are per thread in Prefect)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise RuntimeError("no Prefect API to update: PREFECT_API_URL is not set")
    return str(url)


def _send(what: str, update: Callable[[Any], object]) -> Future[None]:
    """Queue ``update(client)`` for the calling thread's Prefect API; returns when it is queued."""
    api_url = current_api_url()

    def run() -> None:
        try:
            update(_client(api_url))
        except Exception:  # noqa: BLE001 - a view of the register; the next update sends a newer one
            log.warning("could not update the Prefect UI (%s)", what, exc_info=True)

    global _sender
    with _lock:
        if _sender is None:
            _sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aftercare-ui")
        return _sender.submit(run)


_held: dict[str, list[tuple[str, Callable[[Any], object]]]] = {}


def hold(flow_run_id: object, what: str, update: Callable[[Any], object]) -> None:
    """Keep ``update(client)`` for a run until the run waits or ends (:func:`release_run`)."""
    with _lock:
        _held.setdefault(str(flow_run_id), []).append((what, update))


def release_run(flow_run_id: object) -> None:
    """Send a run's held updates now, in the order they were made."""
    with _lock:
        held = _held.pop(str(flow_run_id), [])
    for what, update in held:
        _send(what, update)


def drain(timeout: float = 30.0) -> None:
    """Wait until everything queued so far is sent (or ``timeout`` seconds pass)."""
    with _lock:
        sender = _sender
    if sender is None:
        return
    try:
        sender.submit(lambda: None).result(timeout=timeout)
    except Exception:  # noqa: BLE001 - a timeout leaves the rest to the exit
        log.warning("Prefect UI updates still queued after %.0f s", timeout)


def _client(api_url: str) -> Any:
    client = _clients.get(api_url)
    if client is None:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

        client = SyncPrefectClient(api_url, auth_string=PREFECT_API_AUTH_STRING.value(), api_key=PREFECT_API_KEY.value())
        client.__enter__()
        _clients[api_url] = client
    return client


def forget(api_url: str) -> None:
    """Close the client of an API that is going away (the embedded server), after draining."""
    drain()
    with _lock:
        sender = _sender
    if sender is not None:
        sender.submit(_close, api_url).result(timeout=10)


def _close(api_url: str) -> None:
    client = _clients.pop(api_url, None)
    if client is not None:
        try:
            client.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - closing a client of a server that is gone
            pass


@atexit.register
def _close_all() -> None:
    # Python has sent what was queued before it runs atexit functions (it joins the sender).
    for api_url in list(_clients):
        _close(api_url)
