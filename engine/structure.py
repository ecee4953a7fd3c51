"""The block structure of a definition: which join belongs to which split, and what lies between.

A split (a ``parallel`` step, a ``mode: all`` decision) starts branches; they meet at one
join. Its region is every step on a path from its branches to that join: a branch may loop
inside itself and may end the case at any ``end`` step, but never jumps to a non-end step
outside its region, and nothing outside jumps in. Splits nest, never cross. The loader's
checks report what breaks these rules (:func:`analyse`'s problems); the runner reads the
regions to know which join a token is headed for and what an any-join withdraws.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .router import Edge, edges
from .spec import DecisionStep, EndStep, JoinStep, ParallelStep, ProcessSpec, StepSpec, is_split


@dataclass(frozen=True)
class Region:
    """One split's region.

    Attributes:
        split: the split step's id.
        join: its join's id (None when every branch ends the case).
        branches: the steps a branch may start at, in the split's order.
        members: every step inside, nested regions included; not the join, not ``end`` steps.
    """

    split: str
    join: str | None
    branches: tuple[str, ...]
    members: frozenset[str]


@dataclass(frozen=True)
class StructureProblem:
    """A broken structure rule, at a step's field (``("next",)``; ``()`` for the step itself)."""

    step: str
    field: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class Structure:
    """Every split's region, each join's split, and the innermost split around each step."""

    regions: dict[str, Region] = field(default_factory=dict)
    split_of: dict[str, str] = field(default_factory=dict)
    enclosing: dict[str, str] = field(default_factory=dict)

    def in_region(self, step_id: str) -> bool:
        """Whether a step lies between a split and its join (it may wait beside other steps)."""
        return step_id in self.enclosing


def branch_starts(step: StepSpec) -> tuple[str, ...]:
    """The steps a split's branches may start at, in order, each once (a decision's ``otherwise`` too)."""
    if isinstance(step, ParallelStep):
        return tuple(step.branches)
    assert isinstance(step, DecisionStep)
    return tuple(dict.fromkeys([*(branch.next for branch in step.branches), step.otherwise]))


def analyse(spec: ProcessSpec) -> tuple[Structure, list[StructureProblem]]:
    """The definition's regions and every broken structure rule (the loader reports them with their lines).

    Jump targets that do not exist are ignored here (the loader reports them on their own).
    """
    return _Analysis(spec).run()


