"""The built-in ``http`` step kind against a real HTTP listener: retries, no retry on 4xx, the idempotency key, secrets."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from aftercare.engine import kinds
from aftercare.engine.spec import RetrySpec
from tests.fixtures.http_listener import HttpListener

LOG = logging.getLogger("tests.http_kind")
ENVIRON = {"TRACKER_TOKEN": "s3cret-token", "TRACKER_URL": ""}


def call(given: dict[str, Any], *, attempts: int = 3, visit: int = 1, environ: dict[str, str] | None = None) -> tuple[dict[str, Any], list[float]]:
    slept: list[float] = []
    result = kinds.run_call(
        kinds.installed().get("http"), given, case_key="EMR-0007", step_id="open-incident", visit=visit,
        retry=RetrySpec(attempts=attempts, delay="1s"), logger=LOG, sleep=slept.append, environ=environ or ENVIRON,
    )
    return result, slept


def test_503s_are_retried_then_the_answer_is_the_output(http_listener: HttpListener) -> None:
    http_listener.queue_statuses(503, 503)
    http_listener.status = 201
    http_listener.response_body = b'{"id": 4711, "url": "https://tracker.example.com/4711"}'
    environ = {**ENVIRON, "TRACKER_URL": http_listener.url}
    result, slept = call({
        "url": "${TRACKER_URL}/incidents?project=ops",
        "headers": {"Authorization": "Bearer ${TRACKER_TOKEN}"},
        "json": {"title": "Payment API timing out", "severity": "sev1"},
    }, environ=environ)
    assert result == {
        "status": 201,
        "json": {"id": 4711, "url": "https://tracker.example.com/4711"},
        "text": '{"id": 4711, "url": "https://tracker.example.com/4711"}',
    }
    assert slept == [1.0, 2.0]  # the delay doubles
    requests = http_listener.requests
    assert [(r.method, r.path, r.status) for r in requests] == [("POST", "/incidents?project=ops", status) for status in (503, 503, 201)]
    assert {r.headers["idempotency-key"] for r in requests} == {"aftercare:EMR-0007:open-incident:1"}
    assert {r.headers["authorization"] for r in requests} == {"Bearer s3cret-token"}
    assert all(r.json == {"title": "Payment API timing out", "severity": "sev1"} for r in requests)


def test_a_4xx_is_not_retried_and_is_the_steps_error(http_listener: HttpListener) -> None:
    http_listener.status = 400
    http_listener.response_body = b'{"detail": "severity must be one of P1..P4"}'
    result, slept = call({"url": f"{http_listener.url}/incidents", "json": {"severity": "sev1"}})
    assert result == {"error": f"POST {http_listener.url}/incidents answered 400 Bad Request: {{\"detail\": \"severity must be one of P1..P4\"}}"}
    assert slept == [] and len(http_listener.requests) == 1


def test_each_visit_has_its_own_idempotency_key_and_a_form_body_is_sent_as_a_form(http_listener: HttpListener) -> None:
    http_listener.response_body = b"accepted"
    http_listener.response_headers = {"Content-Type": "text/plain"}
    first, _ = call({"method": "PUT", "url": f"{http_listener.url}/f", "form": {"a": "1", "b": "x y"}}, visit=1)
    second, _ = call({"method": "PUT", "url": f"{http_listener.url}/f", "form": {"a": "2"}}, visit=2)
    assert first == second == {"status": 200, "json": None, "text": "accepted"}
    assert [(r.method, r.body, r.headers["content-type"]) for r in http_listener.requests] == [
        ("PUT", b"a=1&b=x+y", "application/x-www-form-urlencoded"),
        ("PUT", b"a=2", "application/x-www-form-urlencoded"),
    ]
    assert [r.headers["idempotency-key"] for r in http_listener.requests] == [
        "aftercare:EMR-0007:open-incident:1", "aftercare:EMR-0007:open-incident:2",
    ]


def test_a_connection_refused_is_retried_then_the_steps_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result, slept = call({"method": "GET", "url": f"http://127.0.0.1:{port}/x?token=abc"}, attempts=2)
    assert slept == [1.0]
    assert result["error"].startswith(f"GET http://127.0.0.1:{port}/x: ConnectError: ")
    assert "token=abc" not in result["error"]


def test_a_missing_secret_is_not_sent_nor_retried(http_listener: HttpListener) -> None:
    result, slept = call({"url": f"{http_listener.url}/x", "headers": {"Authorization": "Bearer ${TRACKER_TOKN}"}})
    assert result == {"error": "environment variable TRACKER_TOKN is not set (step 'open-incident' asks for it)"}
    assert slept == [] and http_listener.requests == []


@pytest.mark.parametrize(("given", "problem"), [
    ({"url": "ftp://x"}, "url: String should match pattern '^(https?://|\\$\\{)'"),
    ({"url": "https://x", "json": {}, "form": {}}, "Value error, give json or form, not both"),
])
def test_inputs_the_kind_refuses_are_an_error_without_a_request(given: dict[str, Any], problem: str) -> None:
    assert call(given)[0] == {"error": f"with: does not fit 'http': {problem}"}
