"""Message templates: built-in and per-definition Jinja files, rendered in the language's sandbox.

A message template is a family of files named ``NAME[.LOCALE].PART.j2``:

``PART``
    ``subject`` (one line), ``txt`` (plain text, e-mail and the console), ``html``
    (the e-mail's HTML alternative) or ``md`` (Markdown, for chat channels).
``LOCALE``
    ``en`` or ``zh`` (a person's ``locale`` in team.yaml); a file without one serves
    every language.

Definitions ship their own templates in ``templates/`` beside them
(``processes/templates/issue-resolved.zh.txt.j2``); those come before the built-ins
in ``notifications/templates/``, so a definition folder may add templates and
override built-ins (a layout too). For a recipient whose locale is ``L`` a message is
looked up as ``NAME.L.*`` then ``NAME.*`` in each folder in order, then as
``NAME.en.*`` in each folder: overriding only the English text of a built-in leaves
Chinese readers the built-in Chinese one, and a locale-free override replaces the
built-in for everyone. The body (``txt``, ``md``, ``html``) comes whole from the first
folder that has a ``txt`` or ``md`` for it, so an override is never mixed with the
built-in it replaces; the ``subject`` is looked up on its own, so a definition may
change only the subject of a built-in.

Missing parts fall back: no ``md`` means the text, no ``txt`` means the Markdown,
no ``html`` means the text inside the HTML layout, no ``subject`` means the
rendering scope's ``subject`` or ``CASE-KEY: case title``. A template exists when it
has a ``txt`` or ``md`` body in some language.

Bodies inherit a shared layout (``_layout.txt.j2``, ``_layout.md.j2``,
``_layout.html.j2``) with ``{% extends %}`` and fill its ``content`` block. Names
starting with ``_`` are layouts and partials, not messages.

Rendering uses the language's sandbox class, with its limits on one render, and its
undefined policy (:func:`aftercare.engine.expressions.environment`) with a loader over
the template folders; HTML files are autoescaped, the others are not.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader, select_autoescape
from jinja2.exceptions import TemplateError, TemplateNotFound
from markupsafe import Markup, escape

from aftercare.engine import expressions
from aftercare.engine.library import load_library
from aftercare.engine.loader import Library
from aftercare.engine.errors import StepError

log = logging.getLogger(__name__)

BUILTIN_FOLDER = Path(__file__).resolve().with_name("templates")
"""The built-in templates shipped with the package."""
DEFINITION_TEMPLATES = "templates"
"""The folder beside definitions that holds their own templates."""
PARTS = ("subject", "txt", "html", "md")
DEFAULT_LOCALE = "en"
_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_-]*)(?:\.(?P<locale>[a-z]{2}(?:[-_][A-Za-z]{2,4})?))?\.(?P<part>subject|txt|html|md)\.j2$")


@dataclass(frozen=True)
class RenderedMessage:
    """One message rendered for one recipient: a subject and its body in every format."""

    subject: str
    text: str
    html: str
    markdown: str


def when(value: Any) -> str:
    """Format a datetime (or its ISO text) as ``2026-01-05 13:00 UTC``; other values as text."""
    moment: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    if moment is not None:
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return "" if value is None else str(value)


def nl2br(value: Any) -> Markup:
    """Escape text and keep its line breaks in HTML."""
    return Markup("<br>\n").join(escape(line) for line in str(value if value is not None else "").splitlines())


_FILTERS: dict[str, Callable[[Any], Any]] = {"when": when, "nl2br": nl2br}
"""The filters message templates have besides Jinja's; the static check knows them as ``expressions.MESSAGE_FILTERS``."""