class _Analysis:
    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.steps = {step.id: step for step in spec.steps}
        self.out: dict[str, list[Edge]] = {step.id: [e for e in edges(spec, step) if e.target in self.steps] for step in spec.steps}
        self.regions: dict[str, Region] = {}
        self.problems: list[StructureProblem] = []
        self._busy: set[str] = set()

    def run(self) -> tuple[Structure, list[StructureProblem]]:
        for step in self.spec.steps:
            if is_split(step):
                self.region(step.id)
        split_of: dict[str, str] = {}
        for region in self.regions.values():
            if region.join is None:
                continue
            other = split_of.get(region.join)
            if other is not None:
                self._add(region.split, ("id",), f"split {region.split!r} and split {other!r} both meet at join {region.join!r}; "
                          "each split needs its own join (splits nest, they never cross)")
            else:
                split_of[region.join] = region.split
        for step in self.spec.steps:
            if isinstance(step, JoinStep):
                self._join(step, split_of)
        enclosing: dict[str, str] = {}
        # innermost first: a smaller region is nested in a larger one
        for region in sorted(self.regions.values(), key=lambda r: len(r.members)):
            for member in region.members:
                enclosing.setdefault(member, region.split)
        return Structure(dict(self.regions), split_of, enclosing), self.problems

    def _add(self, step: str, where: tuple[str | int, ...], message: str) -> None:
        problem = StructureProblem(step, where, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def _join(self, step: JoinStep, split_of: dict[str, str]) -> None:
        split = split_of.get(step.id)
        if split is None:
            self._add(step.id, ("id",), f"join {step.id!r} belongs to no split: no parallel step's or mode: all decision's "
                      "branches meet at it (a join closes the branches of one split)")
            return
        if isinstance(step.wait, int):
            count = len(self.regions[split].branches)
            if step.wait > count:
                self._add(step.id, ("wait",), f"join {step.id!r} waits for {step.wait} branches, but its split {split!r} "
                          f"starts at most {count}; use wait: {count}, all or any")

    def region(self, split_id: str) -> Region:
        """The region of a split, found once (a nested split's region is found on the way)."""
        found = self.regions.get(split_id)
        if found is not None:
            return found
        if split_id in self._busy:  # a branch leads back to its own split: reported by the caller
            return Region(split_id, None, (), frozenset())
        self._busy.add(split_id)
        split = self.steps[split_id]
        starts = branch_starts(split)
        walks: list[tuple[str, set[str]]] = []
        joins: dict[str, str] = {}  # join -> the first branch that reached it
        for start in starts:
            seen: set[str] = set()
            for reached in self._walk(split_id, start, seen):
                joins.setdefault(reached, start)
            walks.append((start, seen))
        join = next(iter(joins), None)
        if len(joins) > 1:
            named = ", ".join(f"{j!r} (from branch {b!r})" for j, b in joins.items())
            self._add(split_id, ("branches",), f"the branches of split {split_id!r} meet at different joins: {named}; "
                      "every branch of a split reaches its one join or an end step")
        members = frozenset().union(*(seen for _, seen in walks)) if walks else frozenset()
        region = Region(split_id, join, tuple(s for s in starts if s != join), frozenset(members))
        self.regions[split_id] = region
        self._busy.discard(split_id)
        self._crossings(split_id, region, walks)
        return region

    def _walk(self, split_id: str, start: str, seen: set[str]) -> Iterator[str]:
        """Walk a branch from ``start`` to its join (yielded), jumping over nested regions; fills ``seen``."""
        todo = [start]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            step = self.steps[node]
            if isinstance(step, EndStep):
                continue
            if isinstance(step, JoinStep):
                yield node
                continue
            if node == split_id:
                continue  # reported by _crossings: a branch goes back to its split
            seen.add(node)
            if is_split(step):
                inner = self.region(node)
                seen.update(inner.members)
                if inner.join is not None:
                    seen.add(inner.join)
                    todo.extend(e.target for e in self.out[inner.join])
                continue
            todo.extend(e.target for e in self.out[node])

    def _crossings(self, split_id: str, region: Region, walks: list[tuple[str, set[str]]]) -> None:
        """A branch that leaves its region, enters another branch, or is entered from outside."""
        inside = set(region.members)
        owner: dict[str, str] = {}
        for start, seen in walks:
            for node in seen:
                if node in owner and owner[node] != start:
                    continue  # reported below at the step that jumps
                owner.setdefault(node, start)
        outside = self._reach_avoiding(split_id, region)
        for node in sorted(inside, key=self.spec.index):
            for edge in self.out[node]:
                target = edge.target
                if target == split_id:
                    self._add(node, edge.field, f"step {node!r} in a branch of split {split_id!r} goes back to the split; "
                              "a branch may loop inside itself, but the split starts its branches only once per visit")
                elif target in outside and target not in inside and target != region.join and not isinstance(self.steps[target], EndStep):
                    self._add(node, edge.field, f"step {node!r} in a branch of split {split_id!r} goes to {target!r}, outside the split; "
                              f"a branch ends at its join{' ' + repr(region.join) if region.join else ''} or at an end step")
                elif target in owner and node in owner and owner[target] != owner[node] and target not in region.branches:
                    self._add(node, edge.field, f"step {node!r} in branch {owner[node]!r} of split {split_id!r} goes to {target!r} "
                              f"in branch {owner[target]!r}; branches never jump into each other")
                elif target in region.branches and node in owner and owner[node] != target:
                    self._add(node, edge.field, f"step {node!r} in branch {owner[node]!r} of split {split_id!r} goes to {target!r}, "
                              "where another branch starts; branches never jump into each other")
        for node in outside - inside:
            for edge in self.out[node]:
                if edge.target in inside:
                    self._add(node, edge.field, f"step {node!r} jumps into the branches of split {split_id!r} (to {edge.target!r}); "
                              "a branch is entered only through its split")

    def _reach_avoiding(self, split_id: str, region: Region) -> set[str]:
        """The steps reached from the first step and from after the join without passing the split."""
        todo = [self.spec.steps[0].id]
        if region.join is not None:
            todo.extend(e.target for e in self.out[region.join])
        reached: set[str] = set()
        while todo:
            node = todo.pop()
            if node in reached or node == split_id:
                continue
            reached.add(node)
            todo.extend(e.target for e in self.out[node])
        return reached


__all__ = ["Region", "Structure", "StructureProblem", "analyse", "branch_starts"]
