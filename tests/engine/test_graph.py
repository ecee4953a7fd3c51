"""engine/graph.py: the diagram of every shipped and v2 definition, as a model, as Mermaid and as SVG.

The model is checked against the router's own exits; the Mermaid text structurally (and by the
real Mermaid parser the Prefect UI bundles, in Chromium); the SVG as XML: one node group per
step with one shape, marks applied, no script, no external reference, no two boxes overlapping.
"""

from __future__ import annotations

import functools
import re
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine.graph import MARKS, graph, mermaid, mermaid_id, svg
from aftercare.engine.library import load_library, validate
from aftercare.engine.router import exits
from aftercare.engine.spec import DecisionStep, EndStep, JoinStep, ProcessSpec, StartStep, is_human

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
TEAM = """
team:
  people:
    ann: {name: Ann, email: ann@example.com}
    bob: {name: Bob, email: bob@example.com}
  roles:
    engineering: [ann]
    customer: [bob]
"""
INCLUSIVE = """
process: inclusive
title: 审批 "Reviews" [who] | <b>#1</b> & `more`
version: 1
key: INC
inputs:
  cost: {type: number}
  security: {type: boolean}
steps:
  - id: who-reviews
    type: decision
    mode: all
    branches:
      - {when: "inputs.cost > 10000 and inputs.cost < 99999", next: finance-review}
      - {when: "inputs.security", next: security-review}
    otherwise: reviewed
  - id: finance-review
    type: approval
    title: 财务审批 "{{ inputs.cost }}" [€] | {x}
    assignee: role:customer
    quorum: 1
    due: 2h
    on_timeout: end
    next: reviewed
  - id: security-review
    type: checklist
    assignee: [role:engineering, person:bob]
    items: [{id: tls, label: TLS}]
    next: reviewed
  - id: reviewed
    type: join
    wait: 2
  - id: again
    type: decision
    branches:
      - {when: "inputs.cost > 1", next: who-reviews}
    otherwise: end
  - {id: end, type: end, outcome: done}
"""


def _shipped() -> dict[str, ProcessSpec]:
    loaded, _ = validate([ROOT / "processes"])  # tests/test_library.py asserts the folder has no problem
    specs = {definition.spec.process: definition.spec for definition in loaded.values()}
    v2 = load_library(ROOT / "tests" / "data" / "v2")
    specs.update({name: definition.spec for name, definition in v2.definitions.items()})
    return specs


SPECS = _shipped()


@pytest.fixture(scope="module")
def inclusive(tmp_path_factory: pytest.TempPathFactory) -> ProcessSpec:
    folder = tmp_path_factory.mktemp("inclusive")
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    (folder / "inclusive.yaml").write_text(textwrap.dedent(INCLUSIVE), encoding="utf-8")
    return load_library(folder).get("inclusive").spec


def test_the_shipped_library_and_v2_data_are_all_here() -> None:
    assert len(SPECS) >= 20
    assert {"issue-resolution", "change-request", "reviews", "first-wins", "scores"} <= set(SPECS)


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_step_is_a_node_and_every_exit_an_arrow_with_its_condition(name: str) -> None:
    spec = SPECS[name]
    diagram = graph(spec)
    nodes = {node.id: node for node in diagram.nodes}
    assert [node.id for node in diagram.nodes[: len(spec.steps)]] == list(spec.step_ids)
    arrows = {(a.source, a.target, a.exit): a for a in diagram.arrows}
    for step in spec.steps:
        node = nodes[step.id]
        assert node.kind == step.type
        if is_human(step):
            assert node.who == ", ".join(re.sub(r"\{\{\s*(.*?)\s*\}\}", r"\1", ref) for ref in step.assignees)  # type: ignore[union-attr]
            assert (node.for_each is not None) == (step.for_each is not None)  # type: ignore[union-attr]
        if isinstance(step, JoinStep):
            assert node.detail == f"wait {step.wait}"
        for exit_ in exits(spec, step):
            if isinstance(step, EndStep):
                assert not [a for a in diagram.arrows if a.source == step.id]
                continue
            target = exit_.target or f"outcome:{'rejected' if exit_.label == 'reject' else 'completed'}"
            arrow = arrows[(step.id, target, exit_.label)]
            if isinstance(step, DecisionStep) and exit_.label.startswith("when["):
                when = " ".join(step.branches[int(exit_.label[5:-1])].when.split())
                assert arrow.label == (when if len(when) <= 60 else when[:59].rstrip() + "…")
            elif exit_.label in ("approve", "reject", "timeout", "pass", "fail", "otherwise", "error"):
                assert arrow.label == exit_.label
            else:
                assert arrow.label == ""
        if isinstance(step, StartStep):
            linked = arrows[(step.id, f"process:{step.process}", "starts")]
            assert nodes[linked.target].kind == "linked"
            assert ("waits" in linked.label) == (step.wait is not None)
    assert len(diagram.arrows) == len({(a.source, a.target, a.exit) for a in diagram.arrows})


