"""Sandboxed Jinja2: rendering templates, evaluating ``when`` expressions, finding the names they use and the attributes the sandbox refuses."""

from __future__ import annotations

import re
import string
from _string import formatter_field_name_split  # type: ignore[import-not-found]  # untyped C module; the sandbox's formatter splits fields with it too
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2.exceptions import TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import StepError

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The shared sandboxed environment (undefined names are empty and falsy, never a crash)."""
    return ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


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
        TemplateSyntaxError: the source does not parse.
    """
    return environment().parse(f"{{{{ {source} }}}}" if expression else source)


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


@lru_cache(maxsize=8192)
def _analysed(source: str, expression: bool) -> _Analysis:
    """One parse per distinct source: its names, hyphen subtractions and refused attributes (the checks ask for all three)."""
    tree = parse(source, expression=expression)
    return _Analysis(tuple(_names_in(tree)), tuple(_subtractions_in(tree)), tuple(_unsafe_in(tree)))


def _names_in(tree: nodes.Template | nodes.Expr) -> list[NameUse]:
    stored = {node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")}
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


@lru_cache(maxsize=4096)
def _compiled_template(source: str) -> Any:
    return environment().from_string(source)


@lru_cache(maxsize=4096)
def _compiled_expression(source: str) -> Any:
    return environment().compile_expression(source, undefined_to_none=True)


def render(source: str, scope: dict[str, Any]) -> str:
    """Render a template to text in the sandbox.

    Raises:
        StepError: the template fails at run time.
    """
    try:
        return str(_compiled_template(source).render(scope))
    except TemplateError as error:
        raise StepError(f"template {source!r} failed: {error}") from error
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:  # 1/0, the sandbox's range limit, ...
        raise StepError(f"template {source!r} failed: {error}") from error


def evaluate(source: str, scope: dict[str, Any]) -> Any:
    """Evaluate a bare expression (a ``when``) to a Python value.

    Raises:
        StepError: the expression fails at run time.
    """
    try:
        return _compiled_expression(source)(**scope)
    except TemplateError as error:
        raise StepError(f"expression {source!r} failed: {error}") from error
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise StepError(f"expression {source!r} failed: {error}") from error


def resolve_value(value: Any, scope: dict[str, Any]) -> Any:
    """Resolve a configured value: ``"{{ x }}"`` alone keeps x's type, other templates render to text.

    Mappings and lists are resolved item by item.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        single = _SINGLE_EXPRESSION.match(value)
        if single and "{{" not in single.group("expr") and "{%" not in value:
            return evaluate(single.group("expr"), scope)
        return render(value, scope)
    if isinstance(value, dict):
        return {key: resolve_value(item, scope) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve_value(item, scope) for item in value]
    return value
