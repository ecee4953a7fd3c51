"""Sandboxed Jinja2: rendering templates within limits, evaluating ``when`` expressions, and what a template uses (names, refused attributes, filters, tests, files, limits a constant already breaks)."""

from __future__ import annotations

import functools
import math
import re
import string
import types
from _string import formatter_field_name_split  # type: ignore[import-not-found]  # untyped C module; the sandbox's formatter splits fields with it too
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import TemplateError, TemplateRuntimeError, TemplateSyntaxError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

from .errors import StepError
from .suggest import did_you_mean

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})
MESSAGE_FILTERS = frozenset({"when", "nl2br"})
"""The filters message template files have besides Jinja's (``notifications.rendering`` adds them)."""

# --- the limits of one render ----------------------------------------------------------
# Every render (and every evaluation of a ``when``) runs on a budget; going past a limit
# stops it with TemplateLimitError, which render() and evaluate() turn into a StepError.
# The numbers are far above what a message or a title needs (the longest built-in message
# renders to about 2,000 characters, the shipped definitions loop over a few inputs) and
# far below what hurts a worker: a render that hits every limit at once still finishes in
# well under a second and holds a few tens of MB.

MAX_TEXT = 1_000_000
"""Characters a render may give, and characters one value built while rendering may hold (a list or mapping counts as the text it prints)."""
MAX_BUILT = 10 * MAX_TEXT
"""Characters one render may build in all: every value an operator, filter or method builds and every piece it writes, wherever it goes."""
MAX_ITERATIONS = 100_000
"""Loop iterations one render may run, over all its loops (Jinja's own limit on one ``range``)."""
MAX_CALLS = 100_000
"""Calls one render may make: functions, methods, macros (a macro calling itself stops here)."""
MAX_DIGITS = 1_000
"""Digits of a number an operator may make (``10**(10**10)`` would take hours to compute and print)."""
MAX_LIPSUM_WORDS = 10_000
"""Words ``lipsum(n, html, min, max)`` may make: n paragraphs of at most max words."""
_MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))


class TemplateLimitError(TemplateRuntimeError):
    """A template went past one of the sandbox's limits (its message says which, as ``exceeds ...``)."""


@dataclass
class _Budget:
    """What one render has used so far."""

    iterations: int = 0
    calls: int = 0
    built: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("aftercare_template_budget", default=None)


def _exceeds(limit: str, detail: str) -> TemplateLimitError:
    return TemplateLimitError(f"exceeds {limit} ({detail})")