@pytest.mark.parametrize("name", sorted(SPECS))
def test_loops_are_the_arrows_that_close_a_cycle(name: str) -> None:
    """Without the arrows marked as loops the graph has no cycle; each loop arrow closes one."""
    diagram = graph(SPECS[name])
    forward = _adjacency(a for a in diagram.arrows if not a.loop)
    assert _acyclic(forward)
    for arrow in diagram.arrows:
        if arrow.loop:
            assert arrow.source == arrow.target or _reaches(forward, arrow.target, arrow.source)


def test_known_loops_are_marked() -> None:
    assert {(a.source, a.target) for a in graph(SPECS["issue-resolution"]).arrows if a.loop} == {("reopen", "resolve")}
    loops = {(a.source, a.target, a.exit) for a in graph(SPECS["change-request"]).arrows if a.loop}
    assert loops == {("rework", "implement", "next")}
    assert not [a for a in graph(SPECS["reviews"]).arrows if a.loop]


def test_parallel_branches_and_joins(inclusive: ProcessSpec) -> None:
    reviews = graph(SPECS["reviews"])
    assert {(a.target, a.exit) for a in reviews.arrows if a.source == "reviews"} == {("tech-review", "branch[0]"), ("customer-review", "branch[1]")}
    assert reviews.node("reviewed").detail == "wait all"
    assert graph(SPECS["first-wins"]).node("reviewed").detail == "wait any"
    assert {(a.target, a.label) for a in graph(SPECS["first-wins"]).arrows if a.source == "reviewed"} == {("outcome:completed", "")}
    diagram = graph(inclusive)
    assert diagram.node("who-reviews").detail == "all that hold"
    assert diagram.node("reviewed").detail == "wait 2"
    assert {a.label for a in diagram.arrows if a.source == "who-reviews"} == {
        "inputs.cost > 10000 and inputs.cost < 99999", "inputs.security", "otherwise"}
    assert {(a.target, a.label) for a in diagram.arrows if a.source == "finance-review"} == {
        ("reviewed", "approve"), ("outcome:rejected", "reject"), ("end", "timeout")}
    assert diagram.node("security-review").who == "role:engineering, person:bob"
    assert [(a.source, a.target) for a in diagram.arrows if a.loop] == [("again", "who-reviews")]


def test_for_each_and_linked_cases_are_shown() -> None:
    scores = graph(SPECS["scores"]).node("score")
    assert (scores.for_each, scores.who, scores.title) == ("inputs.stakeholders", "person:item", "Score by ‹item›")
    assert "for each inputs.stakeholders" in scores.lines
    check = graph(SPECS["maintenance-check"])
    waited = [a for a in check.arrows if a.exit == "starts" and "waits" in a.label]
    assert waited and all(a.label.startswith("starts each") for a in waited)


# --- Mermaid ---------------------------------------------------------------------------------------

_NODE_LINE = re.compile(r'^    (n_[A-Za-z0-9_]+)(\(\[|\[\[|\[\(|\[/|\{\{|[\[({>])"(.*)"(\]\)|\]\]|\)\]|/\]|\}\}|[\])}])$')
_EDGE_LINE = re.compile(r'^    (n_[A-Za-z0-9_]+) (-->|-\.->)(?:\|"([^"]*)"\|)? (n_[A-Za-z0-9_]+)$')


def _parse_mermaid(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, str, str]], dict[str, set[str]]]:
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, tuple[str, str]] = {}
    edges: list[tuple[str, str, str, str]] = []
    classes: dict[str, set[str]] = {}
    for line in lines[1:]:
        if found := _NODE_LINE.match(line):
            assert found.group(1) not in nodes, line
            nodes[found.group(1)] = (found.group(2), found.group(3))
        elif found := _EDGE_LINE.match(line):
            edges.append((found.group(1), found.group(2), found.group(3) or "", found.group(4)))
        elif line.startswith("    classDef "):
            continue
        elif line.startswith("    class "):
            ids, name = line.split()[1:]
            classes.setdefault(name, set()).update(ids.split(","))
        else:
            raise AssertionError(f"a line Mermaid would not read as ours: {line!r}")
    return nodes, edges, classes


