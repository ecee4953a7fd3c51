"""The JSON Schema of the process language, for editors; with the installed step kinds' ``with:`` when given."""

from __future__ import annotations

from typing import Any

from .kinds import KindRegistry
from .spec import ProcessSpec

SCHEMA_ID = "https://aftercare.dev/schema/process-v1.json"
TEMPLATE_PATTERN = r"\{\{|\{%"
"""A value holding a template: its type is known only when the case runs."""


def process_schema(step_kinds: KindRegistry | None = None) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) that validates a definition file.

    Args:
        step_kinds: kinds whose ``with:`` the schema describes for ``call: KIND`` steps, so
            editors complete and check it (a value may always be a template).
    """
    schema = ProcessSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Aftercare process definition"
    if step_kinds is not None and step_kinds.kinds:
        _with_schemas(schema, step_kinds)
    return schema


def _with_schemas(schema: dict[str, Any], step_kinds: KindRegistry) -> None:
    """``call: KIND`` steps get KIND's ``with:`` schema (its models under ``$defs`` as ``kind-KIND-...``)."""
    definitions: dict[str, Any] = schema["$defs"]
    call = definitions["CallStep"]
    rules = []
    for name, kind in sorted(step_kinds.kinds.items()):
        prefix = f"kind-{name}-"
        given = kind.input_model.model_json_schema(mode="validation", ref_template="#/$defs/" + prefix + "{model}")
        for model, definition in given.pop("$defs", {}).items():
            definitions[prefix + model] = definition
        for field, property_schema in list(given.get("properties", {}).items()):
            given["properties"][field] = {"anyOf": [property_schema, {"type": "string", "pattern": TEMPLATE_PATTERN}]}
        definitions[prefix + "with"] = given
        rules.append({
            "if": {"properties": {"call": {"const": name}}, "required": ["call"]},
            "then": {"properties": {"with": {"$ref": f"#/$defs/{prefix}with"}}},
        })
    call["allOf"] = rules
    call["properties"]["call"]["examples"] = sorted(step_kinds.kinds)