def _value_fits(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise _exceeds(f"the limit of {MAX_TEXT:,} characters in one value", f"{what} would make {size:,}")


def _built(size: int, what: str) -> None:
    """Charge a value just built to the render's budget (and refuse it alone if too large)."""
    if size > MAX_TEXT:
        _value_fits(size, what)
    budget = _BUDGET.get()
    if budget is not None:
        budget.built += size
        if budget.built > MAX_BUILT:
            raise _exceeds(f"the limit of {MAX_BUILT:,} characters built in one render", f"{what} brought it to {budget.built:,}")


def _bits_fit(bits: float, what: str) -> None:
    if bits > _MAX_BITS:
        raise _exceeds(f"the limit of {MAX_DIGITS:,} digits in a number", f"{what} would make about {int(bits * math.log10(2)) + 1:,}")


def _printed_size(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters a value prints as: exact for text; for lists, tuples, sets, mappings and namespaces at least the text of every item and key.

    Counting stops once past ``limit``, so a list of a million references to one long
    string costs no more to measure than the limit.
    """
    if isinstance(value, (str, bytes)):
        return len(value)
    total = 0
    todo = [value]
    while todo and total <= limit:
        item = todo.pop()
        if isinstance(item, (str, bytes)):
            total += len(item) + 2
        elif isinstance(item, (list, tuple, set, frozenset, dict, Namespace)):
            if isinstance(item, Namespace):
                item = object.__getattribute__(item, "_Namespace__attrs")
            total += 2 + 2 * len(item)
            if total <= limit:
                todo.extend(item.items() if isinstance(item, dict) else item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
    return total


def _text_fits(value: Any, what: str) -> None:
    """Refuse to turn a value into text that would be too long (checked before ``str()`` builds it)."""
    if not isinstance(value, str):
        _value_fits(_printed_size(value), what)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The shared sandboxed environment: undefined names are empty and falsy, never a crash; every render runs within the limits above."""
    return _Sandbox(undefined=ChainableUndefined, autoescape=False)


@dataclass(frozen=True)
class NameUse:
    """One use of a name in a template: ``triage.priority`` is root ``triage``, path ``("priority",)``."""

    root: str
    path: tuple[str, ...]
    lineno: int


def is_template(value: Any) -> bool:
    """Whether a string holds Jinja markup."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parse(source: str, *, expression: bool = False) -> nodes.Template | nodes.Expr:
    """Parse a template (or a bare expression) without compiling it.

    Raises:
        TemplateSyntaxError: the source does not parse (or nests too deeply to parse).
    """
    try:
        return environment().parse(f"{{{{ {source} }}}}" if expression else source)
    except RecursionError:
        raise TemplateSyntaxError("it nests too deeply to read", 1) from None
    except ValueError as error:  # the lexer's own limits (a number of thousands of digits)
        raise TemplateSyntaxError(f"it cannot be read: {error}", 1) from None


def syntax_error(source: str, *, expression: bool = False) -> str | None:
    """The syntax error of a template or expression, or None when it parses."""
    try:
        parse(source, expression=expression)
    except TemplateSyntaxError as error:
        return error.message or str(error)
    return None


def names_used(source: str, *, expression: bool = False) -> list[NameUse]:
    """Every free name a template or expression reads, with the attribute path after it.

    Raises:
        TemplateSyntaxError: the source does not parse.
    """
    return list(_analysed(source, expression).names)


@dataclass(frozen=True)
class _Analysis:
    names: tuple[NameUse, ...]
    subtractions: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    unsafe: tuple[str, ...]
    filters: tuple[str, ...]
    tests: tuple[str, ...]
    loads: tuple[str, ...]
    limits: tuple[str, ...]


@lru_cache(maxsize=8192)
def _analysed(source: str, expression: bool) -> _Analysis:
    """One parse per distinct source: everything the checks ask of it."""
    tree = parse(source, expression=expression)
    filters, tests = _filters_and_tests_in(tree)
    return _Analysis(
        tuple(_names_in(tree)),
        tuple(_subtractions_in(tree)),
        tuple(_unsafe_in(tree)),
        filters,
        tests,
        tuple(_loads_in(tree)),
        tuple(_limits_in(tree)),
    )


def _names_in(tree: nodes.Template | nodes.Expr) -> list[NameUse]:
    stored = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
    stored.update(node.target for node in tree.find_all(nodes.Import))  # {% import ... as m %}
    for imported in tree.find_all(nodes.FromImport):  # {% from ... import a, b as c %}
        stored.update(name if isinstance(name, str) else name[1] for name in imported.names)
    uses: list[NameUse] = []
    claimed: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain = _chain(node)
        if chain is None:
            continue
        root, path, root_node = chain
        if id(root_node) in claimed:
            # keep only the longest chain per root occurrence (find_all is outermost first)
            continue
        claimed.add(id(root_node))
        if root not in stored:
            uses.append(NameUse(root, path, node.lineno))
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load" and id(name_node) not in claimed and name_node.name not in stored:
            uses.append(NameUse(name_node.name, (), name_node.lineno))
    return uses


def hyphen_subtractions(source: str, *, expression: bool = False) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Names joined by ``-`` that may mean a hyphenated step id.

    Jinja reads ``peer-review.by`` as ``peer - review.by``; this returns
    ``(("peer", "review"), ("by",))`` for it, once for each run of two or more
    names, so the checks can point at ``steps['peer-review'].by``.

    Raises:
        TemplateSyntaxError: the source does not parse.
    """
    return list(_analysed(source, expression).subtractions)


def _subtractions_in(tree: nodes.Template | nodes.Expr) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    inner = {id(node.left) for node in tree.find_all(nodes.Sub) if isinstance(node.left, nodes.Sub)}
    found: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for node in tree.find_all(nodes.Sub):
        if id(node) in inner:
            continue
        operands: list[nodes.Node] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Sub):
            operands.insert(0, current.right)
            current = current.left
        operands.insert(0, current)
        names: list[str] = []
        for operand in operands:
            if isinstance(operand, nodes.Name) and operand.ctx == "load":
                names.append(operand.name)
                if len(names) > 1:
                    found.append((tuple(names), ()))
                continue
            chain = _chain(operand)
            if chain is not None and names:
                found.append(((*names, chain[0]), chain[1]))
            break
    return found


def _chain(node: nodes.Node) -> tuple[str, tuple[str, ...], nodes.Name] | None:
    path: list[str] = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            path.append(node.arg.value)
        else:
            path.clear()  # a computed index: only the part before it is known
        node = node.node
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return node.name, tuple(reversed(path)), node
    return None


def unsafe_attributes(source: str, *, expression: bool = False) -> list[str]:
    """The attribute names a template or expression looks up that the sandbox refuses, each once, in the order written.

    The rule is the sandbox's own: a name counts when ``environment().is_safe_attribute``
    refuses it on some object a template can reach whatever it holds (see
    :func:`is_refused_attribute`): every name starting with ``_`` (``__class__``,
    ``__globals__``, ``_private``), ``mro`` and the names of jinja2.sandbox's
    ``UNSAFE_*`` sets (``gi_frame``, ``cr_code``, ...). The object is unknown before the
    run, so such a name is refused wherever it appears. This is stricter than the run in
    one way: ``x._key`` and ``x['_key']`` on a mapping holding ``_key`` would render.

    Names are read where the sandbox looks them up: ``x.name``, ``x['name']`` with a
    constant string, the fields of a constant ``str.format``/``format_map`` string
    (``'{0.__class__}'.format(x)``; the sandbox runs those through the same check), and
    the attribute argument of the filters that look one up (``attr('__class__')``,
    ``map(attribute='__class__')``, ``sort``, ``selectattr``, ...). A name computed
    while rendering (``x[a ~ b]``, a format string that is not a constant) cannot be
    known here; the run-time sandbox still refuses it. Calls that would change a list or
    mapping (``inputs.update(...)``) are left to the run too: ImmutableSandboxedEnvironment
    refuses them by the kind of object, not by name.

    Raises:
        TemplateSyntaxError: the source does not parse.
    """
    return list(_analysed(source, expression).unsafe)


def is_refused_attribute(name: str) -> bool:
    """Whether the shared sandbox refuses attribute ``name`` on some object a template can reach.

    Asks ``environment().is_safe_attribute`` about one object of each kind whose refused
    names depend on the name alone: a plain object, a function, a method, a type, a
    generator, a coroutine, an async generator. Code, frame and traceback objects refuse
    every name, but a template reaches them only through a name refused already
    (``__code__``, ``gi_frame``, ``__traceback__``), so they are not asked.
    """
    return _refused(name)


@lru_cache(maxsize=1024)
def _refused(name: str) -> bool:
    sandbox = environment()
    return any(not sandbox.is_safe_attribute(probe, name, None) for probe in _probes())


class _Probe:
    def method(self) -> None:
        """A bound method to show the sandbox."""


def _probe_generator() -> Iterator[None]:
    yield None


async def _probe_coroutine() -> None:
    return None


async def _probe_async_generator() -> Any:
    yield None


@lru_cache(maxsize=1)
def _probes() -> tuple[object, ...]:
    coroutine = _probe_coroutine()
    coroutine.close()  # never run: closing it keeps Python from warning that it was never awaited
    return (object(), _probe_generator, _Probe().method, _Probe, _probe_generator(), coroutine, _probe_async_generator())


# Filters that look up an attribute named by an argument, through the sandbox's getattr or
# getitem: filter -> (position of that argument after the value, or None; its keyword).
# All but ``attr`` take a dotted path ("owner.name"), looked up part by part.
_ATTRIBUTE_FILTERS: dict[str, tuple[int | None, str]] = {
    "attr": (0, "name"),
    "groupby": (0, "attribute"),
    "sum": (0, "attribute"),
    "selectattr": (0, "attribute"),
    "rejectattr": (0, "attribute"),
    "map": (None, "attribute"),
    "unique": (1, "attribute"),
    "min": (1, "attribute"),
    "max": (1, "attribute"),
    "join": (1, "attribute"),
    "sort": (2, "attribute"),
}


def _unsafe_in(tree: nodes.Template | nodes.Expr) -> list[str]:
    return [name for name in dict.fromkeys(_lookups(tree)) if _refused(name)]


def _lookups(node: nodes.Node) -> Iterator[str]:
    """Every attribute name a node looks up by a constant, children first: the order they are written in."""
    for child in node.iter_child_nodes():
        yield from _lookups(child)
    if isinstance(node, (nodes.Getattr, nodes.Getitem)):
        name = _constant_name(node)
        if name is None:
            return
        yield name
        if name in ("format", "format_map") and isinstance(node.node, nodes.Const) and isinstance(node.node.value, str):
            yield from _format_fields(node.node.value)
    elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
        position, keyword = _ATTRIBUTE_FILTERS[node.name]
        arguments = [pair.value for pair in node.kwargs if pair.key == keyword]
        if position is not None and len(node.args) > position:
            arguments.append(node.args[position])
        for argument in arguments:
            if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
                yield from [argument.value] if node.name == "attr" else argument.value.split(".")


def _constant_name(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _format_fields(template: str) -> Iterator[str]:
    """The attribute and key names the fields of a ``str.format`` string look up: ``'{0.a[b]:{1.c}}'`` gives a, b, c."""
    try:
        for _, field, spec, _ in string.Formatter().parse(template):
            if field is not None:
                for _, name in formatter_field_name_split(field)[1]:
                    if isinstance(name, str):
                        yield name
            if spec:
                yield from _format_fields(spec)
    except ValueError:  # not a valid format string: calling it fails at run time
        return


# --- what a template uses: filters, tests, files, limits a constant already breaks ---------


def template_problems(source: str, *, expression: bool = False, message_template: bool = False) -> list[str]:
    """What is wrong with a template before it runs, each problem as the rest of a sentence that begins "template".

    Found here: filters and tests Jinja does not have (``{{ x | uppr }}``, ``x is evn``,
    and the names given to ``map``, ``select``, ``reject``, ``selectattr`` and
    ``rejectattr``), with a did-you-mean; ``{% include %}``, ``{% extends %}``,
    ``{% import %}`` and ``{% from %}``, which read template files, in a definition's
    templates (``message_template`` allows them: message files extend their layouts,
    and they also have the filters of :data:`MESSAGE_FILTERS`); and the limits of a
    render that a constant already breaks (``'a' * 10**10``, ``lipsum(10**8)``,
    ``x | center(10**9)``, loops over constant ranges nested past
    :data:`MAX_ITERATIONS`), worded as the run would word them.

    Raises:
        TemplateSyntaxError: the source does not parse.
    """
    analysis = _analysed(source, expression)
    filters, tests = _known_filters(message_template), _known_tests()
    problems: list[str] = []
    for kind, used, known in (("filter", analysis.filters, filters), ("test", analysis.tests, tests)):
        for name in used:
            if name not in known:
                hint = " (a filter of message template files only)" if kind == "filter" and name in MESSAGE_FILTERS else did_you_mean(name, known) or (
                    f" (not one of Jinja's built-in {kind}s" + (", when or nl2br)" if kind == "filter" and message_template else ")")
                )
                problems.append(f"uses unknown {kind} {name!r}{hint}")
    if not message_template:
        for statement in analysis.loads:
            problems.append(
                f"uses {statement}, which reads another template file; a definition's templates cannot read files"
                " (a message template in templates/, named by a notify step's template:, may extend its layouts)"
            )
    problems.extend(analysis.limits)
    return problems


@lru_cache(maxsize=2)
def _known_filters(message_template: bool) -> tuple[str, ...]:
    return tuple(sorted(environment().filters.keys() | (MESSAGE_FILTERS if message_template else frozenset())))


@lru_cache(maxsize=1)
def _known_tests() -> tuple[str, ...]:
    return tuple(sorted(environment().tests))


# Filters that take the name of a filter or test as an argument: filter -> position of that argument.
_NAMED_FILTER = {"map": 0}
_NAMED_TEST = {"select": 0, "reject": 0, "selectattr": 1, "rejectattr": 1}
_LOADS: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Include, "{% include %}"),
    (nodes.Extends, "{% extends %}"),
    (nodes.Import, "{% import %}"),
    (nodes.FromImport, "{% from ... import %}"),
)


