"""Channels that deliver outbox messages: e-mail over SMTP, Apprise URLs (chat, webhooks), the console.

A message's ``channel`` is one of:

``email:ADDRESS``
    Mail over the server of ``AFTERCARE_SMTP_URL`` (read when the message is sent):
    ``smtp://[user[:password]@]host[:port][?starttls=true&from=ADDR]`` (port 25 by
    default) or ``smtps://...`` (TLS from the first byte, port 465). Unset, mail is
    written to the console instead, so the embedded default works with no server.
    A message is ``multipart/alternative`` (UTF-8 text and HTML), its subject
    RFC 2047-encoded, its ``Message-ID`` derived from the idempotency key so that
    a receiving system can recognise a copy.
``console``
    The message is written to standard error (the log of a served flow).
any Apprise URL
    Slack (``slack://``), Microsoft Teams (``workflows://``, Power Automate; Apprise
    retired its ``msteams://`` connector URLs with Microsoft's Office 365 connectors),
    DingTalk (``dingtalk://``), WeCom (``wecombot://``), Feishu (``feishu://``), Lark
    (``lark://``), generic JSON webhooks (``json://`` / ``jsons://``: a POST of
    ``{"version", "title", "message", "type"}``), and every other Apprise service.
    Chat services get the Markdown body, webhooks (``json``, ``form``, ``xml``) the text.

Secrets never sit in YAML: ``${VAR}`` in a channel (or in ``AFTERCARE_SMTP_URL``) is
replaced with the environment variable when the message is sent, and
``${prefect-secret:BLOCK}`` with the value of the Prefect Secret block ``BLOCK``
(read lazily, so Prefect is imported only when a channel uses one). The stored channel
keeps the placeholder, so no secret reaches the register or the idempotency key.

Errors: :class:`ChannelError` is worth retrying (a server down, a variable not set
yet); :class:`PermanentChannelError` is not (a malformed URL, a refused address): the
outbox gives up on it at once (``aftercare outbox retry`` brings it back once fixed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import smtplib
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from typing import IO, Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from aftercare.engine import settings
from aftercare.engine.errors import AftercareError

log = logging.getLogger(__name__)

SMTP_URL_ENV = "AFTERCARE_SMTP_URL"
EMAIL_PREFIX = "email:"
CONSOLE = "console"
DEFAULT_SENDER = "aftercare@localhost"
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
"""Apprise schemes that post to a program, not to people: they get the plain text body."""

MessageFormat = Literal["email", "text", "markdown"]
SecretReader = Callable[[str], str]

_PLACEHOLDER = re.compile(
    r"\$\{(?:prefect-secret:(?P<block>[A-Za-z0-9][A-Za-z0-9_-]*)|(?P<var>[A-Za-z_][A-Za-z0-9_]*))\}"
)


class ChannelError(AftercareError, RuntimeError):
    """A channel could not deliver a message; a later attempt may succeed."""


class PermanentChannelError(ChannelError):
    """A channel can never deliver this message as it is (bad URL, refused address)."""


class Deliverable(Protocol):
    """What a channel needs of a message (``MessageRecord`` and ``OutboxMessage`` both fit)."""

    @property
    def recipient(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def html(self) -> str | None: ...
    @property
    def idempotency_key(self) -> str: ...


def message_format(channel: str) -> MessageFormat:
    """Which body a channel gets: ``email`` (text + HTML), ``markdown`` (chat) or ``text``."""
    if channel.startswith(EMAIL_PREFIX):
        return "email"
    scheme, sep, _ = channel.partition("://")
    if sep and scheme.lower() not in WEBHOOK_SCHEMES:
        return "markdown"
    return "text"


# --- secrets ------------------------------------------------------------------------------


def read_prefect_secret(name: str) -> str:
    """The value of a Prefect Secret block (Prefect is imported here, and only here).

    Raises:
        ChannelError: the block cannot be read (no server, no such block).
    """
    try:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]  # _sync: a value even in an async flow
        value = block.get()
    except Exception as error:  # Prefect raises many kinds; all mean "not now"
        raise ChannelError(f"cannot read Prefect Secret block {name!r}: {error}") from error
    return str(value)


def expand(text: str, *, environ: Mapping[str, str] | None = None, secrets: SecretReader | None = None) -> str:
    """Replace ``${VAR}`` with the environment's value and ``${prefect-secret:BLOCK}`` with the block's.

    Raises:
        ChannelError: a variable is not set, or a secret block cannot be read.
    """
    env = os.environ if environ is None else environ
    reader = secrets or read_prefect_secret
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        if match["var"]:
            value = env.get(match["var"])
            if value is None:
                raise ChannelError(f"environment variable {match['var']} is not set (used as ${{{match['var']}}} in a channel)")
            return value
        block = match["block"]
        if block not in cache:
            cache[block] = reader(block)
        return cache[block]

    return _PLACEHOLDER.sub(replace, text)


# --- SMTP ------------------------------------------------------------------------------------


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail, from ``AFTERCARE_SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool = False
    sender: str = DEFAULT_SENDER
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> SmtpSettings:
        """Parse ``smtp://[user[:password]@]host[:port][?starttls=true&from=ADDR]`` or ``smtps://...``.

        Raises:
            ChannelError: not such a URL (worth retrying: fixing the configuration
                makes every waiting mail deliverable again).
        """
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ChannelError(
                f"{SMTP_URL_ENV} must look like smtp://[user[:password]@]host[:port][?starttls=true&from=ADDR] or smtps://..., got scheme {parts.scheme!r}"
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"starttls", "from", "timeout"})
        if unknown:
            raise ChannelError(f"{SMTP_URL_ENV}: unknown option(s) {', '.join(unknown)}; allowed: starttls, from, timeout")
        try:
            port = parts.port or (465 if scheme == "smtps" else 25)
        except ValueError as error:
            raise ChannelError(f"{SMTP_URL_ENV}: {error}") from None
        username = unquote(parts.username) if parts.username else None
        sender = query.get("from") or (username if username and "@" in username else DEFAULT_SENDER)
        return cls(
            host=parts.hostname,
            port=port,
            username=username,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=scheme == "smtps",
            starttls=_flag(query.get("starttls")),
            sender=sender,
            timeout=float(query.get("timeout") or timeout),
        )


def message_id(idempotency_key: str) -> str:
    """A stable ``Message-ID`` for an outbox message: a resend is recognisably the same mail."""
    return f"<{hashlib.sha256(idempotency_key.encode('utf-8')).hexdigest()[:32]}@aftercare>"


def build_mail(sender: str, to: str, subject: str, text: str, html: str | None, idempotency_key: str) -> EmailMessage:
    """A UTF-8 ``multipart/alternative`` mail (text, then HTML), subject encoded as RFC 2047 needs."""
    mail = EmailMessage()  # the modern policy encodes non-ASCII headers (a Chinese subject) itself
    name, address = parseaddr(sender)
    mail["From"] = formataddr((name or "Aftercare", address or sender))
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(idempotency_key)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(text, charset="utf-8")
    if html:
        mail.add_alternative(html, subtype="html", charset="utf-8")
    return mail


def send_mail(settings: SmtpSettings, mail: EmailMessage) -> None:
    """Send one mail; one connection per mail keeps a failure confined to its message.

    smtplib rather than Apprise's ``mailto://``: the server is one fixed URL for the
    whole installation (not a URL per recipient), the message must be a real
    multipart/alternative with our own HTML and a stable Message-ID, and SMTP reply
    codes must tell a refused address (permanent) from a server that is down (retry);
    Apprise's mail plugin builds its own message and reports only True or False.

    Raises:
        PermanentChannelError: the server refused the address or the message (5xx).
        ChannelError: the server is unreachable or answered with a temporary error.
    """
    where = f"{settings.host}:{settings.port}"
    try:
        if settings.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.starttls:
                client.starttls(context=ssl.create_default_context())
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(mail)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        detail = "; ".join(f"{addr}: {code} {text!r}" for addr, (code, text) in error.recipients.items())
        if all(code >= 500 for code in codes):
            raise PermanentChannelError(f"mail server {where} refused {detail}") from error
        raise ChannelError(f"mail server {where} deferred {detail}") from error
    except smtplib.SMTPAuthenticationError as error:
        raise ChannelError(f"mail server {where} refused the login: {error.smtp_code} {error.smtp_error!r}") from error
    except smtplib.SMTPResponseException as error:
        kind = PermanentChannelError if error.smtp_code >= 500 else ChannelError
        raise kind(f"mail server {where} answered {error.smtp_code} {error.smtp_error!r}") from error
    except (smtplib.SMTPException, OSError, socket.timeout) as error:
        raise ChannelError(f"mail server {where}: {error.__class__.__name__}: {error}") from error


# --- Apprise ---------------------------------------------------------------------------------


class _ThreadCapture(logging.Handler):
    """Apprise reports failures only in its log: keep the warnings of this thread's send."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


