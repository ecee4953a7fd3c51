"""The JSON Schema of the process language, for editors."""

from __future__ import annotations

from typing import Any

from .spec import ProcessSpec

SCHEMA_ID = "https://aftercare.dev/schema/process-v1.json"


def process_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) that validates a definition file."""
    schema = ProcessSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Aftercare process definition"
    return schema