def _environment(folders: Sequence[Path]) -> Any:
    base = expressions.environment()
    env = type(base)(
        # "2/step-waiting.zh.txt.j2" loads that file of folder 2; a bare name (a layout in
        # {% extends %}) is the first folder's that has it.
        loader=ChoiceLoader(
            [
                PrefixLoader({str(i): FileSystemLoader(str(f), encoding="utf-8") for i, f in enumerate(folders)}),
                FileSystemLoader([str(folder) for folder in folders], encoding="utf-8"),
            ]
        ),
        undefined=base.undefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for name, function in _FILTERS.items():
        env.filters[name] = expressions.bounded_filter(name, function)
    return env


def definition_template_folders(paths: Iterable[Path]) -> list[Path]:
    """The ``templates/`` folders beside definition files and folders, existing ones only, in order."""
    folders: list[Path] = []
    for path in paths:
        folder = path if path.is_dir() else path.parent
        candidate = folder / DEFINITION_TEMPLATES
        if candidate.is_dir() and candidate.resolve() not in [f.resolve() for f in folders]:
            folders.append(candidate)
    return folders


class MessageTemplates:
    """The message templates of some definition folders and the built-ins.

    Args:
        folders: template folders searched before the built-ins, first wins.
        builtin: include the built-in templates (last).
    """

    def __init__(self, folders: Sequence[Path] = (), *, builtin: bool = True) -> None:
        self.folders: tuple[Path, ...] = tuple(Path(f) for f in folders) + ((BUILTIN_FOLDER,) if builtin else ())
        self._env = _environment(self.folders)

    @classmethod
    def for_definitions(cls, paths: Iterable[Path]) -> MessageTemplates:
        """Templates for definitions in these files and folders (their ``templates/`` folders first)."""
        return cls(definition_template_folders(paths))

    @classmethod
    def for_library(cls, library: Library) -> MessageTemplates:
        """Templates for a loaded library (its root folder's ``templates/``)."""
        return cls(definition_template_folders([library.root]) if library.root is not None else [])

    # --- what exists ---------------------------------------------------------------

    @cached_property
    def _files(self) -> dict[str, list[tuple[Path, str | None, str]]]:
        """Message name -> (file, locale, part), in folder order."""
        found: dict[str, list[tuple[Path, str | None, str]]] = defaultdict(list)
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.j2")):
                match = _FILE.match(file.name)
                if match is None:
                    if not file.name.startswith("_"):
                        log.warning("ignoring template %s: name it NAME[.LOCALE].(subject|txt|html|md).j2", file)
                    continue
                if match["name"].startswith("_"):
                    continue
                found[match["name"]].append((file, match["locale"], match["part"]))
        return {name: files for name, files in found.items() if any(part in ("txt", "md") for _, _, part in files)}

    def names(self) -> list[str]:
        """Every message template name, sorted."""
        return sorted(self._files)

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def sources(self) -> dict[str, str]:
        """Name -> every file of the message concatenated (all parts, languages and folders), for the static check."""
        return {
            name: "\n".join(file.read_text(encoding="utf-8") for file, _, _ in files)
            for name, files in sorted(self._files.items())
        }

    def _groups(self, name: str, locale: str) -> tuple[tuple[str, ...], ...]:
        return ((f"{name}.{locale}", name), (f"{name}.{DEFAULT_LOCALE}",))

    def _find_subject(self, name: str, locale: str) -> str | None:
        """The loader name of the subject for a locale, or None; a subject overrides on its own."""
        for group in self._groups(name, locale):
            for index, folder in enumerate(self.folders):
                for stem in group:
                    if (folder / f"{stem}.subject.j2").is_file():
                        return f"{index}/{stem}.subject.j2"
        return None

    def _find_body(self, name: str, locale: str) -> dict[str, str]:
        """Loader names of the body parts (``txt``, ``md``, ``html``) for a locale.

        The first folder (in the order of the module docstring) that has a text or
        Markdown body provides every body part: parts it lacks are derived from its
        text, never taken from another folder, so an override is never mixed with
        the built-in it replaces.
        """
        for group in self._groups(name, locale):
            for index, folder in enumerate(self.folders):
                if not any((folder / f"{stem}.{part}.j2").is_file() for stem in group for part in ("txt", "md")):
                    continue
                parts: dict[str, str] = {}
                for part in ("txt", "md", "html"):
                    for stem in group:
                        if (folder / f"{stem}.{part}.j2").is_file():
                            parts[part] = f"{index}/{stem}.{part}.j2"
                            break
                return parts
        return {}

    # --- rendering -------------------------------------------------------------------

    def render(
        self, name: str, scope: Mapping[str, Any], *, locale: str = DEFAULT_LOCALE, subject: str | None = None
    ) -> RenderedMessage:
        """Render every part of a message for one recipient.

        Args:
            name: the message template's name (``step-waiting``, ``issue-resolved``).
            scope: what the template sees: the case scope plus the notification names
                (``recipient``, ``step``, ``links``, ``answer_command``, ``message``,
                ``reason``, ``subject``).
            locale: the recipient's language.
            subject: a subject that replaces the template's own (a notify step's ``subject:``).

        Raises:
            StepError: no such template, or it fails at run time (wrapping the Jinja error).
        """
        if name not in self._files:
            raise StepError(f"unknown message template {name!r}; known: {', '.join(self.names())}")
        values = dict(scope)
        subject_file = self._find_subject(name, locale)
        if subject is not None:
            pass
        elif subject_file is not None:
            subject = self._render_file(subject_file, values)
        else:
            subject = str(values.get("subject") or "") or _default_subject(values)
        subject = one_line(subject)
        values["subject"] = subject
        body = self._find_body(name, locale)
        text_file, md_file, html_file = body.get("txt"), body.get("md"), body.get("html")
        text = self._render_file(text_file or md_file, values)  # type: ignore[arg-type]
        markdown = self._render_file(md_file, values) if md_file else text
        if html_file is not None:
            html = self._render_file(html_file, values)
        else:
            # The text again without its layout's footer, inside the HTML layout (which has its own).
            bare = self._render_file(text_file or md_file, {**values, "embedded": True})  # type: ignore[arg-type]
            html = self._render_file("_layout.html.j2", {**values, "content_text": tidy(bare).rstrip()})
        return RenderedMessage(subject=subject, text=tidy(text), html=html.strip() + "\n", markdown=tidy(markdown))

    def _render_file(self, loader_name: str, values: Mapping[str, Any]) -> str:
        try:
            return str(self._env.get_template(loader_name).render(values))
        except TemplateNotFound as error:
            raise StepError(f"template {loader_name!r} not found in {', '.join(map(str, self.folders))}") from error
        except expressions.TemplateLimitError as error:
            raise StepError(f"template {loader_name!r} {error}") from error
        except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as error:
            raise StepError(f"template {loader_name!r} failed: {error}") from error
        except RecursionError as error:
            raise StepError(f"template {loader_name!r} nests or recurses too deeply") from error


def _default_subject(values: Mapping[str, Any]) -> str:
    case = values.get("case") or {}
    key, title = case.get("key"), case.get("title")
    return f"{key}: {title}" if key and title else str(key or title or "Aftercare")


def one_line(text: str) -> str:
    """Collapse a subject to one line (a header must not contain line breaks)."""
    return " ".join(text.split())


def tidy(text: str) -> str:
    """Trim trailing spaces and runs of blank lines a template's control flow leaves behind."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"


def template_sources(paths: Iterable[Path]) -> dict[str, str]:
    """Template name -> concatenated sources of the built-ins and the definitions' own templates."""
    return MessageTemplates.for_definitions(list(paths)).sources()


def load_checked_library(folder: Path) -> Library:
    """Load a folder of definitions with its team, checking every notify step's template against the folder's templates.

    Raises:
        DefinitionError: every problem of every file.
    """
    return load_library(folder, template_sources([folder]))
