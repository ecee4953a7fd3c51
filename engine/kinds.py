"""Step kinds: the plug-ins ``type: call`` steps run, found through the entry point group ``aftercare.steps``.

A kind is a class from an installed package (never code from YAML) with a pydantic ``Input``,
a pydantic ``Output`` and ``run(self, inputs, context) -> Output``; its entry point's name is
the kind (``call: ledger-post``). Plug-in authors import nothing of Aftercare: the context
they get is duck-typed (:class:`CallContext`), and an exception whose ``retryable`` attribute
is false is not retried. This module finds the kinds, checks ``with:`` against a kind's
``Input`` at load, and runs a call with its retries (:func:`run_call`) for the executor that
does it for real; it does no I/O of its own beyond what the plug-in does.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from .durations import parse_duration
from .errors import NotFoundError, StepError
from .results import call_error, call_result
from .spec import RetrySpec
from .suggest import did_you_mean

ENTRY_POINT_GROUP = "aftercare.steps"
RESERVED_OUTPUTS = frozenset({"error", "visit", "withdrawn"})
"""Names a kind's ``Output`` may not use: a call step's result keeps them for the runtime."""
_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SecretMissing(StepError):
    """A ``${VAR}`` (or ``context.secret(NAME)``) the environment does not set: retrying cannot help."""

    retryable = False


@dataclass(frozen=True)
class CallContext:
    """What a kind's ``run`` gets beside its inputs.

    Attributes:
        case_key: the case (``ISS-0001``).
        step_id: the call step's id.
        visit: which visit of the step (1, 2, ... when a loop comes back).
        attempt: which attempt of this visit (1, 2, ...).
        idempotency_key: the same for every attempt and replay of one visit, different for each visit.
        logger: where the kind logs (the run's log in Prefect).
    """

    case_key: str
    step_id: str
    visit: int
    attempt: int
    idempotency_key: str
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    environ: Mapping[str, str] | None = field(default=None, repr=False)

    def secret(self, name: str) -> str:
        """The environment variable ``name`` (secrets never sit in YAML).

        Raises:
            SecretMissing: the variable is not set (not retried).
        """
        value = (os.environ if self.environ is None else self.environ).get(name)
        if value is None:
            raise SecretMissing(f"environment variable {name} is not set (step {self.step_id!r} asks for it)")
        return value

    def expand(self, text: str) -> str:
        """``text`` with every ``${VAR}`` replaced by :meth:`secret`."""
        return _SECRET.sub(lambda match: self.secret(match.group(1)), text)


def smuggled_secret(written: Any, rendered: Any, at: str = "with") -> str | None:
    """Where a template's output brought a ``${VAR}`` into ``with:`` that the definition's own text does not have.

    ``${VAR}`` reads the environment, so only the definition's author may write one: a case's
    input or an answer that carries ``${DATABASE_PASSWORD}`` into a URL or a header would
    otherwise send that secret away. Returns the place (``with.url``), None when all is well.
    """
    if isinstance(written, dict) and isinstance(rendered, dict):
        for key, value in rendered.items():
            found = smuggled_secret(written.get(key), value, f"{at}.{key}")
            if found:
                return found
        return None
    if isinstance(written, (list, tuple)) and isinstance(rendered, (list, tuple)):
        for index, value in enumerate(rendered):
            found = smuggled_secret(written[index] if index < len(written) else None, value, f"{at}[{index}]")
            if found:
                return found
        return None
    if isinstance(rendered, str) and len(_SECRET.findall(rendered)) > (len(_SECRET.findall(written)) if isinstance(written, str) else 0):
        return at
    return None


def idempotency_key(case_key: str, step_id: str, visit: int) -> str:
    """The key of one visit of a call step: the same on every attempt and replay."""
    return f"aftercare:{case_key}:{step_id}:{visit}"


@dataclass(frozen=True)
class StepKind:
    """An installed kind: its name, the package that provides it, its class and models."""

    name: str
    package: str
    target: str
    """``module:Class`` as the entry point names it."""
    factory: Callable[[], Any]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    description: str

    def inputs(self, given: Mapping[str, Any]) -> BaseModel:
        """``with:`` (rendered) as the kind's ``Input``.

        Raises:
            ValidationError: the values do not fit the model.
        """
        return self.input_model.model_validate(dict(given))

    def output(self, given: Any) -> dict[str, Any]:
        """What ``run`` returned (or a script gave) as the step's output fields, JSON-ready.

        Raises:
            ValidationError: the values do not fit the kind's ``Output``.
        """
        model = given if isinstance(given, self.output_model) else self.output_model.model_validate(given)
        return model.model_dump(mode="json", by_alias=True)  # as templates read them: ``json``, not ``json_body``

    def with_schema(self) -> dict[str, Any]:
        """The JSON Schema of ``with:`` for this kind (the ``Input`` model's)."""
        return self.input_model.model_json_schema(mode="validation")


@dataclass(frozen=True)
class KindRegistry:
    """The kinds found under :data:`ENTRY_POINT_GROUP`, and those that would not load (each with a one-line reason)."""

    kinds: Mapping[str, StepKind]
    broken: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> StepKind:
        """The kind of this name.

        Raises:
            NotFoundError: no such kind installed (the installed ones suggested), or it did not load (why).
        """
        if name in self.kinds:
            return self.kinds[name]
        if name in self.broken:
            raise NotFoundError(self.broken[name])
        raise NotFoundError(f"unknown step kind {name!r}{self.suggestion(name)}")

    def suggestion(self, name: str) -> str:
        """A "did you mean" and the installed kinds, for a kind name not installed."""
        known = sorted({*self.kinds, *self.broken})
        listed = f"; installed: {', '.join(known)}" if known else f"; no step kinds are installed (entry point group {ENTRY_POINT_GROUP})"
        return did_you_mean(name, known) + listed


def load_kinds(points: Iterable[EntryPoint]) -> KindRegistry:
    """Load every entry point as a step kind; one that fails is kept as a reason, never raised."""
    kinds: dict[str, StepKind] = {}
    broken: dict[str, str] = {}
    for point in sorted(points, key=lambda p: p.name):
        package = point.dist.name if point.dist is not None else point.value.split(":")[0].split(".")[0]
        try:
            kinds[point.name] = _kind(point, package)
        except Exception as error:  # noqa: BLE001 - any failure of a plug-in's import is its package's problem, said in one line
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            broken[point.name] = f"step kind {point.name!r} of package {package!r} does not load ({point.value}): {type(error).__name__}: {detail}"
    return KindRegistry(kinds, broken)


def _kind(point: EntryPoint, package: str) -> StepKind:
    target = point.load()
    inputs, outputs = getattr(target, "Input", None), getattr(target, "Output", None)
    if not (isinstance(inputs, type) and issubclass(inputs, BaseModel)):
        raise TypeError(f"{point.value} has no pydantic model Input")
    if not (isinstance(outputs, type) and issubclass(outputs, BaseModel)):
        raise TypeError(f"{point.value} has no pydantic model Output")
    if not callable(getattr(target, "run", None)) or not callable(target):
        raise TypeError(f"{point.value} is not a class with a run(inputs, context) method")
    clash = sorted(RESERVED_OUTPUTS & {info.alias or name for name, info in outputs.model_fields.items()})
    if clash:
        raise TypeError(f"{point.value}.Output has fields {clash}, which a call step's result keeps for itself")
    doc = (getattr(target, "__doc__", None) or "").strip().splitlines()
    return StepKind(point.name, package, point.value, target, inputs, outputs, doc[0] if doc else "")


@lru_cache(maxsize=1)
def installed() -> KindRegistry:
    """The kinds installed in this environment (read once per process; :func:`forget` reads again)."""
    return load_kinds(entry_points(group=ENTRY_POINT_GROUP))


def forget() -> None:
    """Forget the installed kinds (a package was installed since)."""
    installed.cache_clear()


def run_call(
    kind: StepKind,
    given: Mapping[str, Any],
    *,
    case_key: str,
    step_id: str,
    visit: int,
    retry: RetrySpec | None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    sleep: Callable[[float], None] = time.sleep,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run a kind as a call step says: attempts with a doubling delay; the result the step keeps.

    An exception is tried again until ``retry.attempts`` are used, unless its ``retryable``
    attribute is false; inputs that do not fit ``Input`` are not retried. The result is the
    output's fields (:func:`~aftercare.engine.results.call_result`) or the last error's
    message (:func:`~aftercare.engine.results.call_error`), which takes ``on_error``.
    """
    try:
        inputs = kind.inputs(given)
    except ValidationError as error:
        return call_error(f"with: does not fit {kind.name!r}: {first_problem(error)}")
    attempts = retry.attempts if retry is not None else 1
    delay = parse_duration(retry.delay) if retry is not None else timedelta(0)
    key = idempotency_key(case_key, step_id, visit)
    for attempt in range(1, attempts + 1):
        context = CallContext(case_key, step_id, visit, attempt, key, logger, environ)
        try:
            return call_result(kind.output(kind.factory().run(inputs, context)))
        except ValidationError as error:
            message, retryable = f"{kind.name!r} returned an output that does not fit its Output: {first_problem(error)}", False
        except Exception as error:  # noqa: BLE001 - a plug-in may raise anything; the step decides what follows
            message, retryable = str(error) or type(error).__name__, getattr(error, "retryable", True) is not False
        if not retryable or attempt == attempts:
            return call_error(message)
        wait = delay.total_seconds() * 2 ** (attempt - 1)
        logger.warning("step %s attempt %d of %d failed: %s; trying again in %.0f s", step_id, attempt, attempts, message, wait)
        sleep(wait)
    raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover


def first_problem(error: ValidationError) -> str:
    """Pydantic's first complaint in one line: where, then what."""
    item = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in item["loc"])
    return f"{where}: {item['msg']}" if where else str(item["msg"])


__all__ = [
    "ENTRY_POINT_GROUP",
    "CallContext",
    "KindRegistry",
    "SecretMissing",
    "StepKind",
    "first_problem",
    "forget",
    "idempotency_key",
    "installed",
    "load_kinds",
    "run_call",
    "smuggled_secret",
]
