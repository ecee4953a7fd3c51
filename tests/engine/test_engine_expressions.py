"""Sandboxed expressions: rendering, evaluating, typed single-expression values, the names a template uses."""

from __future__ import annotations

from datetime import date

import pytest
from jinja2.exceptions import TemplateSyntaxError

from aftercare.engine import expressions
from aftercare.engine.errors import StepError

SCOPE = {
    "inputs": {"title": "Printer jam", "count": 3, "ratio": 0.5, "tags": ["a", "b"], "urgent": True, "day": date(2026, 1, 31)},
    "case": {"key": "ISS-0001"},
    "triage": {"priority": "P1", "owner": "li.na"},
}

ATTACKS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ joiner.__init__.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "{{ inputs.__class__.__base__ }}",
    "{{ inputs.update({'title': 'x'}) }}",
    "{{ inputs.tags.append('c') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ range(10**8) | list | length }}",
    "{{ 1 / 0 }}",
    "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
]


class TestSandbox:
    @pytest.mark.parametrize("source", ATTACKS)
    def test_attacks_fail_safely_in_templates(self, source: str) -> None:
        try:
            text = expressions.render(source, dict(SCOPE))
        except StepError:
            return
        for leak in ("class", "object", "module", "function", "root:", "uid="):
            assert leak not in text
        assert SCOPE["inputs"]["title"] == "Printer jam" and SCOPE["inputs"]["tags"] == ["a", "b"]

    @pytest.mark.parametrize("source", [a.removeprefix("{{ ").removesuffix(" }}") for a in ATTACKS if a.startswith("{{")])
    def test_attacks_fail_safely_in_expressions(self, source: str) -> None:
        try:
            value = expressions.evaluate(source, dict(SCOPE))
        except StepError:
            return
        assert value is None or isinstance(value, (str, int, float, bool))
        assert "class" not in str(value)

    def test_undefined_names_are_empty_and_falsy(self) -> None:
        assert expressions.render("[{{ nothing.at.all }}]", {}) == "[]"
        assert not expressions.evaluate("nothing.at.all", {})

    def test_runtime_errors_are_step_errors(self) -> None:
        with pytest.raises(StepError, match="expression \"inputs.count \\+ 'x'\" failed"):
            expressions.evaluate("inputs.count + 'x'", dict(SCOPE))
        with pytest.raises(StepError, match="template '{{ 1 / 0 }}' failed: division by zero"):
            expressions.render("{{ 1 / 0 }}", {})


class TestValues:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("{{ inputs.count }}", 3),
            ("  {{ inputs.ratio }} ", 0.5),
            ("{{ inputs.tags }}", ["a", "b"]),
            ("{{ inputs.urgent }}", True),
            ("{{ inputs.day }}", date(2026, 1, 31)),
            ("{{ inputs.count * 2 }}", 6),
            ("{{ inputs.missing }}", None),
            ("{{ inputs.count }} items", "3 items"),
            ("{{ inputs.count }}{{ inputs.count }}", "33"),
            ("{% if inputs.urgent %}{{ inputs.count }}{% endif %}", "3"),
            ("plain text", "plain text"),
        ],
    )
    def test_a_single_expression_keeps_its_type(self, source: str, expected: object) -> None:
        assert expressions.resolve_value(source, dict(SCOPE)) == expected
        assert type(expressions.resolve_value(source, dict(SCOPE))) is type(expected)

    def test_mappings_and_lists_are_resolved_item_by_item(self) -> None:
        value = {"n": "{{ inputs.count }}", "list": ["{{ triage.owner }}", 5], "text": "{{ case.key }}: {{ inputs.title }}"}
        assert expressions.resolve_value(value, dict(SCOPE)) == {"n": 3, "list": ["li.na", 5], "text": "ISS-0001: Printer jam"}

    def test_when_expressions(self) -> None:
        assert expressions.evaluate("triage.priority in ['P1', 'P2']", dict(SCOPE)) is True
        assert expressions.evaluate("inputs.count > 5", dict(SCOPE)) is False


class TestNames:
    def test_names_used_with_their_paths(self) -> None:
        uses = expressions.names_used("{{ triage.priority }} {{ steps['tell-reporter'].sent_at }} {{ inputs['title'] }} {{ now }}")
        assert {(u.root, u.path) for u in uses} == {("triage", ("priority",)), ("steps", ("tell-reporter", "sent_at")), ("inputs", ("title",)), ("now", ())}

    def test_loop_variables_are_not_free_names(self) -> None:
        uses = expressions.names_used("{% for item in inputs.tags %}{{ item.name }}{% endfor %}{% set x = 1 %}{{ x }}")
        assert {u.root for u in uses} == {"inputs"}

    def test_expressions_parse_as_expressions(self) -> None:
        assert [(u.root, u.path) for u in expressions.names_used("a.b == 1", expression=True)] == [("a", ("b",))]
        with pytest.raises(TemplateSyntaxError):
            expressions.names_used("a ==", expression=True)
        assert expressions.syntax_error("{{ a }") is not None
        assert expressions.syntax_error("{{ a }}") is None

    def test_hyphenated_ids_read_as_subtractions_are_found(self) -> None:
        assert expressions.hyphen_subtractions("{{ tell-reporter.sent_at }}") == [(("tell", "reporter"), ("sent_at",))]
        assert expressions.hyphen_subtractions("{{ a - 1 }} {{ x.y - z }}") == []

    def test_is_template(self) -> None:
        assert expressions.is_template("{{ x }}") and expressions.is_template("{% if x %}{% endif %}")
        assert not expressions.is_template("role:lead") and not expressions.is_template(5)
