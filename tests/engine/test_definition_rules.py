"""Rules of the language checked at load, one by one: names, dates, schedules, channels, strict types."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aftercare.engine.errors import DefinitionError
from aftercare.engine.library import check_definition
from aftercare.engine.loader import load_team, validate_shape
from aftercare.engine.spec import ProcessSpec, RecordStep, WaitStep
from aftercare.engine.team import TeamSpec, channel_problem
from aftercare.engine.yaml_source import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
TEAM = load_team(ROOT / "tests" / "data" / "valid" / "team.yaml")


def definition(body: str, head: str = "") -> str:
    return f"process: rules\ntitle: Rules\nversion: 1\nkey: RUL\n{head}steps:\n{body}  - {{id: done, type: end, outcome: done}}\n"


def problems(text: str) -> list[str]:
    """Every problem of a definition checked against tests/data/valid/team.yaml, as ``path: message``."""
    try:
        check_definition(parse_yaml(text, "rules.yaml"), TEAM, {})
    except DefinitionError as error:
        return [f"{p.path}: {p.message}" for p in error.problems]
    return []


class TestFieldNames:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("due date!", "field name 'due date!' is not an identifier: a letter, then letters, digits or '_' (no spaces, no '-'); did you mean 'due_date'?"),
            ("from", "field name 'from' is a Python keyword or a Jinja literal: the process's parameters and forms cannot use it; did you mean 'from_'?"),
            ("true", "field name 'true' is a Python keyword or a Jinja literal: the process's parameters and forms cannot use it; did you mean 'true_'?"),
            ("_hidden", "field name '_hidden' is not an identifier: a letter, then letters, digits or '_' (no spaces, no '-'); did you mean 'hidden'?"),
            ("model_dump", "field name 'model_dump' is reserved: the form a person fills in has an attribute of that name; choose another, such as 'model_dump_value'"),
            ("naïve", "field name 'naïve' is not an identifier: a letter, then letters, digits or '_' (no spaces, no '-'); did you mean 'na_ve'?"),
        ],
    )
    def test_a_name_templates_and_forms_cannot_use_is_refused_at_its_key(self, name: str, message: str) -> None:
        text = definition("  - {id: fill, type: form, assignee: role:lead, form: {f: {type: text}}}\n", head=f'inputs:\n  "{name}": {{type: string}}\n')
        document = parse_yaml(text, "rules.yaml")
        with pytest.raises(DefinitionError) as refused:
            validate_shape(document, ProcessSpec)
        [problem] = refused.value.problems
        assert problem.message == message
        assert (problem.line, problem.column) == (6, 3)  # the key itself

    @pytest.mark.parametrize("name", ["title", "due_date", "Severity", "x1", "item_2_ok"])
    def test_identifiers_are_fine(self, name: str) -> None:
        assert problems(definition("", head=f"inputs:\n  {name}: {{type: string}}\n")) == []

    def test_form_fields_follow_the_same_rule(self) -> None:
        text = definition("  - {id: fill, type: form, assignee: role:lead, form: {class: {type: text}, ok: {type: text}}}\n")
        assert problems(text) == ["steps[0].form.class: field name 'class' is a Python keyword or a Jinja literal: the process's parameters and forms cannot use it; did you mean 'class_'?"]


class TestDates:
    def test_an_unquoted_until_is_a_date_like_the_quoted_one(self) -> None:
        spec = validate_shape(parse_yaml(definition("  - {id: nap, type: wait, until: 2026-03-01}\n"), "r.yaml"), ProcessSpec)
        step = spec.steps[0]
        assert isinstance(step, WaitStep) and step.until == "2026-03-01"

    def test_record_values_written_as_dates_are_kept_as_iso_text(self) -> None:
        spec = validate_shape(parse_yaml(definition("  - {id: log, type: record, set: {on: 2026-03-01, at: [2026-03-02]}}\n"), "r.yaml"), ProcessSpec)
        step = spec.steps[0]
        assert isinstance(step, RecordStep) and step.set == {"on": "2026-03-01", "at": ["2026-03-02"]}

    @pytest.mark.parametrize(
        ("until", "message"),
        [
            ("not-a-date", "steps[0].until: expected a date like 2026-01-31 or a date and time like 2026-01-31T09:00:00+08:00, got 'not-a-date'"),
            ("2026-02-30", "steps[0].until: '2026-02-30' is not a date: day is out of range for month"),
            ('"2026-01-05T25:00"', "steps[0].until: '2026-01-05T25:00' is not a date: hour must be in 0..23"),
        ],
    )
    def test_a_literal_until_must_be_a_moment(self, until: str, message: str) -> None:
        assert problems(definition(f"  - {{id: nap, type: wait, until: {until}}}\n")) == [message]

    @pytest.mark.parametrize("until", ["2026-03-01", "2026-03-01T09:00:00+08:00", '"2026-03-01 09:00"', '"{{ inputs.when }}"'])
    def test_good_untils(self, until: str) -> None:
        head = "inputs:\n  when: {type: datetime}\n"
        assert problems(definition(f"  - {{id: nap, type: wait, until: {until}}}\n", head=head)) == []


class TestSchedules:
    def test_a_five_thousand_character_timezone_is_refused_cheaply(self) -> None:
        text = definition("", head=f"schedule:\n  cron: '0 9 * * MON'\n  timezone: {'A' * 5000}\n")
        started = time.perf_counter()
        found = problems(text)
        assert time.perf_counter() - started < 0.5
        assert found == [f"schedule.timezone: {'A' * 57!r}... (5,000 characters) is not a timezone; use an IANA name such as Asia/Shanghai or UTC"]

    @pytest.mark.parametrize(
        ("cron", "message"),
        [
            ("0 0 9 * * MON", "invalid cron '0 0 9 * * MON': 6 field(s); five fields: minute hour day month weekday (no seconds, no year), such as '0 9 * * MON'"),
            ("@daily", "invalid cron '@daily': 1 field(s); five fields: minute hour day month weekday, such as '0 9 * * MON'"),
            ("0 9 * *", "invalid cron '0 9 * *': 4 field(s); five fields: minute hour day month weekday, such as '0 9 * * MON'"),
        ],
    )
    def test_cron_has_exactly_five_fields(self, cron: str, message: str) -> None:
        assert problems(definition("", head=f"schedule:\n  cron: '{cron}'\n")) == [f"schedule.cron: {message}"]

    @pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "Etc/GMT+8", "America/Argentina/ComodRivadavia"])
    def test_iana_names_are_fine(self, zone: str) -> None:
        assert problems(definition("", head=f"schedule:\n  cron: '0 9 * * MON'\n  timezone: {zone}\n")) == []


class TestRoles:
    def test_sla_escalate_to_names_roles_and_people_that_exist(self) -> None:
        found = problems(definition("", head="sla: {due: 3d, escalate_to: role:managr}\n"))
        assert found == ["sla.escalate_to: unknown role 'managr'; did you mean 'manager'?"]
        assert problems(definition("", head="sla: {due: 3d, escalate_to: [role:manager, person:ann]}\n")) == []


class TestStrictTypes:
    @pytest.mark.parametrize(
        ("head", "step", "message"),
        [
            ("", "  - {id: a, type: approval, assignee: role:support, quorum: true}\n", "steps[0].quorum: expected a whole number (got True)"),
            ("", "  - {id: c, type: checklist, assignee: role:lead, items: [{id: x, label: X, weight: true}]}\n", "steps[0].items[0].weight: expected a number (got True)"),
            ("inputs:\n  n: {type: integer, maximum: false}\n", "", "inputs.n.maximum: expected a number (got False)"),
            ("inputs:\n  n: {type: integer, required: 0}\n", "", "inputs.n.required: expected true or false (got 0)"),
        ],
    )
    def test_yaml_booleans_are_not_numbers_and_numbers_not_booleans(self, head: str, step: str, message: str) -> None:
        assert problems(definition(step, head=head)) == [message]

    def test_version_true_and_a_version_too_large(self) -> None:
        assert problems(definition("").replace("version: 1", "version: true")) == ["version: expected a whole number (got True)"]
        assert problems(definition("").replace("version: 1", f"version: {2**31}")) == ["version: Input should be less than or equal to 2147483647 (got 2147483648)"]


class TestChannels:
    @pytest.mark.parametrize(
        "channel", ["email", "console", " email ", "json://host/x", "dingtalk://${TOKEN}", "${WHOLE_URL}", "${SCHEME}://x", "mailto://a:b@example.com"]
    )
    def test_channels(self, channel: str) -> None:
        assert channel_problem(channel) is None

    @pytest.mark.parametrize(
        ("channel", "message"),
        [
            ("pigeon", "'pigeon' is not a channel; write email, console or an Apprise URL such as slack://TOKEN_A/TOKEN_B/TOKEN_C"),
            ("emial", "'emial' is not a channel; write email, console or an Apprise URL such as slack://TOKEN_A/TOKEN_B/TOKEN_C; did you mean 'email'?"),
            ("slack", "'slack' is not a channel; write slack://... (an Apprise URL), email or console"),
            ("slak://a/b/c", "'slak://a/b/c': Apprise knows no scheme 'slak://'; did you mean 'slack'?"),
        ],
    )
    def test_not_channels(self, channel: str, message: str) -> None:
        assert channel_problem(channel) == message

    def test_a_person_without_an_address_needs_another_channel(self) -> None:
        team = validate_shape(parse_yaml("team:\n  people:\n    ann: {name: Ann, notify: [console]}\n", "team.yaml"), TeamSpec)
        assert team.people["ann"].email is None
        with pytest.raises(DefinitionError, match="no email, but notify defaults to"):
            validate_shape(parse_yaml("team:\n  people:\n    ann: {name: Ann}\n", "team.yaml"), TeamSpec)

    @pytest.mark.parametrize("address", ["li.na@example.com", "a+b@sub.example.co", "张伟@例子.中国"])
    def test_email_addresses(self, address: str) -> None:
        team = validate_shape(parse_yaml(f"team:\n  people:\n    ann: {{name: Ann, email: '{address}'}}\n", "team.yaml"), TeamSpec)
        assert team.people["ann"].email == address