def _filters_and_tests_in(tree: nodes.Template | nodes.Expr) -> tuple[tuple[str, ...], tuple[str, ...]]:
    filters: dict[str, None] = {}
    tests: dict[str, None] = {}
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Test):
            tests[node.name] = None
            continue
        filters[node.name] = None
        for table, found in ((_NAMED_FILTER, filters), (_NAMED_TEST, tests)):
            position = table.get(node.name)
            if position is None or len(node.args) <= position or any(pair.key == "attribute" for pair in node.kwargs if table is _NAMED_FILTER):
                continue
            argument = node.args[position]
            if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
                found[argument.value] = None
    return tuple(filters), tuple(tests)


def _loads_in(tree: nodes.Template | nodes.Expr) -> Iterator[str]:
    seen: set[str] = set()
    for node in tree.find_all(tuple(kind for kind, _ in _LOADS)):
        statement = next(name for kind, name in _LOADS if isinstance(node, kind))
        if statement not in seen:
            seen.add(statement)
            yield statement


class _Unknown:
    """The value of an expression that is not a constant."""


_UNKNOWN = _Unknown()


def _limits_in(tree: nodes.Template | nodes.Expr) -> list[str]:
    """The limits a constant in the template already breaks: the run's own checks, run on the constants at load."""
    found: list[str] = []
    _fold(tree, found, {})
    found.extend(_nested_loops([tree], 1))
    return list(dict.fromkeys(found))


