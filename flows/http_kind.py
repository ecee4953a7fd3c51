"""The built-in ``http`` step kind: one HTTP request with httpx, registered like any plug-in (entry point ``aftercare.steps``).

It imports nothing of Aftercare, as a plug-in need not: ``context`` gives the idempotency key
(sent as ``Idempotency-Key``, the same on every attempt and replay of one visit) and
``${VAR}`` secrets from the environment, expanded in the URL and the headers' values.
Connection errors, timeouts and 5xx answers raise a retryable error (the step's ``retry``
says how often); a 4xx answer raises one that is not retried.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TEXT_KEPT = 10_000
"""How much of a response's text the step keeps (its result is stored in the register)."""


class HttpError(Exception):
    """The request failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class HttpKind:
    """Send one HTTP request; the answer's status, JSON body and text are the step's output."""

    class Input(BaseModel):
        """``with:`` of an ``http`` step."""

        model_config = ConfigDict(extra="forbid", populate_by_name=True)

        method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
        url: str = Field(pattern=r"^(https?://|\$\{)", description="http(s) URL; ${VAR} is taken from the environment")
        headers: dict[str, str] = Field(default_factory=dict, description="values may hold ${VAR} from the environment")
        json_body: Any = Field(default=None, alias="json", description="a JSON body")
        form: dict[str, str] | None = Field(default=None, description="a form-encoded body")
        timeout: float = Field(default=10.0, gt=0, le=300, description="seconds")

        @model_validator(mode="after")
        def _one_body(self) -> HttpKind.Input:
            if self.json_body is not None and self.form is not None:
                raise ValueError("give json or form, not both")
            return self

    class Output(BaseModel):
        """What an ``http`` step leaves: ``STEP.status``, ``STEP.json``, ``STEP.text``."""

        model_config = ConfigDict(populate_by_name=True)

        status: int
        json_body: Any = Field(default=None, alias="json")
        text: str = ""

    def run(self, inputs: Input, context: Any) -> Output:
        """One attempt: the request, then its answer or a (retryable or not) error."""
        url = _expand(inputs.url, context)
        headers = {name: _expand(value, context) for name, value in inputs.headers.items()}
        if not any(name.lower() == "idempotency-key" for name in headers):
            headers["Idempotency-Key"] = context.idempotency_key
        try:
            response = httpx.request(
                inputs.method, url, headers=headers, json=inputs.json_body, data=inputs.form, timeout=inputs.timeout
            )
        except httpx.TimeoutException as error:
            raise HttpError(f"{inputs.method} {_shown(url)}: no answer within {inputs.timeout:g} s ({type(error).__name__})", retryable=True) from error
        except httpx.TransportError as error:
            raise HttpError(f"{inputs.method} {_shown(url)}: {type(error).__name__}: {error}", retryable=True) from error
        if response.status_code >= 400:
            raise HttpError(
                f"{inputs.method} {_shown(url)} answered {response.status_code} {response.reason_phrase}: {response.text[:200]}",
                retryable=response.status_code >= 500,
            )
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return self.Output(status=response.status_code, json_body=body, text=response.text[:_TEXT_KEPT])


def _expand(text: str, context: Any) -> str:
    return _SECRET.sub(lambda match: str(context.secret(match.group(1))), text)


def _shown(url: str) -> str:
    """A URL as an error message shows it: without its query (which may carry a token)."""
    return url.split("?", 1)[0]


__all__ = ["HttpError", "HttpKind"]
