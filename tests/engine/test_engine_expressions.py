"""Sandboxed expressions: rendering, evaluating, typed single-expression values, the names a template uses, the attributes the sandbox refuses."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from jinja2 import sandbox
from jinja2.exceptions import SecurityError, TemplateSyntaxError

from aftercare.engine import expressions
from aftercare.engine.errors import StepError
from aftercare.engine.library import validate

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


class TestUnsafeAttributes:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("{{ ''.__class__.__mro__[1].__subclasses__() }}", ["__class__", "__mro__", "__subclasses__"]),
            ("{{ cycler.__init__.__globals__.os }}", ["__init__", "__globals__"]),
            ("{{ inputs._private }}", ["_private"]),
            ("{{ inputs['__class__'] }} {{ inputs['title'] }}", ["__class__"]),
            ("{{ dict.mro() }}", ["mro"]),
            ("{{ (inputs.tags | map('upper')).gi_frame }}", ["gi_frame"]),
            ("{% for c in ''.__class__.__mro__ %}{{ c.__name__ }}{% endfor %}", ["__class__", "__mro__", "__name__"]),
            ("{% set x = inputs.__dict__ %}{% if x.__len__ %}{% endif %}", ["__dict__", "__len__"]),
            ("{{ inputs.__class__ }} {{ case.__class__ }}", ["__class__"]),
            ("{{ '{0.__class__}'.format(inputs) }}", ["__class__"]),
            ("{{ '{0[__globals__]:>{1._width}}'.format(inputs, 1) }}", ["__globals__", "_width"]),
            ("{{ '{title.__class__}'.format_map(inputs) }}", ["__class__"]),
            ("{{ inputs | attr('__class__') }}", ["__class__"]),
            ("{{ inputs | attr(name='__class__') }}", ["__class__"]),
            ("{{ inputs.tags | map(attribute='upper.__self__') | list }}", ["__self__"]),
            ("{{ inputs.tags | sort(false, false, '__len__') }} {{ inputs.tags | sort(attribute='_k') }}", ["__len__", "_k"]),
            ("{{ inputs.tags | selectattr('_private') | list }}", ["_private"]),
            ("{{ inputs.tags | groupby('__class__') }}", ["__class__"]),
            ("{{ inputs.tags | join(', ', '__doc__') }}", ["__doc__"]),
        ],
    )
    def test_refused_names_in_the_order_written(self, source: str, expected: list[str]) -> None:
        assert expressions.unsafe_attributes(source) == expected

    @pytest.mark.parametrize(
        "source",
        [
            "{{ steps['tell-reporter'].by }}",
            "{{ inputs.title | upper }}",
            "{{ item }}",
            "{% for tag in inputs.tags %}{{ loop.index }}: {{ tag.name | default('-') }}{% endfor %}",
            "{{ inputs.tags | map(attribute='title') | join(', ') }} {{ inputs.tags | sort(attribute='owner.name') | first }}",
            "{{ inputs.tags | selectattr('done') | list | length }} {{ inputs | attr('title') }}",
            "{{ '{} of {}'.format(inputs.count, case.key) }} {{ '{0.title}'.format(inputs) }} {{ inputs.note.format(1) }}",
            "{{ triage.items() | list }} {{ case.key ~ ': ' ~ inputs.title }} {{ inputs[key] }} {{ inputs.tags[0] }}",
            "{% set ns = namespace(total=0) %}{% set ns.total = ns.total + 1 %}{{ ns.total }}",
            "{{ '{0.__class__'.format(inputs) }}",  # not a format string: fails at run time, looks nothing up
        ],
    )
    def test_ordinary_templates_report_nothing(self, source: str) -> None:
        assert expressions.unsafe_attributes(source) == []

    def test_expressions(self) -> None:
        assert expressions.unsafe_attributes("lipsum.__globals__['os'] is defined", expression=True) == ["__globals__"]
        assert expressions.unsafe_attributes("review.decision == 'approve' and inputs.count > 2", expression=True) == []
        with pytest.raises(TemplateSyntaxError):
            expressions.unsafe_attributes("a.__class__ ==", expression=True)

    def test_every_attribute_attack_is_found_before_the_run(self) -> None:
        for source in [attack for attack in ATTACKS if "__" in attack]:
            assert expressions.unsafe_attributes(source), source

    def test_the_answer_is_a_copy_of_the_cached_one(self) -> None:
        found = expressions.unsafe_attributes("{{ x.__class__ }}")
        found.append("extra")
        assert expressions.unsafe_attributes("{{ x.__class__ }}") == ["__class__"]

    @pytest.mark.parametrize(
        "name",
        ["_x", "__class__", "__globals__", "mro", *sorted(sandbox.UNSAFE_GENERATOR_ATTRIBUTES | sandbox.UNSAFE_COROUTINE_ATTRIBUTES | sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES)],
    )
    def test_the_rule_is_the_sandboxs(self, name: str) -> None:
        assert expressions.is_refused_attribute(name)

    @pytest.mark.parametrize("name", ["title", "by", "upper", "format", "format_map", "items", "keys", "append", "update", "x_"])
    def test_ordinary_names_pass(self, name: str) -> None:
        assert not expressions.is_refused_attribute(name)

    def test_the_sandbox_refuses_at_run_time_what_the_rule_refuses(self) -> None:
        with pytest.raises(StepError) as refused:
            expressions.render("{{ dict.mro() }}", {})
        assert isinstance(refused.value.__cause__, SecurityError)
        assert expressions.unsafe_attributes("{{ dict.mro() }}") == ["mro"]

    def test_named_notification_templates_are_checked(self, tmp_path: Path) -> None:
        definition = tmp_path / "tell.yaml"
        definition.write_text(
            "process: tell\ntitle: Tell\nversion: 1\nkey: TEL\nsteps:\n"
            "  - {id: tell, type: notify, to: [console], template: resolved}\n"
            "  - {id: done, type: end, outcome: done}\n",
            encoding="utf-8",
        )
        loaded, problems = validate([definition], templates={"resolved": "{{ case.title }}: {{ message.__class__ }}"})
        assert not loaded
        assert [(p.line, p.path, p.message) for p in problems] == [
            (6, "steps[0].template", "template in template 'resolved' uses '__class__', which the sandbox refuses (names starting with '_' and internal attributes are not available in templates)")
        ]


class TestTemplateProblems:
    def test_unknown_filters_and_tests_with_a_did_you_mean(self) -> None:
        source = "{{ x | uppr }} {{ x | frob }} {% if x is evn %}{% endif %} {{ xs | map('lowr') | select('od') | list }} {{ xs | rejectattr('a', 'nonee') }}"
        assert expressions.template_problems(source) == [
            "uses unknown filter 'uppr'; did you mean 'upper'?",
            "uses unknown filter 'frob' (not one of Jinja's built-in filters)",
            "uses unknown filter 'lowr'; did you mean 'lower'?",
            "uses unknown test 'evn'; did you mean 'even'?",
            "uses unknown test 'od'; did you mean 'odd'?",
            "uses unknown test 'nonee'; did you mean 'none'?",
        ]

    def test_known_filters_and_tests_pass(self) -> None:
        source = (
            "{{ x | upper | default('-') | e }} {% if x is defined and x is not none and 3 is odd %}{% endif %}"
            "{{ xs | map(attribute='title') | select | reject('none') | selectattr('done', 'true') | list }}{% filter upper %}a{% endfilter %}"
        )
        assert expressions.template_problems(source) == []
        assert expressions.template_problems("x is even and x | abs > 2", expression=True) == []

    def test_message_templates_have_their_filters_and_their_layouts(self) -> None:
        source = '{% extends "_layout.txt.j2" %}{% block content %}{{ case.opened_at | when }} {{ message | nl2br }}{% include "_footer.txt.j2" %}{% endblock %}'
        assert expressions.template_problems(source, message_template=True) == []
        assert expressions.template_problems(source) == [
            "uses unknown filter 'when' (a filter of message template files only)",
            "uses unknown filter 'nl2br' (a filter of message template files only)",
            "uses {% extends %}, which reads another template file; a definition's templates cannot read files"
            " (a message template in templates/, named by a notify step's template:, may extend its layouts)",
            "uses {% include %}, which reads another template file; a definition's templates cannot read files"
            " (a message template in templates/, named by a notify step's template:, may extend its layouts)",
        ]
        assert expressions.template_problems("{{ x | wen }}", message_template=True) == ["uses unknown filter 'wen'; did you mean 'when'?"]

    def test_imported_names_are_not_unknown_names(self) -> None:
        uses = expressions.names_used("{% import 'm.j2' as m %}{% from 'n.j2' import a, b as c %}{{ m.x }}{{ a }}{{ c }}{{ inputs.y }}")
        assert [use.root for use in uses] == ["inputs"]

    def test_a_template_nested_too_deeply_to_parse_is_a_syntax_error(self) -> None:
        source = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
        assert expressions.syntax_error(source) == "it nests too deeply to read"
        with pytest.raises(TemplateSyntaxError):
            expressions.template_problems(source)


class TestStepOrder:
    """A template that reads a step no path runs before it is refused; one that may have run is legal."""

    HEAD = "process: order\ntitle: Order\nversion: 1\nkey: ORD\nsteps:\n"

    def _problems(self, tmp_path: Path, steps: str, templates: dict[str, str] | None = None) -> list[str]:
        definition = tmp_path / "order.yaml"
        definition.write_text(self.HEAD + steps, encoding="utf-8")
        (tmp_path / "team.yaml").write_text("team:\n  people:\n    li.na: {name: Li Na, email: li.na@example.com}\n  roles:\n    lead: [li.na]\n", encoding="utf-8")
        return [f"{p.path}: {p.message}" for p in validate([definition], templates=templates)[1]]

    def test_the_first_step_reading_a_later_one(self, tmp_path: Path) -> None:
        steps = (
            "  - {id: tell, type: notify, to: [console], message: \"{{ review.by }} {{ steps['review'].comment }}\"}\n"
            "  - {id: review, type: approval, assignee: role:lead}\n"
            "  - {id: done, type: end, outcome: done}\n"
        )
        assert self._problems(tmp_path, steps) == [
            "steps[0].message: template reads step 'review', which never runs before step 'tell': no path leads from 'review' to 'tell', so it is always empty here"
        ]

    def test_a_step_that_may_have_run_and_a_loop_are_legal(self, tmp_path: Path) -> None:
        steps = (
            "  - {id: review, type: approval, assignee: role:lead, on_reject: rework, title: 'Round after {{ rework.comment }}'}\n"
            "  - {id: tell, type: notify, to: [console], message: 'Approved by {{ review.by }}, reworked: {{ rework.comment }}'}\n"
            "  - {id: done, type: end, outcome: done}\n"
            "  - {id: rework, type: form, assignee: role:lead, next: review, title: 'Again ({{ rework.comment }}) after {{ tell.sent_at }}'}\n"
        )
        # only the one certain case: nothing leads from tell (the approved path) back to rework
        assert self._problems(tmp_path, steps) == [
            "steps[3].title: template reads step 'tell', which never runs before step 'rework': no path leads from 'tell' to 'rework', so it is always empty here"
        ]

    def test_a_message_template_read_at_its_notify_step(self, tmp_path: Path) -> None:
        steps = (
            "  - {id: tell, type: notify, to: [console], template: note}\n"
            "  - {id: review, type: approval, assignee: role:lead}\n"
            "  - {id: done, type: end, outcome: done}\n"
        )
        assert self._problems(tmp_path, steps, {"note": "{{ review.decision }} {{ step.id }}"}) == [
            "steps[0].template: template in template 'note' reads step 'review', which never runs before step 'tell': no path leads from 'review' to 'tell', so it is always empty here"
        ]

    def test_a_broken_graph_reports_its_own_problem_first(self, tmp_path: Path) -> None:
        steps = (
            "  - {id: tell, type: notify, to: [console], message: '{{ review.by }}', next: reveiw}\n"
            "  - {id: review, type: approval, assignee: role:lead}\n"
            "  - {id: done, type: end, outcome: done}\n"
        )
        assert self._problems(tmp_path, steps) == ["steps[0].next: unknown step 'reveiw' in next; did you mean 'review'?"]
        assert self._problems(tmp_path, steps.replace("reveiw", "review")) == [
            "steps[0].message: template reads step 'review', which never runs before step 'tell': no path leads from 'review' to 'tell', so it is always empty here"
        ]
