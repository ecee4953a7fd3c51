"""Loader benchmark: full load + checks of 1,000 definitions against just parsing their YAML.

Run: ``.venv/bin/python bench/bench_loader.py [--count N] [--repeat R] [--profile]``.
It writes N copies of processes/*.yaml (each copy set with its own process ids, start
steps pointing at the copies of their set) and processes/team.yaml to a temporary
folder, then times, best of R:

(a) reading and parsing every file with the parser the loader uses (ruamel.yaml,
    round-trip), and
(b) ``engine.library.validate`` on the folder: parse, positions, pydantic, every check.

The goal is (b) <= 3 x (a). ``--profile`` prints the top of a cProfile of (b).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from aftercare.engine.library import validate
from aftercare.engine.loader import definition_files

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ROOT / "processes"
_PROCESS_LINE = re.compile(r"^(?P<lead>\s*(?:-\s+)?process:\s*)(?P<id>[a-z][a-z0-9-]*)\s*$", re.MULTILINE)


def generate(folder: Path, count: int) -> list[Path]:
    """Write ``count`` definitions (copies of processes/*.yaml with varied ids) and the team file."""
    sources = definition_files([PROCESSES])
    if not sources:
        raise SystemExit(f"no definitions in {PROCESSES}")
    texts = {path: path.read_text(encoding="utf-8") for path in sources}
    own_id = {path: m["id"] for path, text in texts.items() if (m := _PROCESS_LINE.search(text))}
    ids = set(own_id.values())
    (folder / "team.yaml").write_text((PROCESSES / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    plan = [(copy, path) for copy in range(1, count // len(sources) + 2) for path in sources][:count]
    made = {(copy, own_id.get(path)) for copy, path in plan}

    def rename(copy: int, match: re.Match[str]) -> str:
        if match["id"] not in ids:
            return match[0]
        # a start step of the last, partial set points at the first set's copy when its own is not made
        target = copy if (copy, match["id"]) in made else 1
        return f"{match['lead']}{match['id']}-c{target}"

    files = []
    for copy, path in plan:
        target = folder / f"{path.stem}-c{copy}.yaml"
        target.write_text(_PROCESS_LINE.sub(lambda m: rename(copy, m), texts[path]), encoding="utf-8")
        files.append(target)
    return files


def best_of(repeat: int, action: Callable[[], object]) -> float:
    """The shortest wall time of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def parse_only(files: list[Path]) -> None:
    """(a): read and parse each file the way the loader's parser does (round-trip, no duplicate keys)."""
    for file in files:
        yaml = YAML(typ="rt")
        yaml.allow_duplicate_keys = False
        yaml.load(file.read_text(encoding="utf-8"))


def full_load(folder: Path, count: int) -> None:
    """(b): the whole validation of the folder; every definition must pass."""
    loaded, problems = validate([folder])
    if problems or len(loaded) != count:
        raise SystemExit(f"the generated definitions do not validate: {len(loaded)} loaded, problems: {problems[:3]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the full load")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as tmp:
        folder = Path(tmp)
        files = generate(folder, args.count)
        full_load(folder, args.count)  # warm-up: imports, caches that live for the process's life
        parse = best_of(args.repeat, lambda: parse_only(files))
        load = best_of(args.repeat, lambda: full_load(folder, args.count))
        print(f"definitions:          {len(files)}")
        print(f"(a) YAML parse only:  {parse:.3f} s  ({1000 * parse / len(files):.2f} ms each)")
        print(f"(b) load + checks:    {load:.3f} s  ({1000 * load / len(files):.2f} ms each)")
        print(f"ratio (b)/(a):        {load / parse:.2f}x  (goal <= 3x)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            full_load(folder, args.count)
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
