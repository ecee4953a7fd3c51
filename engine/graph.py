"""A definition as a diagram: its graph (steps, exits, loops, joins, linked cases), as Mermaid text and as standalone SVG.

Pure: a checked :class:`~.spec.ProcessSpec` in, text out. The exits are the router's own
(:func:`.router.exits`), so the picture never disagrees with where a case goes. ``marks``
(step id → ``done``, ``waiting``, ``withdrawn`` or ``current``) colour the steps of one case.
The SVG is laid out by grandalf's layered (Sugiyama) layout, in pure Python: no Graphviz,
no script, no external reference, so it can be pasted into an offline HTML file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from math import atan2, cos, hypot, sin

from .router import FAILED_OUTCOME, IMPLICIT_OUTCOME, exits
from .spec import (
    ApprovalStep,
    CallStep,
    ChecklistStep,
    DecisionStep,
    EndStep,
    FormStep,
    JoinStep,
    NotifyStep,
    ParallelStep,
    ProcessSpec,
    RecordStep,
    StartStep,
    StepSpec,
    WaitStep,
)

MARKS = ("done", "waiting", "withdrawn", "current")
"""The states a step of a case can be marked with."""
OUTCOME = "outcome"
"""The kind of a node that stands for a case ending without an ``end`` step (``rejected``, ``completed``)."""
LINKED = "linked"
"""The kind of a node that stands for another process a ``start`` step opens cases of."""


@dataclass(frozen=True)
class Node:
    """One box of the diagram.

    Attributes:
        id: the step id; ``outcome:NAME`` or ``process:NAME`` for the nodes no step has.
        kind: the step type (``approval``, ``decision``, ``join``...), :data:`OUTCOME` or :data:`LINKED`.
        title: the step's title with its templates shown as ``…`` (None without a title).
        who: for a human step, who answers (its assignee references).
        for_each: for a multi-instance step, the list it runs over.
        detail: what else the kind says: a join's ``wait all``, a decision's mode, an end's outcome...
    """

    id: str
    kind: str
    title: str | None = None
    who: str | None = None
    for_each: str | None = None
    detail: str | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        """The text of the box, line by line: name, title, kind and detail, who answers."""
        head = self.id.split(":", 1)[1] if self.kind in (OUTCOME, LINKED) else self.id
        lines = [head]
        if self.title and self.title != head:
            lines.append(self.title)
        meta = " · ".join(part for part in (self.kind if self.kind not in (OUTCOME, LINKED) else None, self.detail) if part)
        if meta:
            lines.append(meta)
        if self.who:
            lines.append(f"by {self.who}")
        if self.for_each:
            lines.append(f"for each {self.for_each}")
        return tuple(lines)


@dataclass(frozen=True)
class Arrow:
    """One exit of a step, drawn as an arrow.

    Attributes:
        source: the step it leaves.
        target: the node it goes to.
        exit: the router's label of the exit (``approve``, ``when[0]``, ``otherwise``, ``branch[1]``...),
            or ``starts`` for a ``start`` step's linked cases.
        label: what the arrow says: a branch's condition, ``otherwise``, ``reject``; empty for plain ``next``.
        loop: whether it goes back to a step the case already passed (a loop's back edge).
    """

    source: str
    target: str
    exit: str
    label: str
    loop: bool = False


@dataclass(frozen=True)
class Graph:
    """A definition's diagram: every step a node, every exit an arrow."""

    process: str
    title: str
    nodes: tuple[Node, ...]
    arrows: tuple[Arrow, ...] = field(default_factory=tuple)

    def node(self, node_id: str) -> Node:
        """The node with this id (KeyError if none)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


# --- the model ---------------------------------------------------------------------------------------

_TEMPLATE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}|\{%.*?%\}", re.S)
_LABEL_LIMIT = 60
_NAME_PARTS = re.compile(r"[.\[\]'\"\s]+")


def graph(spec: ProcessSpec) -> Graph:
    """The diagram of a checked definition: steps, their exits with conditions, loops, joins, linked processes."""
    nodes = [_node(step) for step in spec.steps]
    arrows: list[Arrow] = []
    extra: dict[str, Node] = {}
    for step in spec.steps:
        for exit_ in exits(spec, step):
            if exit_.target is not None:
                arrows.append(Arrow(step.id, exit_.target, exit_.label, _exit_label(step, exit_.label)))
            elif not isinstance(step, EndStep):
                outcome = {"reject": "rejected", "error": FAILED_OUTCOME}.get(exit_.label, IMPLICIT_OUTCOME)
                target = f"{OUTCOME}:{outcome}"
                extra.setdefault(target, Node(target, OUTCOME, detail=f"ends: {outcome}"))
                arrows.append(Arrow(step.id, target, exit_.label, _exit_label(step, exit_.label)))
        if isinstance(step, StartStep):
            target = f"process:{step.process}"
            extra.setdefault(target, Node(target, LINKED, detail="linked case"))
            starts = "starts each" if step.for_each else "starts"
            arrows.append(Arrow(step.id, target, "starts", starts if step.wait is None else f"{starts}, waits {step.wait}"))
    back = _back_edges(spec.steps[0].id, arrows)
    arrows = [Arrow(a.source, a.target, a.exit, a.label, loop=(a.source, a.target) in back) for a in arrows]
    return Graph(spec.process, spec.title, (*nodes, *extra.values()), tuple(arrows))


def _node(step: StepSpec) -> Node:
    title = _plain(step.title, short=True) if step.title else None
    if isinstance(step, (ApprovalStep, FormStep, ChecklistStep)):
        details = []
        if isinstance(step, ApprovalStep) and step.quorum > 1:
            details.append(f"quorum {step.quorum}")
        if isinstance(step, ChecklistStep):
            details.append(f"pass mark {step.pass_mark:g}")
        if step.due:
            details.append(f"due {step.due}")
        if step.for_each:
            details.append(f"wait {step.wait or 'all'}")
        who = ", ".join(_plain(reference) for reference in step.assignees)
        return Node(step.id, step.type, title, who, _plain(step.for_each) if step.for_each else None, " · ".join(details) or None)
    detail: str | None = None
    for_each = None
    if isinstance(step, DecisionStep):
        detail = "all that hold" if step.splits else "first that holds"
    elif isinstance(step, JoinStep):
        detail = f"wait {step.wait}"
    elif isinstance(step, ParallelStep):
        detail = f"{len(step.branches)} branches"
    elif isinstance(step, EndStep):
        detail = step.outcome
    elif isinstance(step, StartStep):
        detail = step.process + (f" · waits {step.wait}" if step.wait is not None else "")
        for_each = _plain(step.for_each) if step.for_each else None
    elif isinstance(step, WaitStep):
        detail = step.duration or f"until {_plain(step.until or '')}"
    elif isinstance(step, NotifyStep):
        detail = ", ".join(_plain(target) for target in step.to)
    elif isinstance(step, RecordStep):
        detail = ", ".join(step.set)
    elif isinstance(step, CallStep):
        detail = step.call + (f" · {step.retry.attempts} attempts" if step.retry is not None and step.retry.attempts > 1 else "")
    return Node(step.id, step.type, title, None, for_each, _clip(detail) if detail else None)


def _exit_label(step: StepSpec, label: str) -> str:
    """What an exit's arrow says: the condition of a decision's branch, the outcome of a human step."""
    if isinstance(step, DecisionStep) and label.startswith("when["):
        return _clip(" ".join(step.branches[int(label[5:-1])].when.split()))
    if label in ("next", "end") or label.startswith("branch["):
        return ""
    return label


def _plain(text: str, *, short: bool = False) -> str:
    """Template text readable in a box: ``{{ triage.owner }}`` as ``triage.owner``, or as ``‹owner›`` inside a title (``short``)."""

    def shown(found: re.Match[str]) -> str:
        expression = (found.group(1) or "").split("|")[0].strip()
        if not short:
            return expression or "…"
        names = [name for name in _NAME_PARTS.split(expression) if name]
        return f"‹{names[-1]}›" if names else "…"

    return _clip(" ".join(_TEMPLATE.sub(shown, text).split()))


def _clip(text: str) -> str:
    return text if len(text) <= _LABEL_LIMIT else text[: _LABEL_LIMIT - 1].rstrip() + "…"


def _back_edges(first: str, arrows: list[Arrow]) -> set[tuple[str, str]]:
    """The arrows that go back up a path from the first step (depth first, exits in order): the loops."""
    out: dict[str, list[str]] = {}
    for arrow in arrows:
        out.setdefault(arrow.source, []).append(arrow.target)
    back: set[tuple[str, str]] = set()
    on_path: set[str] = set()
    seen: set[str] = set()
    stack: list[tuple[str, int]] = [(first, 0)]
    on_path.add(first)
    seen.add(first)
    while stack:
        node, index = stack[-1]
        targets = out.get(node, [])
        if index >= len(targets):
            stack.pop()
            on_path.discard(node)
            continue
        stack[-1] = (node, index + 1)
        target = targets[index]
        if target in on_path:
            back.add((node, target))
        elif target not in seen:
            seen.add(target)
            on_path.add(target)
            stack.append((target, 0))
    return back


def _merged(arrows: Iterable[Arrow]) -> list[Arrow]:
    """One arrow per (source, target): exits that go to the same place share it, their labels joined."""
    by_pair: dict[tuple[str, str], list[Arrow]] = {}
    for arrow in arrows:
        by_pair.setdefault((arrow.source, arrow.target), []).append(arrow)
    merged = []
    for (source, target), same in by_pair.items():
        labels = [a.label for a in same if a.label]
        merged.append(Arrow(source, target, "/".join(a.exit for a in same), " / ".join(dict.fromkeys(labels)), any(a.loop for a in same)))
    return merged


def _checked_marks(graph_: Graph, marks: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    ids = {node.id for node in graph_.nodes}
    for step_id, state in (marks or {}).items():
        if state not in MARKS:
            raise ValueError(f"mark {state!r} of step {step_id!r} is not one of {', '.join(MARKS)}")
        if step_id in ids:
            out[step_id] = state
    return out


# --- Mermaid ------------------------------------------------------------------------------------------

MERMAID_CLASSES = {
    "done": "fill:#dcfce7,stroke:#16a34a,color:#14532d",
    "waiting": "fill:#fef3c7,stroke:#d97706,stroke-width:3px,color:#78350f",
    "withdrawn": "fill:#f3f4f6,stroke:#9ca3af,stroke-dasharray:4 3,color:#6b7280",
    "current": "fill:#dbeafe,stroke:#2563eb,stroke-width:3px,color:#1e3a8a",
    "linked": "fill:#ffffff,stroke:#6b7280,stroke-dasharray:6 3",
}
"""The ``classDef`` of each mark (and of linked processes), as Mermaid styles."""

_MERMAID_SHAPES = {
    "approval": ('("', '")'),
    "form": ('("', '")'),
    "checklist": ('("', '")'),
    "decision": ('{"', '"}'),
    "parallel": ('{{"', '"}}'),
    "join": ('{{"', '"}}'),
    "end": ('(["', '"])'),
    OUTCOME: ('(["', '"])'),
    "start": ('[["', '"]]'),
    LINKED: ('["', '"]'),
    "notify": ('>"', '"]'),
    "record": ('[("', '")]'),
    "wait": ('[/"', '"/]'),
}


def mermaid(spec: ProcessSpec, marks: Mapping[str, str] | None = None) -> str:
    """The definition as a Mermaid ``flowchart TD``, the steps of ``marks`` in their state's class.

    Raises:
        ValueError: a mark that is not one of :data:`MARKS`.
    """
    diagram = graph(spec)
    states = _checked_marks(diagram, marks)
    ids = _mermaid_ids(node.id for node in diagram.nodes)
    lines = ["flowchart TD"]
    for node in diagram.nodes:
        opening, closing = _MERMAID_SHAPES.get(node.kind, ('["', '"]'))
        text = "<br/>".join(_mermaid_text(line) for line in node.lines)
        lines.append(f"    {ids[node.id]}{opening}{text}{closing}")
    for arrow in _merged(diagram.arrows):
        dotted = arrow.loop or arrow.exit == "starts"
        label = ("↺ " + arrow.label if arrow.label else "↺ loop") if arrow.loop else arrow.label
        link = "-.->" if dotted else "-->"
        text = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"    {ids[arrow.source]} {link}{text} {ids[arrow.target]}")
    linked = [ids[node.id] for node in diagram.nodes if node.kind == LINKED]
    used = {*states.values(), *(["linked"] if linked else [])}
    for name, style in MERMAID_CLASSES.items():
        if name in used:  # an unmarked diagram stays short where it is shown as text
            lines.append(f"    classDef {name} {style}")
    if linked:
        lines.append(f"    class {','.join(linked)} linked")
    for state in MARKS:
        marked = [ids[node.id] for node in diagram.nodes if states.get(node.id) == state]
        if marked:
            lines.append(f"    class {','.join(marked)} {state}")
    return "\n".join(lines) + "\n"


def mermaid_id(step_id: str) -> str:
    """A node id Mermaid takes whatever the step is called: no keyword (``end``), no ``-`` (read as a link)."""
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", step_id)


def _mermaid_ids(node_ids: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for node_id in node_ids:
        base = candidate = mermaid_id(node_id)
        number = 2
        while candidate in used:  # tell-reporter and tell_reporter are two steps
            candidate, number = f"{base}_{number}", number + 1
        used.add(candidate)
        out[node_id] = candidate
    return out


_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "&": "#amp;", "<": "#lt;", ">": "#gt;", "|": "#124;", "`": "#96;"}
"""Inside a quoted label brackets and CJK text are plain; these would end the label, start an entity,
markup or a Markdown string, so they go as Mermaid's entity codes (``#quot;``)."""


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: every character that means something to Mermaid as an entity code."""
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in " ".join(text.split()))


# --- SVG ----------------------------------------------------------------------------------------------

FONT_FAMILY = ("system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Noto Sans', "
               "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei', "
               "'WenQuanYi Micro Hei', sans-serif")
"""Generic families first, then names that have CJK glyphs, so Chinese titles never show as boxes where a font has them."""
SVG_COLOURS = {
    None: ("#ffffff", "#475569", "#0f172a"),
    "done": ("#dcfce7", "#16a34a", "#14532d"),
    "waiting": ("#fef3c7", "#d97706", "#78350f"),
    "withdrawn": ("#f3f4f6", "#9ca3af", "#6b7280"),
    "current": ("#dbeafe", "#2563eb", "#1e3a8a"),
}
"""Fill, stroke and text colour of a node by its mark (inline attributes: no stylesheet leaks into a host page)."""
_FONT = 12.0
_LINE = 15.0
_PAD_X, _PAD_Y = 12.0, 8.0
_MARGIN = 16.0
_X_SPACE, _Y_SPACE = 36.0, 44.0


def svg(spec: ProcessSpec, marks: Mapping[str, str] | None = None) -> str:
    """The definition as a standalone ``<svg>`` document: no script, no external reference, sized by its layout.

    Each node is one ``<g class="node" data-step=… data-kind=… data-mark=…>`` with one shape and its
    text; each arrow a ``<g class="edge" data-source=… data-target=…>`` with its path, head and label.

    Raises:
        ValueError: a mark that is not one of :data:`MARKS`.
    """
    diagram = graph(spec)
    states = _checked_marks(diagram, marks)
    boxes = {node.id: _Box(node) for node in diagram.nodes}
    arrows = _merged(diagram.arrows)
    routes = _layout(diagram, boxes, arrows)
    xs = [v for box in boxes.values() for v in (box.x - box.w / 2, box.x + box.w / 2)]
    ys = [v for box in boxes.values() for v in (box.y - box.h / 2, box.y + box.h / 2)]
    for points in routes.values():
        xs.extend(p[0] for p in points)
        ys.extend(p[1] for p in points)
    left, top = min(xs) - _MARGIN, min(ys) - _MARGIN - 24
    width, height = max(xs) - left + _MARGIN + 40, max(ys) - top + _MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="{left:.1f} {top:.1f} {width:.1f} {height:.1f}" role="img" aria-label="{_attr(diagram.title)}" '
        f'font-family="{_attr(FONT_FAMILY)}" font-size="{_FONT:g}" class="aftercare-graph" data-process="{_attr(diagram.process)}">',
        f"<title>{escape(diagram.title)} ({escape(diagram.process)})</title>",
        f'<text x="{left + _MARGIN:.1f}" y="{top + 20:.1f}" font-size="14" font-weight="600" fill="#0f172a">{escape(diagram.title)}</text>',
    ]
    for arrow in arrows:
        out.append(_svg_edge(arrow, routes[(arrow.source, arrow.target)], boxes))
    for node in diagram.nodes:
        out.append(_svg_node(node, boxes[node.id], states.get(node.id)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _width(text: str, bold: bool = False) -> float:
    """An estimate of the text's width: wide (CJK) characters count double."""
    units = sum(2.0 if unicodedata.east_asian_width(char) in ("W", "F") else 1.0 for char in text)
    return units * _FONT * (0.62 if bold else 0.58)


class _Box:
    """A node's size, then its centre (what grandalf calls a vertex's view)."""

    def __init__(self, node: Node) -> None:
        lines = node.lines
        text_w = max(_width(line, bold=index == 0) for index, line in enumerate(lines))
        text_h = len(lines) * _LINE
        self.kind = node.kind
        self.text_w, self.text_h = text_w, text_h
        w, h = text_w + 2 * _PAD_X, text_h + 2 * _PAD_Y
        if node.kind == "decision":
            w, h = w / 0.6, h / 0.4  # the text's corners stay inside the diamond
        elif node.kind in ("parallel", "join"):
            w += h
        elif node.kind in ("end", OUTCOME):
            w += h / 2
        self.w, self.h = w, h
        self.xy: tuple[float, float] = (0.0, 0.0)

    @property
    def x(self) -> float:
        return self.xy[0]

    @property
    def y(self) -> float:
        return self.xy[1]

    def border(self, towards: tuple[float, float]) -> tuple[float, float]:
        """Where a line from the centre towards a point leaves the shape."""
        dx, dy = towards[0] - self.x, towards[1] - self.y
        if abs(dx) < 1e-9 and abs(dy) < 1e-9:
            return self.xy
        half_w, half_h = self.w / 2, self.h / 2
        if self.kind == "decision":
            scale = 1 / (abs(dx) / half_w + abs(dy) / half_h)
        else:
            scale = min(half_w / abs(dx) if dx else float("inf"), half_h / abs(dy) if dy else float("inf"))
        return self.x + dx * scale, self.y + dy * scale


class _EdgeView:
    """Where grandalf leaves an edge's route (the centres it passes, dummy vertices included)."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = list(points)


def _layout(diagram: Graph, boxes: Mapping[str, _Box], arrows: list[Arrow]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Place the nodes by layers (grandalf's Sugiyama layout, loops turned around) and route each arrow through its layers."""
    from grandalf.graphs import Edge, Graph as LayoutGraph, Vertex  # type: ignore[import-untyped]
    from grandalf.layouts import SugiyamaLayout  # type: ignore[import-untyped]

    vertices = {node.id: Vertex(node.id) for node in diagram.nodes}
    for node_id, vertex in vertices.items():
        vertex.view = boxes[node_id]
    edges: dict[tuple[str, str], object] = {}
    loops = []
    for arrow in arrows:
        if arrow.source == arrow.target:
            continue  # a step that goes back to itself: drawn as a small arc beside it
        edge = Edge(vertices[arrow.source], vertices[arrow.target])
        edge.view = _EdgeView()
        edges[(arrow.source, arrow.target)] = edge
        if arrow.loop:
            loops.append(edge)
    layout_graph = LayoutGraph(list(vertices.values()), list(edges.values()))
    first = diagram.nodes[0].id
    offset = 0.0
    for component in layout_graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = _X_SPACE, _Y_SPACE
        sugiyama.dw, sugiyama.dh = 12, 12  # dummy vertices (the bends of long arrows) stay thin
        members = list(component.sV)
        roots = [v for v in members if v.data == first] or [v for v in members if not v.e_in()][:1] or members[:1]
        inverted = [edge for edge in loops if edge in component.sE]
        sugiyama.init_all(roots=roots, inverted_edges=inverted)
        sugiyama.draw()
        left = min(v.view.xy[0] - v.view.w / 2 for v in members)
        right = max(v.view.xy[0] + v.view.w / 2 for v in members)
        shift = offset - left
        for vertex in members:
            vertex.view.xy = (vertex.view.xy[0] + shift, vertex.view.xy[1])
        for edge in component.sE:
            edge.view.points = [(x + shift, y) for x, y in edge.view.points]
        offset += right - left + 3 * _X_SPACE
    routes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for arrow in arrows:
        source, target = boxes[arrow.source], boxes[arrow.target]
        if arrow.source == arrow.target:
            x, y, w, h = source.x, source.y, source.w, source.h
            routes[(arrow.source, arrow.target)] = [(x + w / 2, y - h / 4), (x + w / 2 + 28, y - h / 4), (x + w / 2 + 28, y + h / 4), (x + w / 2, y + h / 4)]
            continue
        edge = edges[(arrow.source, arrow.target)]
        points = list(edge.view.points) or [source.xy, target.xy]  # type: ignore[attr-defined]
        points[0] = source.border(points[1])
        points[-1] = target.border(points[-2])
        routes[(arrow.source, arrow.target)] = points
    return routes


def _svg_node(node: Node, box: _Box, mark: str | None) -> str:
    fill, stroke, ink = SVG_COLOURS[mark]
    x, y, w, h = box.x - box.w / 2, box.y - box.h / 2, box.w, box.h
    width = 2.5 if mark in ("waiting", "current") else 1.2
    dash = ' stroke-dasharray="4 3"' if mark == "withdrawn" or node.kind == LINKED else ""
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}'
    if node.kind == "decision":
        shape = f'<polygon points="{box.x:.1f},{y:.1f} {x + w:.1f},{box.y:.1f} {box.x:.1f},{y + h:.1f} {x:.1f},{box.y:.1f}" {paint}/>'
    elif node.kind in ("parallel", "join"):
        inset = h / 2
        shape = (f'<polygon points="{x + inset:.1f},{y:.1f} {x + w - inset:.1f},{y:.1f} {x + w:.1f},{box.y:.1f} '
                 f'{x + w - inset:.1f},{y + h:.1f} {x + inset:.1f},{y + h:.1f} {x:.1f},{box.y:.1f}" {paint}/>')
    else:
        radius = {"end": h / 2, OUTCOME: h / 2, "approval": 10.0, "form": 10.0, "checklist": 10.0}.get(node.kind, 2.0)
        shape = f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius:.1f}" {paint}/>'
        if node.kind == "start":  # a subroutine's double sides
            shape += (f'<path d="M{x + 6:.1f},{y:.1f}V{y + h:.1f}M{x + w - 6:.1f},{y:.1f}V{y + h:.1f}" '
                      f'stroke="{stroke}" stroke-width="1" fill="none"/>')
    lines = node.lines
    first_y = box.y - (len(lines) - 1) * _LINE / 2 + _FONT * 0.35
    texts = []
    for index, line in enumerate(lines):
        weight = ' font-weight="600"' if index == 0 else ""
        colour = ink if index == 0 else ("#6b7280" if mark == "withdrawn" else "#334155")
        texts.append(f'<text x="{box.x:.1f}" y="{first_y + index * _LINE:.1f}" text-anchor="middle" fill="{colour}"{weight}>{escape(line)}</text>')
    state = f' data-mark="{mark}"' if mark else ""
    return (f'<g class="node" data-step="{_attr(node.id)}" data-kind="{_attr(node.kind)}"{state}>'
            f"<title>{escape(' · '.join(lines))}</title>{shape}{''.join(texts)}</g>")


