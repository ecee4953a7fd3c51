"""The team file: people, their channels, and roles; resolving assignee references."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PERSON_ID = r"^[a-z][a-z0-9._-]*$"


class PersonSpec(BaseModel):
    """A person: display name, e-mail, the channels to reach them, and their language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    email: str | None = None
    notify: tuple[str, ...] = ("email",)
    locale: Literal["en", "zh"] = "en"
    title: str | None = None


class RoleSpec(BaseModel):
    """A role: its members and, optionally, channels of its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    members: tuple[str, ...] = Field(min_length=1)
    notify: tuple[str, ...] = ()
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _list_is_members(cls, value: Any) -> Any:
        return {"members": value} if isinstance(value, (list, tuple)) else value


class TeamBody(BaseModel):
    """The body under ``team:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    people: dict[str, PersonSpec] = Field(min_length=1)
    roles: dict[str, RoleSpec] = Field(default_factory=dict)


class TeamSpec(BaseModel):
    """A team file: ``team: {people: ..., roles: ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    team: TeamBody

    @property
    def people(self) -> dict[str, PersonSpec]:
        """People by id."""
        return self.team.people

    @property
    def roles(self) -> dict[str, RoleSpec]:
        """Roles by name."""
        return self.team.roles

    def members(self, reference: str) -> tuple[str, ...]:
        """The people a rendered reference names: ``role:X`` or ``person:X`` (or a bare id).

        Raises:
            KeyError: the role or person does not exist.
        """
        kind, _, name = reference.partition(":")
        if not name:
            kind, name = "person", reference
        name = name.strip()
        if kind == "role":
            return self.roles[name].members
        if kind == "person":
            if name not in self.people:
                raise KeyError(name)
            return (name,)
        raise KeyError(reference)

    def display(self, person: str) -> str:
        """A person's name for messages, their id when unknown."""
        spec = self.people.get(person)
        return spec.name if spec else person
