"""A process's declared inputs as typed Prefect flow parameters (the UI's "Run" form)."""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Optional

import pydantic

from aftercare.engine.spec import FieldSpec, ProcessSpec
from aftercare.engine.team import TeamSpec


def choice_enum(name: str, options: Sequence[str]) -> type[enum.Enum]:
    """A str Enum for a choice: the UI shows it as a select, even with one option.

    (A one-value Literal becomes a JSON Schema ``const`` that the UI refuses to submit.)
    """
    return _enum(_title(name), tuple(options))


@lru_cache(maxsize=1024)
def _enum(title: str, options: tuple[str, ...]) -> type[enum.Enum]:
    members = {f"v{index}_{re.sub(r'[^0-9A-Za-z_]', '_', option)}": option for index, option in enumerate(options)}
    return enum.Enum(title, members, type=str)  # type: ignore[return-value]


def _title(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip().capitalize() or name


def python_type(name: str, field: FieldSpec, people: Sequence[str]) -> Any:
    """The Python annotation of a field for pydantic/Prefect."""
    kind = field.type
    if kind == "choice":
        assert field.choices is not None
        return choice_enum(name, field.choices)
    if kind == "person":
        return choice_enum(name, people)
    return {
        "string": str,
        "text": str,
        "integer": int,
        "number": float,
        "boolean": bool,
        "date": dt.date,
        "datetime": dt.datetime,
        "list": list[str],
    }[kind]


def field_info(name: str, field: FieldSpec, people: Sequence[str], annotation: Any) -> tuple[Any, Any]:
    """(annotation, pydantic Field) for one field, optional when not required."""
    default: Any = field.default
    if default is not None and isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        default = annotation(str(default))
    extra: dict[str, Any] = {}
    if field.type == "text":
        extra["format"] = "text"
    if field.type == "person":
        extra["aftercare_type"] = "person"
    description = field.description or ""
    kwargs: dict[str, Any] = {"title": field.title or _title(name), "description": description or None}
    if field.minimum is not None:
        kwargs["ge"] = field.minimum
    if field.maximum is not None:
        kwargs["le"] = field.maximum
    if extra:
        kwargs["json_schema_extra"] = extra
    if default is not None:
        return annotation, pydantic.Field(default=default, **kwargs)
    if not field.required:
        return Optional[annotation], pydantic.Field(default=None, **kwargs)
    return annotation, pydantic.Field(..., **kwargs)


def flow_signature(spec: ProcessSpec, team: TeamSpec) -> inspect.Signature:
    """The flow function's signature: one keyword parameter per declared input."""
    people = list(team.people)
    parameters = []
    for name, field in spec.inputs.items():
        annotation, info = field_info(name, field, people, python_type(name, field, people))
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=info))
    return inspect.Signature(parameters)


def plain_value(value: Any) -> Any:
    """A parameter value as plain JSON-able data (Enums to their value, dates to ISO text)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, pydantic.fields.FieldInfo):
        # The signature's default of a parameter not given: no value for a required one.
        return None if value.is_required() else plain_value(value.get_default(call_default_factory=True))
    if isinstance(value, Mapping):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(item) for item in value]
    return value