@contextmanager
def _apprise_warnings() -> Iterator[_ThreadCapture]:
    logger = logging.getLogger("apprise")
    handler = _ThreadCapture()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def send_apprise(url: str, shown_as: str, title: str, body: str, body_format: MessageFormat) -> None:
    """Send through one Apprise URL.

    Args:
        url: the expanded URL (may hold secrets: never put it in an error).
        shown_as: the URL as stored (placeholders unexpanded), for errors.
        title: the subject.
        body: the body.
        body_format: ``markdown`` or ``text``.

    Raises:
        PermanentChannelError: Apprise does not understand the URL.
        ChannelError: the service did not accept the message.
    """
    import apprise

    sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    if not sender.add(url):
        raise PermanentChannelError(f"{shown_as!r} is not an Apprise URL Apprise can use (see https://appriseit.com/services/)")
    notify_format = apprise.NotifyFormat.MARKDOWN if body_format == "markdown" else apprise.NotifyFormat.TEXT
    with _apprise_warnings() as warnings:
        sent = sender.notify(body=body, title=title, body_format=notify_format)
    if not sent:
        detail = "; ".join(warnings.lines) or "the service did not accept the message"
        raise ChannelError(f"{shown_as}: {detail}")


# --- the router ----------------------------------------------------------------------------------