def _fold(node: nodes.Node, found: list[str], known: dict[int, Any]) -> Any:
    """The value of a node when it is a constant (children first, each once), else _UNKNOWN; limits broken go to found."""
    for child in node.iter_child_nodes():
        _fold(child, found, known)
    value = _constant_of(node, found, known)
    known[id(node)] = value
    return value


def _constant_of(node: nodes.Node, found: list[str], known: dict[int, Any]) -> Any:
    def of(child: nodes.Node | None) -> Any:
        return _UNKNOWN if child is None else known.get(id(child), _UNKNOWN)

    def checked(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TemplateLimitError as error:
            found.append(str(error))
        except Exception:  # any other failure is the run's to report, with the real values
            pass
        return _UNKNOWN

    def given(value: Any) -> Any:
        return "" if value is _UNKNOWN else value  # an unknown value counts as empty: a lower bound, never a false alarm

    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [of(item) for item in node.items]
        if any(item is _UNKNOWN for item in items):
            return _UNKNOWN
        return items if isinstance(node, nodes.List) else tuple(items)
    if isinstance(node, (nodes.Neg, nodes.Pos)):
        value = of(node.node)
        if isinstance(value, (int, float)):
            return -value if isinstance(node, nodes.Neg) else value
        return _UNKNOWN
    if isinstance(node, nodes.BinExpr) and node.operator in _OPERATORS:
        left, right = of(node.left), of(node.right)
        if node.operator == "%" and isinstance(left, str) and right is _UNKNOWN:
            checked(lambda: _value_fits(_percent_size(left, ""), "'%'"))
        if left is _UNKNOWN or right is _UNKNOWN:
            return _UNKNOWN
        return checked(_binop, node.operator, left, right)
    if isinstance(node, nodes.Concat):
        parts = [of(part) for part in node.nodes]
        if any(part is _UNKNOWN for part in parts):
            return _UNKNOWN
        return checked(_join_checked, _plain_join, tuple(parts))
    if isinstance(node, nodes.Filter):
        estimate = _FILTER_SIZES.get(node.name) or (_text_size if node.name in _TEXT_FILTERS else None)
        if estimate is not None:
            arguments = [given(of(argument)) for argument in node.args]
            keywords: dict[str, Any] = {str(pair.key): given(of(pair.value)) for pair in node.kwargs}  # Keyword nodes, typed as Pair
            checked(lambda: _value_fits(estimate(given(of(node.node)), arguments, keywords), f"filter {node.name!r}"))
        return _UNKNOWN
    if isinstance(node, nodes.Call):
        args = [given(of(argument)) for argument in node.args]
        kwargs: dict[str, Any] = {pair.key: given(of(pair.value)) for pair in node.kwargs}
        callee = node.node
        if isinstance(callee, nodes.Name) and callee.name == "range":
            checked(_range, *args, **kwargs)
        elif isinstance(callee, nodes.Name) and callee.name == "lipsum":
            checked(_lipsum_fits, *args, **kwargs)
        elif isinstance(callee, nodes.Getattr) and callee.attr in _METHOD_SIZES:
            owner = given(of(callee.node))
            if isinstance(owner, str):
                size = _METHOD_SIZES[callee.attr]
                checked(lambda: _value_fits(size(owner, args, kwargs), f"str.{callee.attr}"))
        return _UNKNOWN
    return _UNKNOWN


def _nested_loops(children: Iterable[nodes.Node], outer: int) -> Iterator[str]:
    """Loops of known length that together run past MAX_ITERATIONS; ``outer`` is how often the enclosing loops of known length run these nodes.

    Only a chain of loops whose lengths are all known counts: a loop over data of unknown
    length may run no time at all, so the loops inside it start a new chain.
    """
    for child in children:
        if isinstance(child, (nodes.Macro, nodes.CallBlock)):
            yield from _nested_loops(child.iter_child_nodes(), 1)  # a macro's body runs as often as it is called
        elif isinstance(child, nodes.For):
            count, is_range = _constant_length(child.iter)
            total = outer * count if count is not None else 1
            if count is not None and total > MAX_ITERATIONS and not (outer == 1 and is_range):  # a range too long says so itself
                runs = f"a loop of {count:,} inside loops of {outer:,} would run {total:,}" if outer > 1 else f"a loop over {count:,} items"
                yield f"exceeds the limit of {MAX_ITERATIONS:,} loop iterations in one render ({runs})"
                continue
            yield from _nested_loops(child.body, total)
            yield from _nested_loops([*child.else_, child.iter, *([child.test] if child.test else [])], outer)
        else:
            yield from _nested_loops(child.iter_child_nodes(), outer)


def _constant_length(node: nodes.Node) -> tuple[int | None, bool]:
    """How many items a loop over this node runs when that is known at load (``range(...)`` of constants, a constant list or text), and whether it is a range."""
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range" and not node.kwargs and not node.dyn_args:
        args = [_fold(argument, [], {}) for argument in node.args]
        if not all(isinstance(argument, int) for argument in args):
            return None, True
        try:
            return len(range(*args)), True
        except (ValueError, TypeError):
            return None, True
        except OverflowError:  # longer than the machine can count: far past every limit
            return MAX_ITERATIONS * MAX_ITERATIONS, True
    value = _fold(node, [], {})
    return (len(value) if isinstance(value, (str, list, tuple)) else None), False


# --- the sandbox with its limits -----------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
    "**": lambda a, b: a**b,
}
_SEQUENCES = (str, bytes, list, tuple)


