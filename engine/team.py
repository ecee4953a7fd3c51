"""The team file: people, their channels, and roles; resolving assignee references."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .schedule_rules import cron_problem, timezone_problem
from .suggest import did_you_mean

PERSON_ID = r"^[a-z][a-z0-9._-]*$"
EMAIL = "email"
CONSOLE = "console"
CHANNEL_NAMES = (EMAIL, CONSOLE)
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_VARIABLE = re.compile(r"\$\{[^}]*\}")


@lru_cache(maxsize=1)
def apprise_schemes() -> frozenset[str]:
    """The URL schemes Apprise knows (``slack``, ``json``, ``dingtalk``...), asked of Apprise itself, offline."""
    from apprise.manager_plugins import NotificationManager

    return frozenset(str(scheme).lower() for scheme in NotificationManager().schemas())  # type: ignore[no-untyped-call]


def channel_problem(entry: str) -> str | None:
    """What is wrong with a channel (a ``notify`` entry or a channel a step sends to), None when it is one.

    A channel is ``email``, ``console``, or an Apprise URL whose scheme Apprise knows; a
    ``${VAR}`` is filled in from the environment when a message is sent, so a scheme that
    comes from a variable is taken on trust.
    """
    text = entry.strip()
    if text in CHANNEL_NAMES:
        return None
    shown = repr(entry) if len(entry) <= 60 else repr(entry[:57]) + "..."
    allowed = "email, console or an Apprise URL such as slack://TOKEN_A/TOKEN_B/TOKEN_C"
    scheme, separator, _ = text.partition("://")
    if separator:
        if _VARIABLE.search(scheme):
            return None
        if scheme.lower() not in apprise_schemes():
            close = did_you_mean(scheme.lower(), sorted(apprise_schemes()))
            hint = close or f"; write {allowed} (the schemes: https://github.com/caronc/apprise/wiki)"
            return f"{shown}: Apprise knows no scheme {scheme + '://'!r}{hint}"
        return None
    if _VARIABLE.fullmatch(text):
        return None  # the whole URL from the environment
    if text.lower() in apprise_schemes():
        return f"{shown} is not a channel; write {text.lower()}://... (an Apprise URL), {EMAIL} or {CONSOLE}"
    return f"{shown} is not a channel; write {allowed}{did_you_mean(text, CHANNEL_NAMES)}"


def _channel(entry: str) -> str:
    problem = channel_problem(entry)
    if problem:
        raise ValueError(problem)
    return entry


def _address(email: str | None) -> str | None:
    if email is not None and not _ADDRESS.match(email.strip()):
        shown = repr(email) if len(email) <= 60 else repr(email[:57]) + "..."
        raise ValueError(f"{shown} is not an e-mail address; write NAME@DOMAIN, such as li.na@example.com")
    return email


Channel = Annotated[str, AfterValidator(_channel)]


class PersonSpec(BaseModel):
    """A person: display name, e-mail, the channels to reach them, and their language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    email: Annotated[str | None, AfterValidator(_address)] = None
    notify: tuple[Channel, ...] = (EMAIL,)
    locale: Literal["en", "zh"] = "en"
    title: str | None = None

    @model_validator(mode="after")
    def _mail_needs_an_address(self) -> PersonSpec:
        if self.email is None and any(entry.strip() == EMAIL for entry in self.notify):
            said = "notify names email" if "notify" in self.model_fields_set else "notify defaults to [email]"
            raise ValueError(f"no email, but {said}; add email: ADDRESS, or notify: [console] or an Apprise URL")
        return self


class RoleSpec(BaseModel):
    """A role: its members and, optionally, channels of its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    members: tuple[str, ...] = Field(min_length=1)
    notify: tuple[Channel, ...] = ()
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _list_is_members(cls, value: Any) -> Any:
        return {"members": value} if isinstance(value, (list, tuple)) else value


DIGEST_CRON = "0 9 * * MON"
"""When the weekly digest goes out unless ``digest.schedule`` says: Monday 09:00."""
DIGEST_ROLES = ("management", "project-manager")
"""Who gets the digest unless ``digest.to`` says: the first of these roles the team has."""


def _cron(text: str) -> str:
    problem = cron_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _timezone(name: str | None) -> str | None:
    problem = timezone_problem(name) if name is not None else None
    if problem:
        raise ValueError(problem)
    return name


def _reference(text: str) -> str:
    kind, separator, name = text.partition(":")
    if not separator or kind not in ("role", "person") or not name.strip():
        raise ValueError(f"{text!r} is not a recipient; write role:NAME or person:ID{did_you_mean(kind, ('role', 'person')) if separator else ''}")
    return text


class DigestSpec(BaseModel):
    """The weekly digest: when it goes out (a cron in a timezone) and to whom.

    Omitted parts have defaults (docs/digest.md): :data:`DIGEST_CRON`, the
    timezone of the folder's first scheduled definition (else UTC), the first role of
    :data:`DIGEST_ROLES` the team has.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: Annotated[str, AfterValidator(_cron)] = DIGEST_CRON
    timezone: Annotated[str | None, AfterValidator(_timezone)] = None
    to: tuple[Annotated[str, AfterValidator(_reference)], ...] | None = None


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_DAYS_HINT = "write mon, tue, wed, thu, fri, sat or sun, a range such as mon-fri, or days joined by ',' such as sat,sun"


