"""``aftercare graph PROCESS|FILE [--format mermaid|svg] [--out FILE]``: the diagram on stdout or in a file; mistakes in one line."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from aftercare.engine.graph import graph, mermaid
from aftercare.engine.library import load_library

ROOT = Path(__file__).resolve().parents[2]
AFTERCARE = [sys.executable, "-m", "aftercare.flows.cli"]


def aftercare(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*AFTERCARE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_mermaid_of_a_process_by_id_on_stdout(user_env: dict[str, str], tmp_path: Path) -> None:
    done = aftercare(user_env, "graph", "issue-resolution", cwd=tmp_path)  # found through AFTERCARE_PROCESSES
    assert (done.returncode, done.stderr) == (0, "")
    spec = load_library(ROOT / "processes").get("issue-resolution").spec
    assert done.stdout == mermaid(spec)
    assert done.stdout.startswith("flowchart TD\n")
    assert '    n_verify -->|"reject"| n_reopen' in done.stdout.splitlines()
    assert '    n_reopen -.->|"↺ loop"| n_resolve' in done.stdout.splitlines()


def test_svg_of_a_file_written_to_out(user_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "reviews.svg"
    done = aftercare(user_env, "graph", "tests/data/v2/reviews.yaml", "--format", "svg", "--out", str(out))
    assert (done.returncode, done.stderr, done.stdout) == (0, "", f"aftercare graph: reviews (svg) written to {out}\n")
    root = ET.fromstring(out.read_text(encoding="utf-8"))
    steps = [g.get("data-step") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"]
    spec = load_library(ROOT / "tests" / "data" / "v2").get("reviews").spec
    assert steps == [node.id for node in graph(spec).nodes]


def test_mermaid_written_to_out(user_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "change.mmd"
    done = aftercare(user_env, "graph", "change-request", "--out", str(out))
    assert done.returncode == 0
    assert out.read_text(encoding="utf-8").startswith("flowchart TD\n    n_acknowledge")


def test_an_unknown_process_is_one_line_with_a_suggestion(user_env: dict[str, str]) -> None:
    done = aftercare(user_env, "graph", "issue-resolutoin")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"aftercare graph: no process 'issue-resolutoin' in {ROOT / 'processes'}; did you mean 'issue-resolution'?\n"


def test_an_unknown_format_is_one_line_with_a_suggestion(user_env: dict[str, str]) -> None:
    done = aftercare(user_env, "graph", "issue-resolution", "--format", "svgg")
    assert (done.returncode, done.stderr) == (1, "aftercare graph: --format 'svgg' is not one of mermaid, svg; did you mean 'svg'?\n")


def test_a_bad_definition_file_names_its_line(user_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text("team:\n  people:\n    ann: {name: Ann, email: ann@example.com}\n", encoding="utf-8")
    (tmp_path / "p.yaml").write_text("process: p\ntitle: P\nversion: 1\nkey: PP\nsteps:\n  - {id: a, type: notify, to: [person:ann], message: hi, next: b}\n",
                                     encoding="utf-8")
    done = aftercare(user_env, "graph", str(tmp_path / "p.yaml"))
    assert done.returncode == 1
    assert done.stderr.startswith(f"{tmp_path / 'p.yaml'}:6:") and "unknown step 'b'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