def _binop(operator: str, left: Any, right: Any) -> Any:
    """``left operator right``, refused before it builds a value past MAX_TEXT or a number past MAX_DIGITS."""
    if operator == "*":
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, _SEQUENCES) and isinstance(count, int):
            unit = len(sequence) if isinstance(sequence, (str, bytes)) else max(_printed_size(sequence) - 2, 0)
            _value_fits(unit * count, "'*'")
        elif isinstance(left, int) and isinstance(right, int):
            _bits_fit(left.bit_length() + right.bit_length(), "'*'")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _bits_fit(right * math.log2(abs(left)), "'**'")
    elif operator == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _value_fits(len(left) + len(right), "'+'")
    elif operator == "%":
        if isinstance(left, str):
            _value_fits(_percent_size(left, right), "'%'")
    result = _OPERATORS[operator](left, right)
    if isinstance(result, int) and operator in ("+", "-"):
        _bits_fit(result.bit_length(), repr(operator))
    return result


def _number(digits: str) -> int:
    """A width or precision written in a format: its value, or one past every limit when absurdly long."""
    return int(digits) if len(digits) < 19 else 10**18


_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?.", re.DOTALL)
_DIGITS = re.compile(r"\d+")


def _percent_size(template: str, values: Any) -> int:
    """At least the length of ``template % values``: the text, every field's width and precision, the text of every value."""
    if isinstance(values, Mapping):
        arguments = [*values.keys(), *values.values()]  # '%(a)s' reads a value, '%s' prints the whole mapping
    elif isinstance(values, tuple):
        arguments = list(values)
    else:
        arguments = [values]
    size = len(template)
    starred = False
    for field in _PERCENT_FIELD.finditer(template):
        for number in field.group(1, 2):
            if number == "*":
                starred = True
            elif number:
                size += _number(number)
    if starred:
        size += sum(abs(argument) for argument in arguments if isinstance(argument, int))
    return size + sum(_printed_size(argument) for argument in arguments)


def _format_size(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """At least the length of ``template.format(*args, **kwargs)``: each field counts as the longest value, plus the widths written or passed."""
    values = [*args, *kwargs.values()]
    longest = max((_printed_size(value) for value in values), default=0)
    widest = max((abs(value) for value in values if isinstance(value, int)), default=0)
    size = len(template)
    try:
        for _, field, spec, _ in string.Formatter().parse(template):
            if field is not None:
                size += longest + widest + sum(_number(digits) for digits in _DIGITS.findall(spec or ""))
    except ValueError:  # not a format string: calling it fails with the real error
        pass
    return size


def _argument(args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any], position: int, name: str, default: Any) -> Any:
    return args[position] if len(args) > position else kwargs.get(name, default)


