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
        self._reached_joins: set[str] = set()

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
                inner = other if other in region.members else region.split if region.split in self.regions[other].members else None
                fix = (f"give {inner!r} a join of its own, whose next goes on to {region.join!r}" if inner
                       else "give each split its own join")
                self._add(region.split, ("id",), f"split {region.split!r} and split {other!r} both meet at join {region.join!r}; "
                          f"{fix} (splits nest, they never cross)")
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
        if split is None and step.id in self._reached_joins:
            return  # some split's branches meet here and at another join: reported at that split
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
        self._reached_joins.update(joins)
        if len(joins) > 1:
            named = ", ".join(f"{j!r} (from branch {b!r})" for j, b in joins.items())
            self._add(split_id, ("branches",), f"the branches of split {split_id!r} meet at different joins: {named}; "
                      "send every branch to one join (or to an end step)")
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
        owner = self._owners(walks)
        outside = self._reach_avoiding(split_id, region)
        # A step reached both from a branch and from outside: inside, when it leads on to the join
        # (an outside step jumped into the branch); else an outside step the branch went to.
        ahead = self._reaching(split_id, region)
        left = {node for node in inside & outside if node not in ahead}
        inside -= left
        join = f"its join {region.join!r}" if region.join else "its join"
        for node in sorted(inside, key=self.spec.index):
            branch = owner.get(node)
            of = f"in branch {branch!r} of split {split_id!r}" if branch else f"in a branch of split {split_id!r}"
            for edge in self.out[node]:
                target = edge.target
                goes = _goes(edge)
                if target == split_id:
                    again = f"to repeat the branch, go back to {branch!r}, its first step" if branch else "a branch may loop inside itself"
                    self._add(node, edge.field, f"step {node!r} {of} {goes} {split_id!r}, its own split, which starts its branches "
                              f"only once per visit; {again}")
                elif target in left or (target in outside and target not in inside and target != region.join and not isinstance(self.steps[target], EndStep)):
                    self._add(node, edge.field, f"step {node!r} {of} {goes} {target!r}, outside the split; "
                              f"a branch goes on to {join} or ends the case at an end step")
                elif target == region.join:
                    continue
                elif target in region.branches and branch and branch != target:
                    end = f"next: {region.join} (its join) or next: an end step" if region.join else "next: an end step"
                    self._add(node, edge.field, f"step {node!r} {of} {goes} {target!r}, the first step of another branch; "
                              f"branches never jump into each other: end this branch with {end}")
                elif target in owner and branch and owner[target] != branch:
                    self._add(node, edge.field, f"step {node!r} {of} {goes} {target!r} in branch {owner[target]!r}; "
                              f"branches never jump into each other: go on to {join} or to an end step")
        for node in outside - inside:
            for edge in self.out[node]:
                if edge.target in inside:
                    self._add(node, edge.field, f"step {node!r} {_goes(edge)} {edge.target!r}, inside the branches of split {split_id!r}; "
                              f"a branch is entered only through its split: go to {split_id!r}, which starts every branch")

    def _owners(self, walks: list[tuple[str, set[str]]]) -> dict[str, str]:
        """The branch each step of a region belongs to.

        A step two branches reach belongs to the one whose main line (next, approve, falling
        through: every exit but on_reject, on_timeout, on_fail) reaches it first, so the
        jump that crosses is the one blamed; ties go to the earlier branch.
        """
        seen_by = dict(walks)
        owner = {start: start for start, seen in walks if start in seen}
        level = [start for start in owner]
        while level:
            following: list[str] = []
            for node in level:
                for edge in self.out[node]:
                    target = edge.target
                    if edge.label in _SIDE_EXITS or target in owner or target not in seen_by[owner[node]]:
                        continue
                    owner[target] = owner[node]
                    following.append(target)
            level = following
        for start, seen in walks:
            for node in seen:
                owner.setdefault(node, start)
        return owner

    def _reaching(self, split_id: str, region: Region) -> set[str]:
        """The steps that lead on to the region's join (to an end step, for a region without one), not through the split."""
        into: dict[str, list[str]] = {}
        for node, out in self.out.items():
            for edge in out:
                into.setdefault(edge.target, []).append(node)
        todo = [region.join] if region.join is not None else [s.id for s in self.spec.steps if isinstance(s, EndStep)]
        reached: set[str] = set()
        while todo:
            node = todo.pop()
            if node in reached or node == split_id:
                continue
            reached.add(node)
            todo.extend(into.get(node, []))
        return reached

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


_SIDE_EXITS = frozenset({"reject", "timeout", "fail"})
"""Exits that leave a step's main line (on_reject, on_timeout, on_fail)."""


def _goes(edge: Edge) -> str:
    """How a message says a step goes somewhere: by a field, or by falling through (no ``next``)."""
    return "has no next, so it falls through to" if edge.field == ("id",) else "goes to"


__all__ = ["Region", "Structure", "StructureProblem", "analyse", "branch_starts"]
