"""The process language as frozen pydantic models: inputs, forms, schedules and steps."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import parse_duration

FIELD_TYPES = ("string", "text", "integer", "number", "boolean", "date", "datetime", "choice", "person", "list")
FieldType = Literal["string", "text", "integer", "number", "boolean", "date", "datetime", "choice", "person", "list"]
IDENTIFIER = r"^[a-z][a-z0-9_-]*$"
KEBAB = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


class SpecModel(BaseModel):
    """Base of every spec model: immutable data, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class FieldSpec(SpecModel):
    """A typed field of a start form (``inputs``) or of a human step's ``form``."""

    type: FieldType = "string"
    title: str | None = None
    description: str | None = None
    required: bool = True
    default: Any = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

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
    active: bool = True

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

    _due = field_validator("due")(_check_duration)


class StepBase(SpecModel):
    """What every step has: an id, an optional title, and where to go next."""

    id: str = Field(pattern=IDENTIFIER)
    title: str | None = None
    description: str | None = None
    next: str | None = None


class HumanStepBase(StepBase):
    """A step a person answers: who may, by when, and what they fill in."""

    assignee: str | tuple[str, ...]
    form: dict[str, FieldSpec] = Field(default_factory=dict)
    due: str | None = None
    escalate_to: str | tuple[str, ...] | None = None
    on_timeout: str | None = None
    remind_every: str | None = None

    _durations = field_validator("due", "remind_every")(_check_duration)

    @field_validator("form")
    @classmethod
    def _form_names(cls, form: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        reserved = {"decision", "comment", "by", "approved_by", "rejected_by", "answered_at", "answers"}
        clash = sorted(reserved & set(form))
        if clash:
            raise ValueError(f"form field names {clash} are reserved for the answer itself")
        return form

    @property
    def assignees(self) -> tuple[str, ...]:
        """The assignee references as a tuple."""
        return (self.assignee,) if isinstance(self.assignee, str) else self.assignee


class ApprovalStep(HumanStepBase):
    """Approve or reject, with a comment and the form's fields; quorum and veto."""

    type: Literal["approval"]
    quorum: int = Field(default=1, ge=1)
    on_reject: str | None = None


class FormStep(HumanStepBase):
    """A person fills in a form; no approve or reject."""

    type: Literal["form"]


class ChecklistItemSpec(SpecModel):
    """One item of a checklist, passed or failed by the inspector."""

    id: str = Field(pattern=IDENTIFIER)
    label: str
    weight: float = Field(default=1.0, gt=0)


class ChecklistStep(HumanStepBase):
    """A quality check: items pass or fail; the score (0-100) is compared to a pass mark."""

    type: Literal["checklist"]
    items: tuple[ChecklistItemSpec, ...] = Field(min_length=1)
    pass_mark: float = Field(default=100, ge=0, le=100)
    on_fail: str | None = None

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
    next: str


class DecisionStep(StepBase):
    """Take the first branch whose ``when`` holds, else ``otherwise``."""

    type: Literal["decision"]
    branches: tuple[BranchSpec, ...] = Field(min_length=1)
    otherwise: str


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


class StartStep(StepBase):
    """Start another process as a linked case (one per item with ``for_each``)."""

    type: Literal["start"]
    process: str = Field(pattern=KEBAB)
    inputs: dict[str, Any] = Field(default_factory=dict)
    for_each: str | None = None


class WaitStep(StepBase):
    """A durable timer: a duration, or until a date or datetime."""

    type: Literal["wait"]
    duration: str | None = None
    until: str | None = None

    _duration = field_validator("duration")(_check_duration)

    @model_validator(mode="after")
    def _one_kind(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait step needs exactly one of 'duration' or 'until'")
        return self


class EndStep(StepBase):
    """Stop the case with an outcome."""

    type: Literal["end"]
    outcome: str = Field(pattern=IDENTIFIER)


StepSpec = Annotated[
    Union[ApprovalStep, FormStep, ChecklistStep, DecisionStep, NotifyStep, RecordStep, StartStep, WaitStep, EndStep],
    Field(discriminator="type"),
]
HumanStep = Union[ApprovalStep, FormStep, ChecklistStep]
STEP_TYPES = ("approval", "form", "checklist", "decision", "notify", "record", "start", "wait", "end")


class ProcessSpec(SpecModel):
    """A process definition: its identity, start form, schedule and steps."""

    process: str = Field(pattern=KEBAB)
    title: str
    version: int = Field(ge=1)
    description: str | None = None
    key: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    tags: tuple[str, ...] = ()
    inputs: dict[str, FieldSpec] = Field(default_factory=dict)
    schedule: ScheduleSpec | None = None
    sla: SlaSpec | None = None
    steps: tuple[StepSpec, ...] = Field(min_length=1)

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


def is_human(step: StepSpec) -> bool:
    """Whether a person answers this step."""
    return isinstance(step, (ApprovalStep, FormStep, ChecklistStep))
