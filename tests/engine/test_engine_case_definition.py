"""Which definition a case runs: one lookup, with an explicit fallback (engine.library.definition_of_case)."""

from __future__ import annotations

import pytest

from aftercare.engine.errors import NotFoundError
from aftercare.engine.library import CURRENT, FALLBACK, STORED, definition_of_case
from aftercare.engine.loader import Library


def test_the_folders_definition_when_the_case_opened_with_it(valid_library: Library) -> None:
    loaded = valid_library.get("release-check")
    found = definition_of_case(valid_library, "release-check", loaded.digest, lambda digest: pytest.fail("no read needed"))
    assert (found.spec, found.source, found.note) == (loaded.spec, CURRENT, None)


def test_the_stored_text_when_the_file_changed_since(valid_library: Library) -> None:
    loaded = valid_library.get("release-check")
    older = loaded.path.read_text(encoding="utf-8").replace("version: 1", "version: 7", 1)
    found = definition_of_case(valid_library, "release-check", "old-hash", {"old-hash": older}.get)
    assert (found.source, found.spec.version) == (STORED, 7)


def test_the_current_file_when_the_register_has_no_text_said_so(valid_library: Library) -> None:
    found = definition_of_case(valid_library, "release-check", "lost-hash", {}.get)
    assert found.source == FALLBACK and found.spec == valid_library.get("release-check").spec
    assert found.note == "the register has no text of release-check definition lost-hash; using the current file release-check.yaml"


def test_a_stored_text_that_no_longer_loads_falls_back_too(valid_library: Library) -> None:
    found = definition_of_case(valid_library, "release-check", "bad-hash", {"bad-hash": "process: [unclosed"}.get)
    assert found.source == FALLBACK and "no longer loads" in (found.note or "")


def test_without_a_folder_only_the_stored_text_answers(valid_library: Library) -> None:
    text = valid_library.get("release-check").path.read_text(encoding="utf-8")
    assert definition_of_case(None, "release-check", "h", {"h": text}.get).source == STORED
    with pytest.raises(NotFoundError, match="no text of release-check definition h, and there is no folder of definitions here to take .release-check."):
        definition_of_case(None, "release-check", "h", {}.get)
