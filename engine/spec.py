"""The process language as frozen pydantic models: inputs, forms, schedules and steps."""

from __future__ import annotations

import keyword
import re
from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator
from pydantic.config import JsonDict

from .durations import check_duration, parse_duration

FIELD_TYPES = ("string", "text", "integer", "number", "boolean", "date", "datetime", "choice", "person", "list")
FieldType = Literal["string", "text", "integer", "number", "boolean", "date", "datetime", "choice", "person", "list"]
IDENTIFIER = r"^[a-z][a-z0-9_-]*$"
KEBAB = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
MAX_INT = 2**31 - 1
"""The largest version or quorum: what the register's integer columns hold on every database."""
FIELD_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
"""An input or form field name: templates read it as ``inputs.NAME`` or ``step.NAME``, the flow as a
keyword parameter, the Prefect UI as a field of a pydantic model."""
MODEL_ATTRIBUTES = frozenset(name for name in dir(BaseModel) if not name.startswith("_"))
"""The attributes of the pydantic model a form becomes (``json``, ``copy``, ``model_dump``...): no field may shadow them."""
_JINJA_LITERALS = ("true", "false", "none")


def _field_name(name: str) -> str:
    """An input or form field name must be an identifier the flow's parameters, forms and templates can use."""
    if not re.match(FIELD_NAME, name) or not name.isascii():
        plain = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
        plain = f"n_{plain}" if plain[:1].isdigit() else plain
        hint = f"; did you mean {plain!r}?" if plain and re.match(FIELD_NAME, plain) and plain.isascii() else ""
        shown = repr(name) if len(name) <= 40 else repr(name[:37]) + "..."
        raise ValueError(f"field name {shown} is not an identifier: a letter, then letters, digits or '_' (no spaces, no '-'){hint}")
    if keyword.iskeyword(name) or name.lower() in _JINJA_LITERALS:
        raise ValueError(
            f"field name {name!r} is a Python keyword or a Jinja literal: the process's parameters and forms cannot use it; did you mean '{name}_'?"
        )
    if name in MODEL_ATTRIBUTES or name.startswith("model_"):
        raise ValueError(f"field name {name!r} is reserved: the form a person fills in has an attribute of that name; choose another, such as '{name}_value'")
    return name


FieldName = Annotated[str, AfterValidator(_field_name)]
_FIELD_NAMES_SCHEMA: JsonDict = {"propertyNames": {"pattern": FIELD_NAME}}


def _step_ref(target: str) -> str:
    if not target.strip():
        raise ValueError("an empty step id; name the step to go to, or leave the field out")
    return target


StepRef = Annotated[str, AfterValidator(_step_ref)]
"""Where a step goes (``next``, ``on_reject``, a branch...): a step id, checked against the steps by the second pass."""


class SpecModel(BaseModel):
    """Base of every spec model: immutable data, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _check_any_duration(value: str | None) -> str | None:
    """A duration that may count working time (``4bh``, ``2bd``): ``due``, ``sla.due``, ``remind_every``, ``wait.duration``."""
    if value is not None:
        check_duration(value)
    return value


References = str | tuple[str, ...]


def _someone(field: str, *, optional: bool = False) -> Any:
    """A validator: the references of ``field`` (assignee, escalate_to) name someone, not nothing."""
    what = "role:NAME, person:NAME or a template giving a person" + (", or leave it out" if optional else "")

    def check(value: References | None) -> References | None:
        if value is None:
            return value
        references = (value,) if isinstance(value, str) else value
        if not references:
            raise ValueError(f"{field} is an empty list; name who: {what}")
        if any(not reference.strip() for reference in references):
            raise ValueError(f"{field} is empty; name who: {what}")
        return value

    return check


class FieldSpec(SpecModel):
    """A typed field of a start form (``inputs``) or of a human step's ``form``."""

    type: FieldType = "string"
    title: str | None = None
    description: str | None = None
    required: StrictBool = True
    default: Any = None
    choices: tuple[str, ...] | None = None
    minimum: StrictFloat | None = None
    maximum: StrictFloat | None = None

    @model_validator(mode="after")
    def _choices_fit_type(self) -> FieldSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice field needs 'choices', a list of at least one option")
        if self.type != "choice" and self.choices is not None:
            raise ValueError(f"'choices' is only for type choice, not {self.type}")
        if self.type == "choice" and self.choices and len(set(self.choices)) != len(self.choices):
            raise ValueError("choices must be distinct")
        return self

    @property
    def optional(self) -> bool:
        """Whether the field may be left empty."""
        return not self.required or self.default is not None


