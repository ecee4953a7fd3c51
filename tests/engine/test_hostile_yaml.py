"""Hostile YAML is refused cheaply, with a position: size, nesting, aliases, node count, tags, odd scalars."""

from __future__ import annotations

import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from aftercare.engine import yaml_source
from aftercare.engine.errors import DefinitionError
from aftercare.engine.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, parse_yaml, read_mapping_file, read_yaml


def billion_laughs(levels: int = 9) -> str:
    """Each anchor a list of nine aliases of the one before: 9**9 strings once expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefghijklmnop", "bcdefghijklmnop"[: levels - 1]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@contextmanager
def budget(seconds: float, megabytes: float) -> Iterator[None]:
    """Fail when the block takes longer or allocates more (at its peak) than given."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes * 1024 * 1024, f"allocated {peak / 1024 / 1024:.1f} MB at the peak"


def refused(call: Callable[[], Any]) -> str:
    with pytest.raises(DefinitionError) as error:
        call()
    (problem,) = error.value.problems
    assert problem.line > 0 and problem.column > 0
    assert "\n" not in problem.message
    return str(problem)


class TestSize:
    @pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
    def test_dev_zero_is_refused_after_one_mib(self) -> None:
        with budget(seconds=1, megabytes=4):
            said = refused(lambda: read_yaml(Path("/dev/zero")))
        assert said == "/dev/zero:1:1: the file is larger than 1 MiB; a definition is a few kB"

    def test_a_large_file_is_refused_with_its_size(self, tmp_path: Path) -> None:
        large = tmp_path / "large.yaml"
        large.write_text("# " + "x" * MAX_FILE_BYTES + "\n", encoding="utf-8")
        with budget(seconds=1, megabytes=4):
            said = refused(lambda: read_yaml(large))
        assert said.endswith(f"the file is larger than 1 MiB ({large.stat().st_size:,} bytes); a definition is a few kB")

    def test_inputs_and_answers_files_have_the_same_limit(self, tmp_path: Path) -> None:
        large = tmp_path / "answers.yaml"
        large.write_text("a: " + "x" * MAX_FILE_BYTES + "\n", encoding="utf-8")
        assert "larger than 1 MiB" in refused(lambda: read_mapping_file(large, "answers"))

    def test_text_is_held_to_the_limit_too(self) -> None:
        assert "larger than 1 MiB" in refused(lambda: parse_yaml("a: " + "x" * MAX_FILE_BYTES, "stored"))

    def test_not_utf8_says_where(self, tmp_path: Path) -> None:
        latin = tmp_path / "latin.yaml"
        latin.write_bytes(b"process: x\ntitle: caf\xe9\n")
        assert refused(lambda: read_yaml(latin)).startswith(f"{latin}:2:11: not UTF-8 text: byte b'\\xe9' at offset 21")


class TestNesting:
    @pytest.mark.parametrize(
        "text",
        ["[" * 10_000, "[ " * 10_000, "a: " + "[{a: " * 5_000, "{a: " * 10_000, "- " * 10_000 + "x"],
        ids=["brackets", "spaced", "mixed", "braces", "dashes"],
    )
    def test_deep_nesting_is_refused_without_recursion(self, text: str) -> None:
        with budget(seconds=1, megabytes=8):
            said = refused(lambda: parse_yaml(text, "deep.yaml"))
        assert f"nested more than {MAX_DEPTH} levels deep" in said

    def test_deep_block_mappings_too(self) -> None:
        text = "".join(" " * level + "k:\n" for level in range(1_000)) + " " * 1_000 + "x\n"
        assert "nested more than 64 levels deep" in refused(lambda: parse_yaml(text, "deep.yaml"))

    def test_nesting_to_the_limit_is_fine(self) -> None:
        node = parse_yaml("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "ok.yaml").data["a"]
        depth = 0
        while isinstance(node, list):
            depth, node = depth + 1, (node[0] if node else None)
        assert depth == MAX_DEPTH - 1


class TestAliases:
    def test_billion_laughs_is_refused_in_under_a_second(self) -> None:
        with budget(seconds=1, megabytes=8):
            said = refused(lambda: parse_yaml(billion_laughs(), "bomb.yaml"))
        assert "aliases expand to more than 10,000 values; write the values out, or use fewer aliases" in said

    def test_ordinary_aliases_still_work(self) -> None:
        text = "base: &base {type: text, required: false}\nform:\n  a: *base\n  b: *base\n"
        data = parse_yaml(text, "ok.yaml").data
        assert data["form"] == {"a": {"type": "text", "required": False}, "b": {"type": "text", "required": False}}

    def test_an_anchor_defined_twice_is_no_warning(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert parse_yaml("a: &x 1\nb: &x 2\nc: *x\n", "twice.yaml").data == {"a": 1, "b": 2, "c": 2}


class TestNodeCount:
    def test_too_many_values_are_refused_while_composing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(yaml_source, "MAX_NODES", 1_000)
        text = "x: [" + ", ".join(["1"] * 2_000) + "]\n"
        assert "more than 1,000 values; a definition has a few hundred" in refused(lambda: parse_yaml(text, "flat.yaml"))

    def test_a_five_thousand_step_definition_is_within_the_limit(self) -> None:
        steps = "".join(f"  - {{id: s{i}, type: record, set: {{x: '1'}}, next: s{i + 1}}}\n" for i in range(5_000))
        data = parse_yaml(f"process: big\nsteps:\n{steps}", "big.yaml").data
        assert len(data["steps"]) == 5_000


class TestScalars:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("a: 2026-02-30", "2026-02-30"),  # looks like a date, is none: kept as text for the field to judge
            ("a: 2026-13-01 09:00:00", "2026-13-01 09:00:00"),
            ("a: " + "9" * 5_000, "9" * 5_000),  # more digits than Python turns into an int
            ('a: !!int ""', ""),
            ("a: !!bool maybe", "maybe"),
            ("a: !!float x", "x"),
            ("a: !!str 3", "3"),
        ],
    )
    def test_a_scalar_that_cannot_be_its_type_stays_text(self, text: str, expected: str) -> None:
        assert parse_yaml(text, "odd.yaml").data == {"a": expected}

    @pytest.mark.parametrize("tag", ["!!set {a}", "!!omap [a]", "!!binary aGk=", "!custom 1", "!!python/object:os.system x", "!!seq x"])
    def test_tags_a_definition_has_no_use_for_are_refused(self, tag: str) -> None:
        said = refused(lambda: parse_yaml(f"process: x\nkey: {tag}\n", "tagged.yaml"))
        assert said.startswith("tagged.yaml:2:6: the YAML tag ") and said.endswith("has no place here; remove it (a definition needs no tags)")

    def test_a_control_character_is_one_line_with_its_position(self) -> None:
        said = refused(lambda: parse_yaml("process: x\ntitle: a\x1fb\n", "ctl.yaml"))
        assert said.startswith("ctl.yaml:2:9: invalid YAML: the character U+001F is not allowed in YAML")