class ChannelRouter:
    """Sends a message on its channel; configuration is read when a message is sent.

    Args:
        smtp_url: the mail server; ``None`` reads ``AFTERCARE_SMTP_URL`` at each send
            (unset or empty: mail goes to the console).
        environ: where ``${VAR}`` comes from (``os.environ`` by default).
        secrets: reads ``${prefect-secret:BLOCK}`` (a Prefect Secret block by default).
        console: the stream of the console channel (standard error by default).
        smtp_timeout: seconds to wait for the mail server; keep it well under the
            outbox's claim lease so that a slow send is never claimed twice.
    """

    def __init__(
        self,
        *,
        smtp_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        secrets: SecretReader | None = None,
        console: IO[str] | None = None,
        smtp_timeout: float = 30.0,
    ) -> None:
        self._smtp_url = smtp_url
        self._environ = environ
        self._secrets = secrets
        self._console = console
        self._lock = threading.Lock()
        self.smtp_timeout = smtp_timeout

    def _expand(self, text: str) -> str:
        return expand(text, environ=self._environ, secrets=self._secrets)

    def smtp_settings(self) -> SmtpSettings | None:
        """The mail server to use now, or None (mail goes to the console)."""
        if self._smtp_url is not None:
            url = self._smtp_url
        elif self._environ is not None:
            url = self._environ.get(SMTP_URL_ENV, "")
        else:
            url = settings.smtp_url() or ""
        if not url.strip():
            return None
        return SmtpSettings.from_url(self._expand(url), timeout=self.smtp_timeout)

    def send(self, message: Deliverable) -> str:
        """Deliver one message on its channel; returns how (for the log).

        Raises:
            ChannelError: not delivered, try again later.
            PermanentChannelError: not deliverable as it is.
        """
        channel = message.channel.strip()
        if channel.startswith(EMAIL_PREFIX):
            address = channel[len(EMAIL_PREFIX):].strip()
            if not address or "@" not in address:
                raise PermanentChannelError(f"{channel!r} has no e-mail address")
            settings = self.smtp_settings()
            if settings is None:
                self._print(message, f"mail to {address} (no {SMTP_URL_ENV}: written here instead)")
                return f"console (mail to {address}; {SMTP_URL_ENV} unset)"
            mail = build_mail(settings.sender, address, message.subject, message.body, message.html, message.idempotency_key)
            send_mail(settings, mail)
            return f"mail to {address} via {settings.host}:{settings.port}"
        if channel == CONSOLE:
            self._print(message, message.recipient)
            return "console"
        if "://" in channel:
            send_apprise(self._expand(channel), channel, message.subject, message.body, message_format(channel))
            return channel.partition("://")[0]
        raise PermanentChannelError(
            f"unknown channel {channel!r}: use email, console or an Apprise URL (slack://, dingtalk://, json://, ...)"
        )

    def _print(self, message: Deliverable, to: str) -> None:
        stream = self._console or sys.stderr
        log.info("console message for %s: %s", to, message.subject)
        text = f"--- message for {to} ---\nSubject: {message.subject}\n\n{message.body.rstrip()}\n---\n"
        with self._lock:  # whole messages, even from concurrent deliverers
            stream.write(text)
            stream.flush()