class ScheduleSpec(SpecModel):
    """When a recurring process starts by itself, and with which inputs."""

    cron: str | None = None
    interval: str | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)
    active: StrictBool = True

    _interval = field_validator("interval")(_check_duration)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ScheduleSpec:
        given = [name for name in ("cron", "interval", "rrule") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a schedule needs exactly one of cron, interval or rrule, got {given or 'none'}")
        return self


class SlaSpec(SpecModel):
    """A whole-case deadline, escalated when breached."""

    due: str
    escalate_to: str | tuple[str, ...] | None = None
    pause_while: tuple[str, ...] = ()
    """Steps at which the case's clock stops while it waits there (waiting on the customer)."""

    _due = field_validator("due")(_check_any_duration)
    _escalate_to = field_validator("escalate_to")(_someone("escalate_to", optional=True))


class StepBase(SpecModel):
    """What every step has: an id, an optional title, and where to go next."""

    id: str = Field(pattern=IDENTIFIER)
    title: str | None = None
    description: str | None = None
    next: StepRef | None = None


WaitFor = Literal["all", "any"] | Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
"""How many of several things a step or join waits for: ``all``, ``any`` (the first) or a number."""


def needed(wait: str | int | None, started: int) -> int:
    """How many of ``started`` branches, instances or cases must finish: ``all``, ``any`` or N (at most all)."""
    if wait is None or wait == "all":
        return started
    if wait == "any":
        return min(1, started)
    return min(int(wait), started)


class HumanStepBase(StepBase):
    """A step a person answers: who may, by when, and what they fill in.

    With ``for_each`` it has one instance per item (``item`` in its templates), each answered
    on its own; ``wait`` says how many must be answered (the rest are withdrawn).
    """

    assignee: str | tuple[str, ...]
    for_each: str | None = None
    wait: WaitFor | None = None
    form: dict[FieldName, FieldSpec] = Field(default_factory=dict, json_schema_extra=_FIELD_NAMES_SCHEMA)
    due: str | None = None
    escalate_to: str | tuple[str, ...] | None = None
    on_timeout: StepRef | None = None
    remind_every: str | None = None

    _durations = field_validator("due", "remind_every")(_check_any_duration)
    _assignee = field_validator("assignee")(_someone("assignee"))
    _escalate_to = field_validator("escalate_to")(_someone("escalate_to", optional=True))

    @field_validator("form")
    @classmethod
    def _form_names(cls, form: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        # the answer's own fields, and the form's "Answering as" and "Answer code" (flows/run_input.py)
        reserved = {"decision", "comment", "by", "approved_by", "rejected_by", "answered_at", "answers", "answering_as", "answer_code"}
        clash = sorted(reserved & set(form))
        if clash:
            raise ValueError(f"form field names {clash} are reserved for the answer itself")
        return form

    @property
    def assignees(self) -> tuple[str, ...]:
        """The assignee references as a tuple."""
        return (self.assignee,) if isinstance(self.assignee, str) else self.assignee

    @model_validator(mode="after")
    def _wait_needs_for_each(self) -> HumanStepBase:
        if self.wait is not None and self.for_each is None:
            raise ValueError("'wait' is for a step with for_each (how many instances must be answered); add for_each or leave wait out")
        return self


class ApprovalStep(HumanStepBase):
    """Approve or reject, with a comment and the form's fields; quorum and veto."""

    type: Literal["approval"]
    quorum: StrictInt = Field(default=1, ge=1, le=MAX_INT)
    on_reject: StepRef | None = None


class FormStep(HumanStepBase):
    """A person fills in a form; no approve or reject."""

    type: Literal["form"]


class ChecklistItemSpec(SpecModel):
    """One item of a checklist, passed or failed by the inspector."""

    id: str = Field(pattern=IDENTIFIER)
    label: str
    weight: StrictFloat = Field(default=1.0, gt=0)


class ChecklistStep(HumanStepBase):
    """A quality check: items pass or fail; the score (0-100) is compared to a pass mark."""

    type: Literal["checklist"]
    items: tuple[ChecklistItemSpec, ...] = Field(min_length=1)
    pass_mark: StrictFloat = Field(default=100, ge=0, le=100)
    on_fail: StepRef | None = None

    @field_validator("items")
    @classmethod
    def _unique_items(cls, items: tuple[ChecklistItemSpec, ...]) -> tuple[ChecklistItemSpec, ...]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"checklist item id {item.id!r} appears twice")
            seen.add(item.id)
        return items


class BranchSpec(SpecModel):
    """One branch of a decision: taken when its expression holds."""

    when: str
    next: StepRef


class DecisionStep(StepBase):
    """Take the first branch whose ``when`` holds, else ``otherwise``; with ``mode: all``, every such branch, in parallel."""

    type: Literal["decision"]
    mode: Literal["first", "all"] = "first"
    branches: tuple[BranchSpec, ...] = Field(min_length=1)
    otherwise: StepRef

    @property
    def splits(self) -> bool:
        """Whether the decision starts branches in parallel (``mode: all``), which meet at a join."""
        return self.mode == "all"


class ParallelStep(StepBase):
    """Start every branch at once; they meet again at a join."""

    type: Literal["parallel"]
    branches: tuple[StepRef, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _no_next(self) -> ParallelStep:
        if self.next is not None:
            raise ValueError("a parallel step goes to its branches, not to 'next'; its join's next says where the case goes after")
        if len(set(self.branches)) != len(self.branches):
            raise ValueError("a parallel step's branches must be distinct steps")
        return self


class JoinStep(StepBase):
    """Where a split's branches meet: waits for all of those that started, the first, or N."""

    type: Literal["join"]
    wait: WaitFor = "all"


class NotifyStep(StepBase):
    """Send a message to people, roles or channels."""

    type: Literal["notify"]
    to: tuple[str, ...] = Field(min_length=1)
    template: str | None = None
    subject: str | None = None
    message: str | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _template_or_message(self) -> NotifyStep:
        if (self.template is None) == (self.message is None):
            raise ValueError("a notify step needs exactly one of 'template' or 'message'")
        return self


class RecordStep(StepBase):
    """Write case fields (and ``status``) in the register."""

    type: Literal["record"]
    set: dict[str, Any] = Field(min_length=1)

    @field_validator("set", mode="before")
    @classmethod
    def _dates_as_text(cls, value: Any) -> Any:
        """A YAML date (``2026-01-31`` unquoted) is written as ISO text, as the register keeps it."""
        return _iso_dates(value)


class StartStep(StepBase):
    """Start another process as a linked case (one per item with ``for_each``)."""

    type: Literal["start"]
    process: str = Field(pattern=KEBAB)
    inputs: dict[str, Any] = Field(default_factory=dict)
    for_each: str | None = None
    wait: WaitFor | None = None
    """Omitted: the linked cases are not waited for (v1); all, any or N: the step waits for them to end."""


class WaitStep(StepBase):
    """A durable timer: a duration, or until a date or datetime."""

    type: Literal["wait"]
    duration: str | None = None
    until: str | None = None

    _duration = field_validator("duration")(_check_any_duration)

    @field_validator("until", mode="before")
    @classmethod
    def _date_as_text(cls, value: Any) -> Any:
        """``until: 2026-03-01`` unquoted is a YAML date; it means the same as the quoted text."""
        return value.isoformat() if isinstance(value, date) else value

    @model_validator(mode="after")
    def _one_kind(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait step needs exactly one of 'duration' or 'until'")
        return self


class RetrySpec(SpecModel):
    """How often a ``call`` step tries its plug-in, and how long it waits before the second try (doubled each time)."""

    attempts: StrictInt = Field(default=1, ge=1, le=20)
    delay: str = "1s"

    _delay = field_validator("delay")(_check_duration)


class CallStep(StepBase):
    """Run a step kind from an installed package (entry point group ``aftercare.steps``) with ``with:`` as its inputs."""

    type: Literal["call"]
    call: str = Field(min_length=1, description="the step kind: an entry point name of the group aftercare.steps")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="the kind's inputs; templates allowed")
    retry: RetrySpec | None = None
    on_error: StepRef | None = None
    """Where the case goes when the last attempt failed (``STEP.error`` holds the message); without it the case ends ``failed``."""

    @field_validator("with_", mode="before")
    @classmethod
    def _dates_as_text(cls, value: Any) -> Any:
        """A YAML date (``2026-01-31`` unquoted) is the ISO text it was written as."""
        return _iso_dates(value)


class EndStep(StepBase):
    """Stop the case with an outcome."""

    type: Literal["end"]
    outcome: str = Field(pattern=IDENTIFIER)


StepSpec = Annotated[
    Union[ApprovalStep, FormStep, ChecklistStep, DecisionStep, ParallelStep, JoinStep, NotifyStep, RecordStep, StartStep, WaitStep, CallStep, EndStep],
    Field(discriminator="type"),
]
HumanStep = Union[ApprovalStep, FormStep, ChecklistStep]
STEP_TYPES = ("approval", "form", "checklist", "decision", "parallel", "join", "notify", "record", "start", "wait", "call", "end")


class ProcessSpec(SpecModel):
    """A process definition: its identity, start form, schedule and steps."""

    process: str = Field(pattern=KEBAB)
    title: str
    version: StrictInt = Field(ge=1, le=MAX_INT)
    description: str | None = None
    key: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    tags: tuple[str, ...] = ()
    inputs: dict[FieldName, FieldSpec] = Field(default_factory=dict, json_schema_extra=_FIELD_NAMES_SCHEMA)
    schedule: ScheduleSpec | None = None
    sla: SlaSpec | None = None
    calendar: str | None = None
    """The team's business calendar ``4bh`` and ``2bd`` count on; without it, the team's default."""
    cancel_by: tuple[str, ...] = ()
    """Who may cancel a case (``role:NAME``, ``person:NAME``); empty: any person of the team."""
    steps: tuple[StepSpec, ...] = Field(min_length=1)

    @field_validator("cancel_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def step(self, step_id: str) -> StepSpec:
        """The step with this id (KeyError if none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        """The position of a step in ``steps``."""
        for position, step in enumerate(self.steps):
            if step.id == step_id:
                return position
        raise KeyError(step_id)

    @property
    def step_ids(self) -> tuple[str, ...]:
        """Every step id in order."""
        return tuple(step.id for step in self.steps)


def _iso_dates(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _iso_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_iso_dates(item) for item in value]
    return value


def is_human(step: StepSpec) -> bool:
    """Whether a person answers this step."""
    return isinstance(step, (ApprovalStep, FormStep, ChecklistStep))


def is_split(step: StepSpec) -> bool:
    """Whether a step starts branches that meet at a join (a parallel, a ``mode: all`` decision)."""
    return isinstance(step, ParallelStep) or (isinstance(step, DecisionStep) and step.splits)