def _svg_edge(arrow: Arrow, points: list[tuple[float, float]], boxes: Mapping[str, _Box]) -> str:
    colour = "#64748b"
    dash = ' stroke-dasharray="5 4"' if arrow.loop or arrow.exit == "starts" else ""
    path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
    (x1, y1), (x2, y2) = points[-2], points[-1]
    angle = atan2(y2 - y1, x2 - x1)
    size = 8.0
    head = " ".join(f"{x2 - size * cos(angle + turn):.1f},{y2 - size * sin(angle + turn):.1f}" for turn in (0.4, -0.4))
    parts = [f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.3"{dash}/>',
             f'<polygon points="{x2:.1f},{y2:.1f} {head}" fill="{colour}"/>']
    label = ("↺ " + arrow.label if arrow.label else "↺ loop") if arrow.loop else arrow.label
    if label:
        lx, ly = _along(points, 0.5)
        w = _width(label) + 8
        parts.append(f'<rect x="{lx - w / 2:.1f}" y="{ly - 9:.1f}" width="{w:.1f}" height="16" rx="3" fill="#ffffff" fill-opacity="0.9"/>')
        parts.append(f'<text x="{lx:.1f}" y="{ly + 3.5:.1f}" text-anchor="middle" font-size="11" fill="#334155">{escape(label)}</text>')
    loop = ' data-loop="true"' if arrow.loop else ""
    return (f'<g class="edge" data-source="{_attr(arrow.source)}" data-target="{_attr(arrow.target)}" '
            f'data-exit="{_attr(arrow.exit)}" data-label="{_attr(arrow.label)}"{loop}>{"".join(parts)}</g>')


def _along(points: list[tuple[float, float]], fraction: float) -> tuple[float, float]:
    """The point at a fraction of a polyline's length."""
    lengths = [hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(points, points[1:])]
    goal = sum(lengths) * fraction
    for (a, b), length in zip(zip(points, points[1:]), lengths):
        if goal <= length and length > 0:
            t = goal / length
            return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        goal -= length
    return points[-1]


def _attr(text: str) -> str:
    return escape(text, quote=True)


__all__ = ["MARKS", "Arrow", "Graph", "Node", "graph", "mermaid", "mermaid_id", "svg"]
