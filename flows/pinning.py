"""Running cases keep the definition they started with, even after the file changes."""

from __future__ import annotations

from aftercare.engine.errors import DefinitionError, NotFoundError
from aftercare.engine.loader import LoadedDefinition, validate_shape
from aftercare.engine.register import CaseRecord, Register
from aftercare.engine.spec import ProcessSpec
from aftercare.engine.yaml_source import parse_yaml


def spec_for_case(register: Register, record: CaseRecord, current: LoadedDefinition) -> ProcessSpec:
    """The spec a case runs: the current file if unchanged, else the text stored when the case opened."""
    if record.definition_hash == current.digest:
        return current.spec
    try:
        text = register.definition_text(record.definition_hash)
    except NotFoundError:
        return current.spec
    document = parse_yaml(text, f"{record.process}@{record.definition_hash}")
    try:
        spec: ProcessSpec = validate_shape(document, ProcessSpec)
    except DefinitionError:
        return current.spec
    return spec


def stored_spec(register: Register, record: CaseRecord) -> ProcessSpec:
    """The spec a case started with, from the text stored in the register.

    Raises:
        NotFoundError: the register has no text for the case's definition.
        DefinitionError: the stored text no longer parses.
    """
    text = register.definition_text(record.definition_hash)
    return validate_shape(parse_yaml(text, f"{record.process}@{record.definition_hash}"), ProcessSpec)  # type: ignore[no-any-return]
