"""The limits of one render: hostile templates stop fast with "template ... exceeds ...", ordinary ones render, constants past a limit are refused at load."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from aftercare.engine import expressions
from aftercare.engine.errors import StepError
from aftercare.engine.expressions import MAX_BUILT, MAX_CALLS, MAX_ITERATIONS, MAX_TEXT

SCOPE: dict[str, Any] = {"x": "hi", "inputs": {"title": "Printer jam", "tags": ["a", "b", "c"], "count": 3}, "case": {"key": "ISS-0001"}}
FAST = 0.5
"""Seconds a refused template may take: well under a second, on any machine the tests run on."""

VALUE = "characters in one value"
DIGITS = "digits in a number"
LOOPS = "loop iterations in one render"
BUILT = "characters built in one render"

# (template, the limit its message names)
HOSTILE = [
    # the examples
    ("{{ lipsum(10**8) }}", "words of lipsum"),
    ("{{ 'a' * 10**10 }}", VALUE),
    ("{{ 'x' * 10**6 * 10**6 }}", VALUE),
    ("{{ 10**(10**10) }}", DIGITS),  # Jinja reads 10**10**10 as (10**10)**10, a harmless 10**100
    ("{{ x | center(10**9) }}", VALUE),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", LOOPS),
    # the same classes, other spellings
    ("{{ 10**10**10**10**10 }}", DIGITS),
    ("{{ 7 ** 5000 }}", DIGITS),
    ("{{ (10**600) * (10**600) }}", DIGITS),
    ("{{ lipsum(5, True, 20, 10**9) }}", "words of lipsum"),
    ("{{ range(10**8) | list | length }}", "items in a range"),
    ("{{ x | indent(10**9) }}", VALUE),
    ("{{ x | wordwrap(1, wrapstring='y' * 10**6) }}", VALUE),
    ("{{ '%10000000000s' | format(x) }}", VALUE),
    ("{{ '%*s' % (10**9, x) }}", VALUE),
    ("{{ '%.1000000000f' % 1.5 }}", VALUE),
    ("{{ '{:>1000000000}'.format(x) }}", VALUE),
    ("{{ '{0}{0}{0}{0}{0}{0}{0}'.format('x' * 500000) }}", VALUE),
    ("{{ x.center(10**9) }} ", VALUE),
    ("{{ x.ljust(10**9) }} ", VALUE),
    ("{{ ('\t' * 10000).expandtabs(10**6) }}", VALUE),
    ("{{ ('a' * 100000).translate({97: 'b' * 1000}) }}", VALUE),
    ("{{ ('a' * 10**6) | replace('a', 'a' * 10**6) }}", VALUE),
    ("{{ ' '.join(['x' * 900000, 'y' * 900000]) }}", VALUE),
    ("{{ [1] * 1000 | batch(10**9, 'x') | list }}", VALUE),
    ("{{ [1] | slice(10**9) | list }}", VALUE),
    ("{{ (range(100000) | list) * 100000 }}", VALUE),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}", VALUE),
    ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}", VALUE),
    ("{% set s = 'x' * 10**6 %}{{ ([s] * 10) | join }}", VALUE),
    ("{% set s = 'x' * 10**6 %}{{ [s, s, s, s, s, s, s, s, s, s, s, s] }}", VALUE),
    ("{% set s = 'x' * 10**6 %}{{ dict(a=s, b=s) | string }}", VALUE),
    ("{% set s = 'x' * 10**6 %}{% set ns = namespace(a=s, b=s) %}{{ ns }}", VALUE),
    ("{% set s = 'x' * 10**6 %}{% for i in range(100000) %}{{ s }}{% endfor %}", BUILT),
    ("{% set s = 'x' * 10**6 %}{% set t %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endset %}{{ t | length }}", BUILT),
    ("{% macro m() %}{{ caller() }}{% endmacro %}{% set s = 'x' * 10**6 %}{% set t %}{% for i in range(100000) %}{% call m() %}{{ s }}{% endcall %}{% endfor %}{% endset %}", BUILT),
    ("{{ ('x' * 1000000) | map('center', 1000000) | list | length }}", BUILT),
    ("{{ ([[1]] * 100000) | sum(start=[]) | length }}", BUILT),
    ("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.l | length }}", BUILT),
    ("{% for i in range(10) %}" + "y" * 2_000_000 + "{% endfor %}", BUILT),
    ("{% for c in 'a' * 1000000 %}{% endfor %}", LOOPS),
    ("{% for i in range(1000) %}{% for c in inputs.tags * 100 %}{% endfor %}{% endfor %}", LOOPS),
    ("{% for x in [1] recursive %}{{ loop(range(100000) | list) }}{{ loop(range(100000) | list) }}{% endfor %}", LOOPS),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", "calls in one render"),
]


def _refused(run: Callable[[], object]) -> tuple[str, float]:
    started = time.perf_counter()
    with pytest.raises(StepError) as refused:
        run()
    return str(refused.value), time.perf_counter() - started


class TestHostileTemplates:
    @pytest.mark.parametrize(("source", "limit"), HOSTILE)
    def test_they_stop_fast_with_the_limit_they_exceed(self, source: str, limit: str) -> None:
        message, elapsed = _refused(lambda: expressions.render(source, dict(SCOPE)))
        assert elapsed < FAST, f"{elapsed:.2f}s"
        assert message.startswith("template ") and " exceeds the limit of " in message and limit in message, message
        assert isinstance(expressions.TemplateLimitError, type)

    @pytest.mark.parametrize(
        "source",
        ["'a' * 10**10 == 'b'", "(range(100000) | list) * 100000", "10**(10**10) > 1", "lipsum(10**8) is string"],
    )
    def test_when_expressions_have_the_same_limits(self, source: str) -> None:
        message, elapsed = _refused(lambda: expressions.evaluate(source, dict(SCOPE)))
        assert elapsed < FAST
        assert message.startswith(f"expression {source!r} exceeds the limit of "), message

    def test_a_value_too_long_to_quote_is_shortened_in_the_message(self) -> None:
        source = "{{ 'a' * 10**10 }}" + " " * 1000
        message, _ = _refused(lambda: expressions.render(source, {}))
        assert len(message) < 400 and message.startswith("template \"{{ 'a' * 10**10 }}") and "..." in message

    def test_a_macro_that_calls_itself_forever_stops(self) -> None:
        message, elapsed = _refused(lambda: expressions.render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", {}))
        assert elapsed < FAST and "recurses too deeply" in message


class TestOrdinaryTemplates:
    """Each limit lets through everything up to it, and refuses the first thing past it."""

    def test_loops(self) -> None:
        assert expressions.render("{% for i in range(10) %}{{ i }}{% endfor %}", {}) == "0123456789"
        tags = "{% for tag in inputs.tags %}{{ loop.index }}.{{ tag | upper }} {% else %}none{% endfor %}"
        assert expressions.render(tags, dict(SCOPE)) == "1.A 2.B 3.C "
        assert expressions.render("{% for tag in inputs.missing %}x{% else %}none{% endfor %}", dict(SCOPE)) == "none"
        assert expressions.render("{% for k, v in inputs | dictsort if v %}{{ k }} {% endfor %}", dict(SCOPE)) == "count tags title "
        full = f"{{% for i in range({MAX_ITERATIONS // 2}) %}}{{% endfor %}}{{% for i in range({MAX_ITERATIONS // 2}) %}}{{% endfor %}}ok"
        for _ in range(3):  # the budget is each render's own
            assert expressions.render(full, {}) == "ok"
        with pytest.raises(StepError, match="exceeds the limit of 100,000 loop iterations in one render"):
            expressions.render(full.replace("ok", "{% for i in range(1) %}{% endfor %}"), {})

    def test_filters_and_methods(self) -> None:
        assert expressions.render("[{{ x | center(6) }}]", dict(SCOPE)) == "[  hi  ]"
        assert expressions.render("{{ inputs.tags | map('upper') | join(', ') }}", dict(SCOPE)) == "A, B, C"
        assert expressions.render("{{ 'a\nb' | indent(2, true) }}", {}) == "  a\n  b"
        assert expressions.render("{{ '%-5s|%3d' | format('ab', 7) }} {{ '%05.1f' % 3.14159 }}", {}) == "ab   |  7 003.1"
        assert expressions.render("{{ '{:>4}|{}'.format(x, inputs.count) }} {{ x.rjust(4, '.') }}", dict(SCOPE)) == "  hi|3 ..hi"
        assert expressions.render("{{ inputs.title | replace('jam', 'fire') | wordwrap(7) | truncate(30) }}", dict(SCOPE)) == "Printer\nfire"
        assert expressions.render("{{ [[1], [2]] | sum(start=[]) }} {{ [1, 2, 3] | batch(2, 0) | list }}", {}) == "[1, 2] [[1, 2], [3, 0]]"
        assert expressions.render("{{ lipsum(2, false, 5, 10) | wordcount > 5 }} {{ x | center(10**6) | length }}", dict(SCOPE)) == "True 1000000"
        with pytest.raises(StepError, match="exceeds the limit of 1,000,000 characters in one value"):
            expressions.render(f"{{{{ x | center({MAX_TEXT + 1}) }}}}", dict(SCOPE))

    def test_text_and_numbers(self) -> None:
        assert expressions.render("{{ case.key ~ ': ' ~ inputs.title }} {{ 'ab' + 'cd' }} {{ '-' * 3 }}", dict(SCOPE)) == "ISS-0001: Printer jam abcd ---"
        assert expressions.render("{{ inputs.count * 2 + 1 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ [1, 2] + [3] }}", dict(SCOPE)) == "7 1024 1 [1, 2, 3]"
        assert len(expressions.render(f"{{{{ 'x' * {MAX_TEXT} }}}}", {})) == MAX_TEXT
        assert len(expressions.render("{{ 10 ** 999 }}", {})) == 1000
        with pytest.raises(StepError, match="exceeds the limit of 1,000 digits in a number"):
            expressions.render("{{ 10 ** 1001 }}", {})

    def test_output(self) -> None:
        half = MAX_TEXT // 2
        assert len(expressions.render(f"{{{{ 'x' * {half} }}}}{{{{ 'y' * {half} }}}}", {})) == MAX_TEXT
        with pytest.raises(StepError, match="exceeds the limit of 1,000,000 characters of output"):
            expressions.render(f"{{{{ 'x' * {half} }}}}{{{{ 'y' * {half} }}}}!", {})

    def test_calls(self) -> None:
        macro = "{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}{{ twice(x) }} {{ x.upper() }} {{ dict(a=1).items() | list }}"
        assert expressions.render(macro, dict(SCOPE)) == "hihi HI [('a', 1)]"
        calls = f"{{% for i in range({MAX_CALLS - 1}) %}}{{% set u = x.upper() %}}{{% endfor %}}ok"  # range() is a call too
        assert expressions.render(calls, dict(SCOPE)) == "ok"
        with pytest.raises(StepError, match="exceeds the limit of 100,000 calls in one render"):
            expressions.render(calls + "{{ x.upper() }}", dict(SCOPE))

    def test_work_built_in_all(self) -> None:
        text = f"{{% set s = 'x' * {MAX_TEXT // 10} %}}{{% set t %}}{{% for i in range(9) %}}{{{{ s }}}}{{% endfor %}}{{% endset %}}{{{{ t | length }}}}"
        assert expressions.render(text, {}) == str(9 * MAX_TEXT // 10)
        with pytest.raises(StepError, match=f"exceeds the limit of {MAX_BUILT:,} characters built in one render"):
            expressions.render(text.replace("range(9)", "range(200)"), {})

    def test_values_of_every_kind_are_written_as_before_unless_too_long_to_print(self) -> None:
        assert expressions.render("[{{ nothing.at.all }}] {{ none }} {{ 1.5 }} {{ true }} {{ [1, 'a'] }} {{ {'k': (1, 2)} }}", {}) == "[] None 1.5 True [1, 'a'] {'k': (1, 2)}"
        assert expressions.resolve_value("{{ inputs.tags * 2 }}", dict(SCOPE)) == ["a", "b", "c", "a", "b", "c"]
        with pytest.raises(StepError, match="exceeds the limit of 1,000,000 characters in one value"):
            expressions.render("{% set s = 'x' * 600000 %}{{ [s, s] }}", {})

    def test_the_compiled_template_is_cached(self) -> None:
        source = "{{ inputs.title }} {% for t in inputs.tags %}{{ t }}{% endfor %}"
        expressions.render(source, dict(SCOPE))
        started = time.perf_counter()
        for _ in range(200):
            expressions.render(source, dict(SCOPE))
        assert (time.perf_counter() - started) / 200 < 0.001
        assert expressions._compiled_template.cache_info().hits > 0
        assert isinstance(expressions.environment(), expressions._Sandbox)


class TestAtLoad:
    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("{{ lipsum(10**8) }}", "exceeds the limit of 10,000 words of lipsum (lipsum(100000000, max=100) would make up to 10,000,000,000)"),
            ("{{ 'a' * 10**10 }}", "exceeds the limit of 1,000,000 characters in one value ('*' would make 10,000,000,000)"),
            ("{{ 'x' * 10**6 * 10**6 }}", "exceeds the limit of 1,000,000 characters in one value ('*' would make 1,000,000,000,000)"),
            ("{{ 10**(10**10) }}", "exceeds the limit of 1,000 digits in a number ('**' would make about 10,000,000,001)"),
            ("{{ x | center(10**9) }}", "exceeds the limit of 1,000,000 characters in one value (filter 'center' would make 1,000,000,000)"),
            (
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                "exceeds the limit of 100,000 loop iterations in one render (a loop of 100,000 inside loops of 100,000 would run 10,000,000,000)",
            ),
            ("{{ range(10**8) | list }}", "exceeds the limit of 100,000 items in a range (range(100000000) would make 100,000,000)"),
            ("{% for c in 'a' * 1000000 %}{% endfor %}", "exceeds the limit of 100,000 loop iterations in one render (a loop over 1,000,000 items)"),
            ("{{ '%.1000000000f' % value }}", "exceeds the limit of 1,000,000 characters in one value ('%' would make 1,000,000,013)"),
            ("{{ x.ljust(10**9) }}", "exceeds the limit of 1,000,000 characters in one value (str.ljust would make 1,000,000,000)"),
            ("{{ '{:>1000000000}'.format(x) }}", "exceeds the limit of 1,000,000 characters in one value (str.format would make 1,000,000,014)"),
        ],
    )
    def test_a_constant_past_a_limit_is_refused_at_load(self, source: str, expected: str) -> None:
        assert expressions.template_problems(source) == [expected]

    def test_when_expressions_too(self) -> None:
        assert expressions.template_problems("'a' * 10**10 == x", expression=True) == [
            "exceeds the limit of 1,000,000 characters in one value ('*' would make 10,000,000,000)"
        ]

    @pytest.mark.parametrize(
        "source",
        [
            "{% for i in range(10) %}{% for j in range(10) %}{{ i * j }}{% endfor %}{% endfor %}",
            "{% for i in range(1000) %}{% for x in inputs.tags %}{% for j in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
            "{{ 'x' * 1000 }} {{ 2 ** 64 }} {{ x | center(80) }} {{ '%5.2f' % inputs.count }} {{ lipsum(3) }} {{ range(5) | list }}",
            "{{ x * 10**10 }} {{ inputs.tags * 10**10 }}",  # x may be a number; the tags are not known at load
        ],
    )
    def test_only_what_a_constant_certainly_breaks(self, source: str) -> None:
        assert expressions.template_problems(source) == []
        assert expressions.template_problems(source + "{{ 'a' * 10**10 }}") == [
            "exceeds the limit of 1,000,000 characters in one value ('*' would make 10,000,000,000)"
        ]