def weekdays_of(key: str) -> tuple[int, ...]:
    """The weekdays (0 Monday) an ``hours`` key names: ``mon``, ``mon-fri``, ``sat,sun``.

    Raises:
        ValueError: an unknown weekday, or a range that runs backwards.
    """
    days: list[int] = []
    for part in key.split(","):
        first, dash, last = part.strip().lower().partition("-")
        for name in (first, last) if dash else (first,):
            if name not in WEEKDAYS:
                where = f" in {key!r}" if key.strip() != name else ""
                raise ValueError(f"unknown weekday {name!r}{where}{did_you_mean(name, WEEKDAYS)}; {_DAYS_HINT}")
        begin, end = WEEKDAYS.index(first), WEEKDAYS.index(last if dash else first)
        if end < begin:
            raise ValueError(f"{part.strip()!r} runs backwards; write the earlier day first, such as mon-fri")
        days.extend(range(begin, end + 1))
    return tuple(days)


def hour_range(text: str) -> tuple[int, int]:
    """Minutes from midnight of ``HH:MM-HH:MM`` (``24:00`` ends a day).

    Raises:
        ValueError: not two times of day, or the second not after the first.
    """
    first, dash, last = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not a range of hours; write HH:MM-HH:MM, such as 09:00-12:00")
    minutes = []
    for part in (first.strip(), last.strip()):
        found = _TIME.match(part)
        hour, minute = (int(found.group(1)), int(found.group(2))) if found else (-1, -1)
        if not (0 <= hour < 24 and 0 <= minute < 60) and (hour, minute) != (24, 0):
            raise ValueError(f"{part!r} in {text!r} is not a time of day; write HH:MM from 00:00 to 24:00")
        minutes.append(hour * 60 + minute)
    if minutes[1] <= minutes[0]:
        raise ValueError(f"{text!r} ends before it begins; write the earlier time first, such as 09:00-12:00")
    return minutes[0], minutes[1]


def repeated_weekdays(keys: list[str]) -> list[tuple[int, str]]:
    """The ``hours`` keys (by position) that name a weekday an earlier key named, with what to say."""
    seen: dict[int, str] = {}
    out: list[tuple[int, str]] = []
    for index, key in enumerate(keys):
        try:
            days = weekdays_of(key)
        except ValueError:
            continue  # said where the key is checked
        again = [day for day in days if day in seen]
        if again:
            out.append((index, f"{WEEKDAYS[again[0]]} is in both {seen[again[0]]!r} and {key!r}; give each weekday once"))
        seen.update((day, key) for day in days if day not in seen)
    return out


def _weekdays(key: str) -> str:
    weekdays_of(key)
    return key


def _ranges(texts: tuple[str, ...]) -> tuple[str, ...]:
    if not texts:
        raise ValueError("no ranges; leave a day out to close it, or write HH:MM-HH:MM such as 09:00-18:00")
    spans = sorted((hour_range(text), text) for text in texts)
    for (earlier, first), (later, second) in zip(spans, spans[1:]):
        if later[0] < earlier[1]:
            raise ValueError(f"{first!r} and {second!r} overlap; a day's working hours are separate ranges, such as 09:00-12:00 and 13:30-18:00")
    return texts


def _hour_range(text: str) -> str:
    hour_range(text)
    return text


HourRange = Annotated[str, AfterValidator(_hour_range)]
Weekdays = Annotated[str, AfterValidator(_weekdays)]


def _country(code: str | None) -> str | None:
    """A country the ``holidays`` package knows (imported late: the package is large)."""
    if code is None:
        return code
    from .holiday_data import unknown_country

    problem = unknown_country(code)
    if problem:
        raise ValueError(problem)
    return code


class CalendarSpec(BaseModel):
    """A business calendar: working hours per weekday (with breaks) in a time zone, holidays, closed and open days."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: Annotated[str, AfterValidator(_timezone)]
    hours: dict[Weekdays, Annotated[tuple[HourRange, ...], AfterValidator(_ranges)]] = Field(min_length=1)
    closed: tuple[date, ...] = ()
    open: tuple[date, ...] = ()
    holidays: Annotated[str | None, AfterValidator(_country)] = None
    """After ``open``: a year the holiday data lacks is covered by the team's own ``open:`` days of that year."""

    @field_validator("holidays")
    @classmethod
    def _covers_this_year(cls, code: str | None, info: ValidationInfo) -> str | None:
        """The holiday data covers the current year, or the team entered that year's working days itself (``open:``)."""
        from .clock import utc_now
        from .holiday_data import holiday_problem

        year = utc_now().year
        if code is None or any(day.year == year for day in info.data.get("open", ())):
            return code
        problem = holiday_problem(code, year)
        if problem:
            raise ValueError(problem)
        return code

    @model_validator(mode="after")
    def _days_apart(self) -> CalendarSpec:
        both = sorted(set(self.closed) & set(self.open))
        if both:
            raise ValueError(f"{both[0].isoformat()} is both closed and open; keep it in one list")
        return self


class TeamBody(BaseModel):
    """The body under ``team:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    people: dict[str, PersonSpec] = Field(min_length=1)
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    digest: DigestSpec | None = None
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    calendar: str | None = None
    """The calendar of every process of the folder that names none (``calendars``' key)."""
    answer_codes: bool = True
    """Every waiting message carries a personal answer code the Prefect UI's form asks for (docs/people.md)."""


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

    @property
    def answer_codes(self) -> bool:
        """Whether answers in the Prefect UI need the personal code of the waiting message (``team: {answer_codes: false}`` turns it off)."""
        return self.team.answer_codes

    @property
    def digest(self) -> DigestSpec:
        """The weekly digest as the file says, its defaults filled in later (:meth:`digest_recipients`)."""
        return self.team.digest or DigestSpec()

    def digest_recipients(self) -> tuple[str, ...]:
        """Who gets the weekly digest: ``digest.to``, else the first role of :data:`DIGEST_ROLES` the team has (none: nobody)."""
        given = self.digest.to
        if given is not None:
            return given
        return next((("role:" + role,) for role in DIGEST_ROLES if role in self.roles), ())

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
