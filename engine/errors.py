"""The exception tree of Aftercare: one base, one branch per kind of failure."""

from __future__ import annotations

from dataclasses import dataclass


class AftercareError(Exception):
    """Base of every error Aftercare raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a definition file, pointing at the input.

    Attributes:
        file: the file's path as the user gave it.
        line: 1-based line, 0 when unknown.
        column: 1-based column, 0 when unknown.
        path: the field path, such as ``steps[2].next``.
        message: what is wrong and what would be right.
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class DefinitionError(AftercareError, ValueError):
    """A definition or team file is malformed; carries every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class AnswerError(AftercareError, ValueError):
    """An answer the step refuses: a person it does not name, or a bad value."""


class StepError(AftercareError, RuntimeError):
    """A step failed at run time (a template, the register, a channel); wraps the cause."""


class RegisterError(AftercareError, RuntimeError):
    """The register refused or could not do an operation."""


class NotFoundError(AftercareError, LookupError):
    """A case, step, process or message that does not exist."""


class ConfigurationError(AftercareError, ValueError):
    """An environment variable of Aftercare's configuration has a value it cannot use."""


class CaseCancelled(AftercareError):
    """A run found its case cancelled: it stops, and its flow run stays Cancelled (not failed)."""
