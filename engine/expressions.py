"""Sandboxed Jinja2: rendering templates, evaluating ``when`` expressions, finding the names they use."""

from __future__ import annotations

import re
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
    return list(_analysed(source, expression)[0])


@lru_cache(maxsize=8192)
def _analysed(
    source: str, expression: bool
) -> tuple[tuple[NameUse, ...], tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]]:
    """One parse per distinct source: the names it uses and its hyphen subtractions (the checks ask for both)."""
    tree = parse(source, expression=expression)
    return tuple(_names_in(tree)), tuple(_subtractions_in(tree))


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
    return list(_analysed(source, expression)[1])


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