def _whole(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _text_size(value: Any, args: Any, kwargs: Any) -> int:
    return _printed_size(value)


def _lines(value: Any) -> int:
    return value.count("\n") + 1 if isinstance(value, str) else _printed_size(value) + 1


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    size = _printed_size(text)
    grows = _printed_size(new) - _printed_size(old)
    if grows <= 0:
        return size
    times = (text.count(old) if isinstance(text, str) and isinstance(old, str) and old else size + 1)
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return size + times * grows


def _center_size(value: Any, args: Any, kwargs: Any) -> int:
    return max(_printed_size(value), _whole(_argument(args, kwargs, 0, "width", 80)))


def _indent_size(value: Any, args: Any, kwargs: Any) -> int:
    width = _argument(args, kwargs, 0, "width", 4)
    return _printed_size(value) + _lines(value) * (width if isinstance(width, int) else _printed_size(width))


def _wordwrap_size(value: Any, args: Any, kwargs: Any) -> int:
    size = _printed_size(value)
    width = max(_whole(_argument(args, kwargs, 0, "width", 79)), 1)
    wrap = _argument(args, kwargs, 2, "wrapstring", None)
    return size + (2 * size // width + _lines(value) + 1) * (1 if wrap is None else _printed_size(wrap))


def _replace_filter_size(value: Any, args: Any, kwargs: Any) -> int:
    return _replace_size(value, _argument(args, kwargs, 0, "old", ""), _argument(args, kwargs, 1, "new", ""), _argument(args, kwargs, 2, "count", None))


def _format_filter_size(value: Any, args: Any, kwargs: Any) -> int:
    values = kwargs or tuple(args)
    if isinstance(value, str):
        return _percent_size(value, values)
    return _printed_size(value) + _printed_size(values)


def _join_size(value: Any, args: Any, kwargs: Any) -> int:
    separator = _argument(args, kwargs, 0, "d", "")
    items = value if isinstance(value, (list, tuple, str)) else []
    return sum(_printed_size(item) for item in items) + max(len(items) - 1, 0) * _printed_size(separator)


def _batch_size(value: Any, args: Any, kwargs: Any) -> int:
    fill = _argument(args, kwargs, 1, "fill_with", None)  # the last batch is padded to the full count with it
    return 0 if fill is None else _whole(_argument(args, kwargs, 0, "linecount", 0)) * (_printed_size(fill) + 2)


def _slice_size(value: Any, args: Any, kwargs: Any) -> int:
    return _whole(_argument(args, kwargs, 0, "slices", 0)) * 4  # a loop makes one list per slice; each prints as at least "[], "


def _sum_size(value: Any, args: Any, kwargs: Any) -> int:
    start = _argument(args, kwargs, 1, "start", 0)
    if not isinstance(start, _SEQUENCES):
        return 0
    items = value if isinstance(value, (list, tuple)) else []
    size = len(start) + sum(len(item) for item in items if isinstance(item, _SEQUENCES))
    _work(size * len(items) // 2, "filter 'sum'")  # each step copies what it has summed so far
    return size


# Filters whose result may be longer than the text of their value: filter -> an estimate of
# the result's length from (value, arguments, keywords), checked before the filter runs.
_FILTER_SIZES: dict[str, Callable[[Any, Any, Any], int]] = {
    "center": _center_size,
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "replace": _replace_filter_size,
    "format": _format_filter_size,
    "join": _join_size,
    "batch": _batch_size,
    "slice": _slice_size,
    "sum": _sum_size,
}
# Filters that turn their value into text (a list or mapping becomes its printed form).
_TEXT_FILTERS = frozenset(
    {"capitalize", "e", "escape", "forceescape", "lower", "pprint", "safe", "string", "striptags", "title", "tojson", "trim",
     "truncate", "upper", "urlencode", "urlize", "wordcount", "xmlattr", *MESSAGE_FILTERS}
)
# Filters that consume their value twice (estimate, then run): a generator is listed first.
_LISTED = frozenset({"join", "sum"})

# Methods of text that may build more than the text: method -> estimate from (text, arguments, keywords).
_METHOD_SIZES: dict[str, Callable[[Any, Any, Any], int]] = {
    "center": lambda text, args, kwargs: max(len(text), _whole(_argument(args, kwargs, 0, "width", 0))),
    "ljust": lambda text, args, kwargs: max(len(text), _whole(_argument(args, kwargs, 0, "width", 0))),
    "rjust": lambda text, args, kwargs: max(len(text), _whole(_argument(args, kwargs, 0, "width", 0))),
    "zfill": lambda text, args, kwargs: max(len(text), _whole(_argument(args, kwargs, 0, "width", 0))),
    "expandtabs": lambda text, args, kwargs: len(text) + text.count("\t" if isinstance(text, str) else b"\t") * max(_whole(_argument(args, kwargs, 0, "tabsize", 8)), 0),
    "replace": lambda text, args, kwargs: _replace_size(text, _argument(args, kwargs, 0, "old", ""), _argument(args, kwargs, 1, "new", ""), _argument(args, kwargs, 2, "count", -1)),
    "join": lambda text, args, kwargs: _join_size(_argument(args, kwargs, 0, "iterable", []), [text], {}),
    "translate": lambda text, args, kwargs: len(text) * max([1, *(_printed_size(v) for v in getattr(_argument(args, kwargs, 0, "table", {}), "values", dict)())]),
    "format": lambda text, args, kwargs: _format_size(text, tuple(args), kwargs),
    "format_map": lambda text, args, kwargs: _format_size(text, (), _argument(args, kwargs, 0, "mapping", {})),
}


def _work(amount: int, what: str) -> None:
    """Charge work that builds no single value (a loop's text, a quadratic sum) to the render's budget."""
    budget = _BUDGET.get()
    if budget is not None and amount:
        budget.built += amount
        if budget.built > MAX_BUILT:
            raise _exceeds(f"the limit of {MAX_BUILT:,} characters built in one render", f"{what} brought it to {budget.built:,}")


def _range(*args: Any) -> range:
    """``range`` within MAX_ITERATIONS items (Jinja's sandbox has the same bound; this says it in the language's words)."""
    items = range(*args)
    try:
        count = len(items)
    except OverflowError:
        count = MAX_ITERATIONS * MAX_ITERATIONS
    if count > MAX_ITERATIONS:
        written = ", ".join(str(argument) for argument in args)
        raise _exceeds(f"the limit of {MAX_ITERATIONS:,} items in a range", f"range({written}) would make {count:,}")
    return items


def _lipsum_fits(n: Any = 5, html: Any = True, min: Any = 20, max: Any = 100) -> None:  # noqa: A002  # Jinja's own parameter names
    if not all(isinstance(number, int) for number in (n, min, max)):
        raise TypeError("lipsum(n, html, min, max) takes whole numbers")
    words = n * (max if max > min else min)
    if words > MAX_LIPSUM_WORDS:
        raise _exceeds(f"the limit of {MAX_LIPSUM_WORDS:,} words of lipsum", f"lipsum({n}, max={max}) would make up to {words:,}")


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's ``lipsum`` within MAX_LIPSUM_WORDS words."""
    _lipsum_fits(n, html, min, max)
    text = generate_lorem_ipsum(n, html, min, max)
    _built(len(text), "lipsum")
    return text


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that keeps the sandbox's limits: its result estimated first where it may grow, then charged to the render.

    Every filter of the shared environment is wrapped this way; an environment built on
    it that adds filters (the message templates' ``when`` and ``nl2br``) wraps them too.
    """
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0  # context, eval context or environment first
    estimate = _FILTER_SIZES.get(name)
    listed = name in _LISTED
    what = f"filter {name!r}"

    if estimate is None:
        text = name in _TEXT_FILTERS

        @functools.wraps(function)
        def charged(*args: Any, **kwargs: Any) -> Any:
            if text and len(args) > skip and not isinstance(args[skip], str):
                _text_fits(args[skip], what)  # a list or mapping about to become text
            result = function(*args, **kwargs)
            if isinstance(result, str):
                _built(len(result), what)
            return result

        return charged

    @functools.wraps(function)
    def estimated(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            value = args[skip]
            if listed and not isinstance(value, (list, tuple, str)):
                value = list(value)
                args = (*args[:skip], value, *args[skip + 1 :])
            _value_fits(estimate(value, args[skip + 1 :], kwargs), what)
        result = function(*args, **kwargs)
        if isinstance(result, (str, bytes)):
            _built(len(result), what)
        return result

    return estimated


def _written(value: Any) -> Any:
    """Each ``{{ ... }}`` a template writes, anywhere (the environment's ``finalize``): measured before it becomes text, then charged."""
    if not isinstance(value, str):
        if isinstance(value, (int, float)):  # most writes that are not text; their digits are bounded already
            value = str(value)
        elif hasattr(value, "__html__"):
            return value
        else:
            _text_fits(value, "an expression")
            value = str(value)
    _built(len(value), "an expression")
    return value


def _plain_join(parts: Iterable[Any]) -> str:
    return "".join(str(part) for part in parts)


def _join_checked(join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: measured before it is joined."""
    _value_fits(sum(len(part) if isinstance(part, str) else _printed_size(part) for part in parts), "'~'")
    return join(parts)


def _counted(items: Iterable[Any], budget: _Budget, text: int) -> Iterator[Any]:
    for item in items:
        _iterate(budget, 1, text)
        yield item


def _iterate(budget: _Budget, count: int, text: int) -> None:
    budget.iterations += count
    if budget.iterations > MAX_ITERATIONS:
        raise _exceeds(f"the limit of {MAX_ITERATIONS:,} loop iterations in one render", f"a loop of {count:,} brought it to {budget.iterations:,}")
    if text:
        _work(count * text, "the text of a loop")


def _loop_text(loop: nodes.For) -> int:
    """The characters of literal text one iteration of a loop writes (its inner loops count their own)."""
    total = 0
    todo: list[nodes.Node] = list(loop.body)
    while todo:
        node = todo.pop()
        if isinstance(node, nodes.For):
            continue
        if isinstance(node, nodes.Output):
            for part in node.nodes:
                if isinstance(part, nodes.TemplateData):
                    total += len(part.data)
                elif isinstance(part, nodes.Const) and isinstance(part.value, str):
                    total += len(part.value)
        todo.extend(node.iter_child_nodes())
    return total


_LOOP_HOOK = "bounded_loop"


def _loop_items(loop: nodes.For) -> nodes.Call:
    """What a ``for`` loop runs over, as a call of the environment's loop counter (no template can write an environment attribute)."""
    return nodes.Call(nodes.EnvironmentAttribute(_LOOP_HOOK), [loop.iter, nodes.Const(_loop_text(loop))], [], None, None, lineno=loop.iter.lineno)


def _is_loop_items(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Call) and isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == _LOOP_HOOK


class _Compiler(CodeGenerator):
    """Jinja's code generator with the two hooks the limits need: loops counted, ``~`` measured."""

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if not _is_loop_items(node):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        self.write(f"environment.{_LOOP_HOOK}(")  # a direct call: the loop counter is not one of the template's calls
        self.visit(node.args[0], frame)
        self.write(", ")
        self.visit(node.args[1], frame)
        self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.autoescape else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.bounded_join({join}, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class _BoundedTemplate(Template):
    """A template whose render runs on a fresh budget (a render inside another shares its caller's) and gives at most MAX_TEXT characters.

    The output is measured once it is joined: what a render writes is charged to its
    budget as it is written (every ``{{ }}``, call and loop text), so the text joined is
    never much more than MAX_BUILT.
    """

    def render(self, *args: Any, **kwargs: Any) -> str:
        token = _BUDGET.set(_Budget()) if _BUDGET.get() is None else None
        try:
            context = self.new_context(dict(*args, **kwargs))
            try:
                text = "".join(self.root_render_func(context))
            except Exception:
                self.environment.handle_exception()
        finally:
            if token is not None:
                _BUDGET.reset(token)
        if len(text) > MAX_TEXT:
            raise _exceeds(f"the limit of {MAX_TEXT:,} characters of output", f"it wrote {len(text):,}")
        return text


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the limits of one render (see MAX_TEXT and the numbers after it).

    ``*``, ``**``, ``+`` and ``%`` are intercepted (which also keeps the compiler from
    folding ``'a' * 10**10`` while compiling), every loop and call is counted, every
    filter and text method that may grow text is estimated before it runs, every
    ``{{ }}`` and ``~`` is measured before it becomes text, and an output past MAX_TEXT
    is refused. What a render may still do unmeasured: an ``{% include %}`` of a message
    template's partial inside a loop writes the partial's literal text each time
    (counted as iterations, not as text).
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Compiler
    template_class = _BoundedTemplate

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.finalize = _written
        self.filters = {name: bounded_filter(name, function) for name, function in self.filters.items()}
        self.globals.update(range=_range, lipsum=_lipsum)

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False) -> str:
        for loop in list(source.find_all(nodes.For)):
            if not _is_loop_items(loop.iter):
                loop.iter = _loop_items(loop).set_environment(self)
        return super()._generate(source, name, filename, defer_init)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        result = _binop(operator, left, right)
        if isinstance(result, _SEQUENCES):
            _built(len(result), "an operator")
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # Jinja's signature (__self: any keyword may be passed on)
        budget = _BUDGET.get()
        if budget is not None:
            budget.calls += 1
            if budget.calls > MAX_CALLS:
                raise _exceeds(f"the limit of {MAX_CALLS:,} calls in one render", "a macro that calls itself?")
        if isinstance(__obj, LoopContext) and args:  # loop(children) in a recursive loop: a loop too
            args = (__self.bounded_loop(args[0], 0), *args[1:])
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        owner = getattr(method, "__self__", None)
        if not isinstance(owner, (str, bytes)) or not isinstance(method, types.BuiltinMethodType):
            result = super().call(__context, __obj, *args, **kwargs)
            if isinstance(result, str):  # a macro's, a caller's or a block's text: written without a {{ }} by {% call %}
                _built(len(result), "a call")
            return result
        name = method.__name__
        what = f"{type(owner).__name__}.{name}"
        if name == "join" and args and not isinstance(args[0], (list, tuple, str)):
            args = (list(args[0]), *args[1:])
        size = _METHOD_SIZES.get(name)
        if size is not None:
            _value_fits(size(owner, args, kwargs), what)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, bytes)):
            _built(len(result), what)
        return result

    def bounded_loop(self, items: Any, text: int) -> Any:
        """Count a loop's iterations (and its literal text) against the render's budget; called by compiled templates."""
        budget = _BUDGET.get()
        if budget is None:
            return items
        try:
            count = len(items)
        except TypeError:
            return _counted(items, budget, text)
        _iterate(budget, count, text)
        return items

    def bounded_join(self, join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """``a ~ b``: measured before it is joined, then charged; called by compiled templates."""
        result = _join_checked(join, parts)
        _built(len(result), "'~'")
        return result


@lru_cache(maxsize=4096)
def _compiled_template(source: str) -> Any:
    return environment().from_string(source)


@lru_cache(maxsize=4096)
def _compiled_expression(source: str) -> Any:
    return environment().compile_expression(source, undefined_to_none=True)


def _shown(source: str) -> str:
    """A template as an error quotes it: whole when short."""
    return repr(source) if len(source) <= 200 else repr(source[:200]) + "..."


def render(source: str, scope: dict[str, Any]) -> str:
    """Render a template to text in the sandbox, within the limits of one render.

    Raises:
        StepError: the template fails at run time, or goes past a limit ("template ... exceeds ...").
    """
    try:
        return str(_compiled_template(source).render(scope))
    except TemplateLimitError as error:
        raise StepError(f"template {_shown(source)} {error}") from error
    except TemplateError as error:
        raise StepError(f"template {_shown(source)} failed: {error}") from error
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:  # 1/0, a bad argument, ...
        raise StepError(f"template {_shown(source)} failed: {error}") from error
    except RecursionError as error:
        raise StepError(f"template {_shown(source)} nests or recurses too deeply") from error


def evaluate(source: str, scope: dict[str, Any]) -> Any:
    """Evaluate a bare expression (a ``when``) to a Python value, within the limits of one render.

    Raises:
        StepError: the expression fails at run time, or goes past a limit.
    """
    token = _BUDGET.set(_Budget()) if _BUDGET.get() is None else None
    try:
        return _compiled_expression(source)(**scope)
    except TemplateLimitError as error:
        raise StepError(f"expression {_shown(source)} {error}") from error
    except TemplateError as error:
        raise StepError(f"expression {_shown(source)} failed: {error}") from error
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise StepError(f"expression {_shown(source)} failed: {error}") from error
    except RecursionError as error:
        raise StepError(f"expression {_shown(source)} nests or recurses too deeply") from error
    finally:
        if token is not None:
            _BUDGET.reset(token)


def single_expression(value: str) -> str | None:
    """The expression of a value that is one ``{{ x }}`` alone (it keeps x's type), else None (it renders to text)."""
    single = _SINGLE_EXPRESSION.match(value)
    if single and "{{" not in single.group("expr") and "{%" not in value:
        return single.group("expr")
    return None


def resolve_value(value: Any, scope: dict[str, Any]) -> Any:
    """Resolve a configured value: ``"{{ x }}"`` alone keeps x's type, other templates render to text.

    Mappings and lists are resolved item by item.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        single = single_expression(value)
        if single is not None:
            return evaluate(single, scope)
        return render(value, scope)
    if isinstance(value, dict):
        return {key: resolve_value(item, scope) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_value(item, scope) for item in value]
    return value
