""""Did you mean" suggestions for misspelt names, bounded in cost however many names there are."""

from __future__ import annotations

import difflib
import re
from bisect import bisect_left
from collections.abc import Hashable, Iterable
from functools import lru_cache
from typing import Any

CUTOFF = 0.6
"""The least similarity (difflib's ratio) of a suggestion."""
FULL_SEARCH = 200
"""Up to this many known names every one is compared (difflib, as before); above it, an index
finds the candidates, so the cost of one suggestion does not grow with the number of names."""
LONGEST = 100
"""A name longer than this gets no suggestion: nobody misspells a 5,000-character step id."""
_SEPARATORS = re.compile(r"[-_.\s]+")
CANDIDATES = 50
"""Above :data:`FULL_SEARCH` names, at most this many candidates are compared with difflib."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a known name is close to ``name``, else ``""``."""
    close = closest(name, known)
    return f"; did you mean {close!r}?" if close is not None else ""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (difflib's ratio at least :data:`CUTOFF`), None when none is.

    With many known names only those an index finds are compared: names that differ by one
    edit (a letter missing, added, changed, or two swapped), case and separators aside; when
    there are none, the names next to it in alphabetical order, forwards and backwards. At
    most :data:`CANDIDATES` of them: a name further off than that may go without a suggestion.
    """
    name = str(name)
    names: tuple[Hashable, ...] = tuple(known)  # one pass in C: this runs once per misspelt name
    if len(name) > LONGEST or not names:
        return None
    if len(names) <= FULL_SEARCH:
        found = difflib.get_close_matches(name, list(dict.fromkeys(str(k) for k in names)), n=1, cutoff=CUTOFF)
        return found[0] if found else None
    return _index(names).closest(name)


def _deletions(name: str) -> list[str]:
    """The keys a name is found by: it and every string one character shorter, lower-cased, and the same
    of its letters and digits alone (``step_number`` finds ``step-number``), in a stable order."""
    keys: list[str] = []
    for form in (name.lower(), _SEPARATORS.sub("", name.lower())):
        keys += [form, *(form[:i] + form[i + 1 :] for i in range(len(form)))]
    return list(dict.fromkeys(keys))


class _Index:
    """Known names indexed by their single deletions (the idea of SymSpell) and sorted both ways."""

    def __init__(self, names: Iterable[str]) -> None:
        unique = list(dict.fromkeys(names))
        self.by_deletion: dict[str, list[str]] = {}
        for known in unique:
            if len(known) <= LONGEST:
                for variant in _deletions(known):
                    self.by_deletion.setdefault(variant, []).append(known)
        self.forwards = sorted(unique)
        self.backwards = sorted((known[::-1], known) for known in unique)
        self.memo: dict[str, str | None] = {}

    def closest(self, name: str) -> str | None:
        if name not in self.memo:
            self.memo[name] = self._closest(name)
        return self.memo[name]

    def _closest(self, name: str) -> str | None:
        candidates: dict[str, None] = {}
        for variant in _deletions(name):
            candidates.update(dict.fromkeys(self.by_deletion.get(variant, ())[:CANDIDATES]))
            if len(candidates) >= CANDIDATES:
                break
        found = difflib.get_close_matches(name, list(candidates)[:CANDIDATES], n=1, cutoff=CUTOFF)
        if found:
            return found[0]
        # more than one edit away: the names that sort next to it, by their start and by their end
        neighbours = [self.forwards[at] for at in _around(self.forwards, name)]
        neighbours += [self.backwards[at][1] for at in _around(self.backwards, (name[::-1], ""))]
        found = difflib.get_close_matches(name, neighbours, n=1, cutoff=CUTOFF)
        return found[0] if found else None


@lru_cache(maxsize=16)
def _index(names: tuple[Hashable, ...]) -> _Index:
    """The index of a tuple of names, built once per tuple (a checker asks about one set of names many times)."""
    return _Index(str(known) for known in names)


def _around(ordered: list[Any], probe: Any, width: int = 4) -> range:
    """The positions of the ``width`` entries on each side of where ``probe`` sorts in."""
    at = bisect_left(ordered, probe)
    return range(max(0, at - width), min(len(ordered), at + width))
