"""Message templates: built-ins in both languages, definition overrides, the static check of their names and filters, the limits of a render."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from aftercare.engine import expressions
from aftercare.engine.answers import HumanPlan
from aftercare.engine.library import load_library, validate
from aftercare.engine.register import Register
from aftercare.engine.loader import Library
from aftercare.engine.simulator import Simulator
from aftercare.flows.cli import main
from aftercare.engine.errors import DefinitionError, StepError
from aftercare.notifications import (
    BUILTIN_MESSAGES,
    Composer,
    MessageTemplates,
    load_checked_library,
    template_sources,
    waiting_messages,
)
from aftercare.notifications import rendering
from aftercare.notifications.rendering import BUILTIN_FOLDER

from .conftest import DATA, LIBRARY, T0, open_case, scope_of

BAD = DATA / "bad-template"


def _values(locale: str) -> dict[str, object]:
    return {
        "case": {"key": "ISS-0007", "title": "打印机 <离线>", "process": "issue-resolution", "outcome": "resolved",
                 "opened_at": T0.isoformat(), "due_at": (T0 + timedelta(days=1)).isoformat(), "fields": {"resolution": "重启"}},
        "inputs": {"title": "打印机 <离线>", "details": "line 1\nline 2"},
        "now": T0 + timedelta(hours=5),
        "steps": {},
        "recipient": {"id": "li.na", "name": "李娜", "locale": locale, "kind": "person"},
        "step": {"id": "triage", "title": "Triage", "due_at": T0.isoformat(), "started_at": T0.isoformat(), "assignees": ["李娜"],
                 "eligible": ["li.na"], "escalate_to": ["manager"], "form": [], "checklist": [], "quorum": 1, "overdue_by": "1h"},
        "links": {"run": "http://127.0.0.1:4200/runs/flow-run/42"},
        "answer_command": "aftercare answer ISS-0007 triage --as li.na --approve|--reject --comment \"...\"",
        "message": "第一行\n<second> line",
        "reason": "overdue",
    }


class TestBuiltins:
    @pytest.mark.parametrize("locale", ["en", "zh"])
    @pytest.mark.parametrize("name", BUILTIN_MESSAGES)
    def test_every_builtin_renders_every_part(self, name: str, locale: str) -> None:
        message = MessageTemplates().render(name, _values(locale), locale=locale)
        assert message.subject and "\n" not in message.subject
        assert "ISS-0007" in message.subject or name == "message"
        for body in (message.text, message.markdown, message.html):
            assert body.strip()
        assert message.html.lstrip().startswith("<!DOCTYPE html>")
        assert "<离线>" not in message.html, "HTML must be escaped"
        assert message.html.count("Sent by Aftercare") + message.html.count("Aftercare 自动发送") == 1
        if name != "message":
            assert "打印机 <离线>" in message.text, "plain text is not escaped"

    def test_language_follows_the_locale(self) -> None:
        templates = MessageTemplates()
        zh = templates.render("step-waiting", _values("zh"), locale="zh")
        en = templates.render("step-waiting", _values("en"), locale="en")
        assert zh.subject == "[ISS-0007] 待您处理：Triage"
        assert en.subject == "[ISS-0007] Waiting for you: Triage"
        assert "您好" in zh.text and "Hello" in en.text
        assert "aftercare answer ISS-0007 triage --as li.na" in zh.text
        assert "http://127.0.0.1:4200/runs/flow-run/42" in en.markdown

    def test_every_builtin_file_follows_the_naming(self) -> None:
        pattern = re.compile(r"^(_layout\.(txt|md|html)|[a-z-]+(\.(en|zh))?\.(subject|txt|md|html))\.j2$")
        names = [path.name for path in BUILTIN_FOLDER.glob("*")]
        assert names and all(pattern.match(name) for name in names), names


class TestDefinitionTemplates:
    def test_a_definition_template_overrides_and_extends_the_builtins(self, templates: MessageTemplates) -> None:
        assert "request-triaged" in templates and "request-triaged" not in MessageTemplates()
        values = _values("zh")
        # a locale-neutral file of the definition beats the built-in Chinese one
        closed = templates.render("case-closed", values, locale="zh")
        assert "Closed by the definition's own template: ISS-0007 -> resolved." in closed.text
        # ... and the built-in subject still applies, since the definition has none
        assert closed.subject == "[ISS-0007] 已关闭（resolved）：打印机 <离线>"
        # no HTML in the definition: its text inside the HTML layout, escaped, with one footer
        assert "Closed by the definition&#39;s own template" in closed.html
        assert closed.html.count("Aftercare 自动发送") == 1

    def test_overriding_english_only_leaves_chinese_readers_the_builtin(self, templates: MessageTemplates) -> None:
        assert templates.render("step-waiting", _values("en"), locale="en").subject == "[ISS-0007] Please look at: Triage"
        assert templates.render("step-waiting", _values("zh"), locale="zh").subject == "[ISS-0007] 待您处理：Triage"

    def test_a_missing_language_falls_back_to_english(self, tmp_path: Path) -> None:
        folder = tmp_path / "templates"
        folder.mkdir()
        (folder / "hello.en.txt.j2").write_text("Hello {{ recipient.name }}", encoding="utf-8")
        message = MessageTemplates([folder]).render("hello", _values("zh"), locale="zh")
        assert message.text == "Hello 李娜\n" and message.markdown == message.text
        assert message.subject == "ISS-0007: 打印机 <离线>"

    def test_sources_concatenate_every_file_of_a_message(self) -> None:
        sources = template_sources([LIBRARY / "notify-support-request.yaml"])
        assert set(BUILTIN_MESSAGES) <= set(sources) and "request-triaged" in sources
        assert "_layout" not in sources
        assert "已分级为" in sources["request-triaged"] and "triaged as" in sources["request-triaged"]
        assert "Please look at" in sources["step-waiting"] and "待您处理" in sources["step-waiting"]


class TestStaticCheck:
    def test_validation_refuses_a_template_with_an_unknown_variable(self) -> None:
        loaded, problems = validate([BAD], template_sources([BAD]))
        assert not loaded
        assert [str(p) for p in problems] == [
            f"{BAD / 'bad.yaml'}:11:15: steps[0].template: unknown input 'version' in template 'bad-note'"
        ]

    def test_aftercare_validate_refuses_it_too(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["validate", str(BAD / "bad.yaml")]) == 1
        err = capsys.readouterr().err
        assert "bad.yaml:11:15: steps[0].template: unknown input 'version' in template 'bad-note'" in err

    def test_unknown_template_names_are_refused(self, tmp_path: Path) -> None:
        (tmp_path / "team.yaml").write_text((BAD / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        (tmp_path / "p.yaml").write_text((BAD / "bad.yaml").read_text(encoding="utf-8").replace("bad-note", "step-wating"), encoding="utf-8")
        _, problems = validate([tmp_path], template_sources([tmp_path]))
        assert [p.message for p in problems] == ["unknown template 'step-wating'; did you mean 'step-waiting'?"]

    def test_builtins_and_the_test_library_pass(self, tmp_path: Path) -> None:
        steps = "\n".join(f"  - {{id: s{i}, type: notify, to: [role:support], template: {name}}}" for i, name in enumerate(BUILTIN_MESSAGES))
        (tmp_path / "team.yaml").write_text((BAD / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        (tmp_path / "all.yaml").write_text(
            f"process: all-builtins\ntitle: t\nversion: 1\nkey: ALL\nsteps:\n{steps}\n  - {{id: done, type: end, outcome: ok}}\n",
            encoding="utf-8",
        )
        assert validate([tmp_path], template_sources([tmp_path]))[1] == []
        assert validate([LIBRARY], template_sources([LIBRARY]))[1] == []

    def test_a_checked_library_is_checked_against_its_own_templates(self, library: Library, tmp_path: Path) -> None:
        assert load_checked_library(LIBRARY).definitions.keys() == library.definitions.keys()
        (tmp_path / "team.yaml").write_text((BAD / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        (tmp_path / "p.yaml").write_text((BAD / "bad.yaml").read_text(encoding="utf-8").replace("bad-note", "step-wating"), encoding="utf-8")
        with pytest.raises(DefinitionError, match="unknown template 'step-wating'"):
            load_checked_library(tmp_path)


class TestMessageTemplateChecksAndLimits:
    def _folder(self, tmp_path: Path, name: str, text: str) -> Path:
        (tmp_path / "team.yaml").write_text((BAD / "team.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        (tmp_path / "p.yaml").write_text((BAD / "bad.yaml").read_text(encoding="utf-8").replace("bad-note", name), encoding="utf-8")
        (tmp_path / "templates").mkdir()
        (tmp_path / "templates" / f"{name}.en.txt.j2").write_text(text, encoding="utf-8")
        return tmp_path

    def test_the_filters_rendering_adds_are_the_ones_the_check_knows(self) -> None:
        env = MessageTemplates()._env
        assert set(rendering._FILTERS) == expressions.MESSAGE_FILTERS
        assert all(env.filters[name] is not function and env.filters[name].__wrapped__ is function for name, function in rendering._FILTERS.items())

    def test_an_unknown_filter_in_a_message_template_is_refused_but_layouts_and_its_filters_pass(self, tmp_path: Path) -> None:
        folder = self._folder(
            tmp_path,
            "note",
            '{% extends "_layout.txt.j2" %}{% block content %}{{ inputs.title | nl2br }} {{ case.opened_at | when }} {{ case.due_at | wen }}{% endblock %}',
        )
        _, problems = validate([folder], template_sources([folder]))
        assert [(p.path, p.message) for p in problems] == [
            ("steps[0].template", "template in template 'note' uses unknown filter 'wen'; did you mean 'when'?")
        ]

    def test_a_hostile_message_template_stops_fast(self, tmp_path: Path) -> None:
        hostile = "{% for i in range(100000) %}{% for j in range(inputs.count) %}{{ i }}{% endfor %}{% endfor %}"
        folder = self._folder(tmp_path, "spin", hostile)
        started = time.perf_counter()
        with pytest.raises(StepError) as refused:
            MessageTemplates.for_definitions([folder]).render("spin", {**_values("en"), "inputs": {"count": 3}})
        assert time.perf_counter() - started < 0.5
        assert str(refused.value) == (
            "template '0/spin.en.txt.j2' exceeds the limit of 100,000 loop iterations in one render (a loop of 3 brought it to 100,003)"
        )

    def test_a_message_template_with_a_constant_past_a_limit_is_refused_at_load(self, tmp_path: Path) -> None:
        folder = self._folder(tmp_path, "huge", "{{ 'x' * 10**10 }}")
        _, problems = validate([folder], template_sources([folder]))
        assert [p.message for p in problems] == [
            "template in template 'huge' exceeds the limit of 1,000,000 characters in one value ('*' would make 10,000,000,000)"
        ]


def test_the_simulator_renders_named_templates(library: Library) -> None:
    loaded = library.get("notify-support-request")
    simulator = Simulator(loaded.spec, library.team, {"triage": {"decision": "approve", "by": "li.na", "priority": "P1"}},
                          composer=Composer.for_library(library))
    result = simulator.run({"title": "VPN down", "reporter": "wang.wei"})
    assert result.outcome == "triaged"
    told = [m for m in result.messages if m.step == "tell"]
    assert told[0].subject == "SUP-0001: triaged as P1" and "triaged as P1 by li.na" in told[0].body
    # the step's result is built as a real run builds it, from the same messages
    assert result.case.results["tell"]["subject"] == "SUP-0001: triaged as P1"


def test_a_waiting_message_is_rendered_per_recipient_and_language(register: Register, library: Library) -> None:
    case = open_case(register, library)
    step = library.get("notify-support-request").spec.step("triage")
    plan = HumanPlan(eligible=("li.na", "wang.wei"), title="Triage SUP-0001", description="", started_at=T0,
                     due_at=T0 + timedelta(hours=4), escalate_to=("role:manager",))
    scope = scope_of(case, T0, url="http://ui.example/runs/flow-run/1")
    messages = {m.recipient: m for m in waiting_messages(library.team, scope, step, plan, visit=1,
                                                         templates=MessageTemplates.for_library(library))}
    assert messages["person:li.na"].subject == "[SUP-0001] 待您处理：Triage SUP-0001"
    assert messages["person:wang.wei"].subject == "[SUP-0001] Please look at: Triage SUP-0001"
    assert "aftercare answer SUP-0001 triage --as li.na --approve|--reject --comment \"...\" priority=P1|P2|P3" in messages["person:li.na"].body
    assert "--as wang.wei " in messages["person:wang.wei"].body
    assert "http://ui.example/runs/flow-run/1" in messages["person:wang.wei"].body
    assert messages["person:li.na"].html and "<code>aftercare answer SUP-0001 triage --as li.na" in messages["person:li.na"].html


def test_the_package_does_not_import_prefect_or_flows() -> None:
    import subprocess
    import sys

    code = (
        "import sys, aftercare.notifications, aftercare.notifications.escalation;"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('aftercare.flows')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_library_with_templates(library: Library) -> None:
    assert load_library(LIBRARY, template_sources([LIBRARY])).get("notify-support-request").spec.key == "SUP"