@pytest.mark.parametrize("name", sorted(SPECS))
def test_mermaid_has_a_node_per_step_an_edge_per_exit_and_safe_text(name: str) -> None:
    spec = SPECS[name]
    diagram = graph(spec)
    nodes, edges, _ = _parse_mermaid(mermaid(spec))
    assert len(nodes) == len(diagram.nodes)
    assert {mermaid_id(step.id) for step in spec.steps} <= set(nodes)
    pairs = {(mermaid_id(a.source), mermaid_id(a.target)) for a in diagram.arrows}
    assert {(source, target) for source, _, _, target in edges} == pairs
    assert len(edges) == len(pairs)  # exits to the same step share one arrow
    for step in spec.steps:
        shape, text = nodes[mermaid_id(step.id)]
        assert text.split("<br/>")[0] == step.id
        assert shape == {"decision": "{", "parallel": "{{", "join": "{{", "end": "(["}.get(step.type, shape)
        if is_human(step):
            assert shape == "("
    for _, link, label, _ in edges:
        assert '"' not in label and "|" not in label
        if link == "-.->":
            assert label.startswith(("↺", "starts"))


def test_mermaid_marks_steps_with_their_class() -> None:
    spec = SPECS["issue-resolution"]
    marks = {"acknowledge": "done", "triage": "done", "resolve": "waiting", "not-an-issue": "withdrawn", "route": "current", "nowhere": "done"}
    text = mermaid(spec, marks)
    _, _, classes = _parse_mermaid(text)
    assert classes["done"] == {"n_acknowledge", "n_triage"}
    assert classes["waiting"] == {"n_resolve"}
    assert classes["withdrawn"] == {"n_not_an_issue"}
    assert classes["current"] == {"n_route"}
    for state in MARKS:
        assert f"    classDef {state} " in text
    assert "waiting" not in _parse_mermaid(mermaid(spec))[2]
    with pytest.raises(ValueError, match="'late' of step 'triage'"):
        mermaid(spec, {"triage": "late"})


def test_mermaid_escapes_quotes_brackets_pipes_and_keeps_chinese(inclusive: ProcessSpec) -> None:
    nodes, edges, _ = _parse_mermaid(mermaid(inclusive))
    _, text = nodes["n_finance_review"]
    assert "财务审批 #quot;‹cost›#quot; [€] #124; {x}" in text
    assert "n_end" in nodes and nodes["n_end"][0] == "(["  # a step called end is no keyword to Mermaid
    assert ("n_who_reviews", "-->", "inputs.cost #gt; 10000 and inputs.cost #lt; 99999", "n_finance_review") in edges


def test_mermaid_ids_stay_distinct() -> None:
    from aftercare.engine.graph import _mermaid_ids

    assert list(_mermaid_ids(["a-b", "a_b", "end"]).values()) == ["n_a_b", "n_a_b_2", "n_end"]


# --- SVG ----------------------------------------------------------------------------------------------


def _boxes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    out = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "node":
            continue
        shapes = [child for child in group if child.tag in (f"{SVG}rect", f"{SVG}polygon")]
        assert len(shapes) == 1, ET.tostring(group)
        shape = shapes[0]
        if shape.tag == f"{SVG}rect":
            x, y, w, h = (float(shape.get(k, "0")) for k in ("x", "y", "width", "height"))
        else:
            points = [tuple(map(float, p.split(","))) for p in shape.get("points", "").split()]
            x, y = min(p[0] for p in points), min(p[1] for p in points)
            w, h = max(p[0] for p in points) - x, max(p[1] for p in points) - y
        out[group.get("data-step", "")] = (x, y, w, h)
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_svg_is_standalone_xml_with_one_shape_per_node_and_no_overlap(name: str) -> None:
    spec = SPECS[name]
    diagram = graph(spec)
    text = svg(spec)
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    assert "<script" not in text and "href" not in text and "url(" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "sans-serif" in root.get("font-family", "") and "Noto Sans CJK SC" in root.get("font-family", "")
    left, top, width, height = map(float, root.get("viewBox", "").split())
    assert float(root.get("width", "0")) == pytest.approx(width, abs=1) and width > 100 and height > 100
    boxes = _boxes(root)
    assert set(boxes) == {node.id for node in diagram.nodes}
    for x, y, w, h in boxes.values():
        assert left <= x and x + w <= left + width and top <= y and y + h <= top + height
    placed = list(boxes.items())
    for index, (a, (ax, ay, aw, ah)) in enumerate(placed):
        for b, (bx, by, bw, bh) in placed[index + 1 :]:
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, f"{a} and {b} overlap"
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert {(g.get("data-source"), g.get("data-target")) for g in edges} == {(a.source, a.target) for a in diagram.arrows}
    for group in edges:
        assert group.find(f"{SVG}path") is not None and group.find(f"{SVG}polygon") is not None  # line and head
    loops = {(g.get("data-source"), g.get("data-target")) for g in edges if g.get("data-loop") == "true"}
    assert loops == {(a.source, a.target) for a in diagram.arrows if a.loop}


def test_svg_marks_and_labels(inclusive: ProcessSpec) -> None:
    root = ET.fromstring(svg(inclusive, {"who-reviews": "done", "finance-review": "waiting", "security-review": "withdrawn"}))
    nodes = {g.get("data-step"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert {step: g.get("data-mark") for step, g in nodes.items() if g.get("data-mark")} == {
        "who-reviews": "done", "finance-review": "waiting", "security-review": "withdrawn"}
    waiting_shape = nodes["finance-review"][1]
    assert (waiting_shape.get("fill"), waiting_shape.get("stroke-width")) == ("#fef3c7", "2.5")
    assert nodes["security-review"][1].get("stroke-dasharray") == "4 3"
    texts = ["".join(t.itertext()) for t in nodes["finance-review"].iter(f"{SVG}text")]
    assert texts[:2] == ["finance-review", '财务审批 "‹cost›" [€] | {x}']
    assert nodes["who-reviews"][1].tag == f"{SVG}polygon" and len(nodes["who-reviews"][1].get("points", "").split()) == 4
    assert len(nodes["reviewed"][1].get("points", "").split()) == 6  # a join is a hexagon
    labels = {"".join(t.itertext()) for g in root.iter(f"{SVG}g") if g.get("class") == "edge" for t in g.iter(f"{SVG}text")}
    assert {"inputs.cost > 10000 and inputs.cost < 99999", "otherwise", "timeout", "reject", "↺ inputs.cost > 1"} <= labels
    assert ET.fromstring(svg(inclusive)).get("aria-label") == '审批 "Reviews" [who] | <b>#1</b> & `more`'


# --- the real Mermaid parser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mermaid_bundle() -> Iterator[tuple[str, str]]:
    """The Mermaid that Prefect's default UI bundles, served from its package folder (no network)."""
    import prefect

    ui = Path(prefect.__file__).parent / "server" / "ui-v2"
    bundles = sorted((ui / "assets").glob("vendor-mermaid-*.js"))
    assert bundles, f"no Mermaid bundle under {ui}/assets"

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(ui)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", bundles[0].name
    finally:
        server.shutdown()
        server.server_close()


PARSE = """async ([bundle, sources]) => {
  const mermaid = (await import('/assets/' + bundle)).t.default;
  mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});
  const out = {};
  for (const [name, source] of Object.entries(sources)) {
    try {
      await mermaid.parse(source);
      const {svg} = await mermaid.render('g-' + name.replace(/[^a-z0-9]/gi, '-'), source);
      out[name] = {nodes: (svg.match(/<g class="node /g) || []).length,
                   waiting: (svg.match(/<g class="node [^"]*\\bwaiting\\b/g) || []).length};
    } catch (error) { out[name] = {error: String(error.message || error)}; }
  }
  return out;
}"""


@pytest.mark.browser
def test_the_ui_s_own_mermaid_reads_every_shipped_diagram(browser_page: Any, mermaid_bundle: tuple[str, str], inclusive: ProcessSpec) -> None:
    url, bundle = mermaid_bundle
    browser_page.goto(url + "/index.html", wait_until="domcontentloaded")
    specs = {**SPECS, "inclusive": inclusive}
    sources = {name: mermaid(spec, {spec.steps[1].id: "waiting"}) for name, spec in specs.items()}
    sources["broken"] = "flowchart TD\n    a --> end\n"  # the check itself can fail
    results = browser_page.evaluate(PARSE, [bundle, sources])
    assert "error" in results.pop("broken")
    for name, result in results.items():
        assert "error" not in result, f"{name}: {result}"
        assert result == {"nodes": len(graph(specs[name]).nodes), "waiting": 1}, name


def _adjacency(arrows: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for arrow in arrows:
        out.setdefault(arrow.source, set()).add(arrow.target)
    return out


def _reaches(out: dict[str, set[str]], start: str, goal: str) -> bool:
    todo, seen = [start], set()
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(out.get(node, ()))
    return False


def _acyclic(out: dict[str, set[str]]) -> bool:
    return not any(_reaches(out, target, source) for source, targets in out.items() for target in targets)

