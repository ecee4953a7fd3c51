"""Case keys (ISS-0042): one counter row per prefix, incremented atomically."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from .upserts import increment_counter

_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
KEY_DIGITS = 4


def format_key(prefix: str, number: int) -> str:
    """``ISS``, 42 → ``ISS-0042``; numbers beyond 9999 simply grow (``ISS-10000``)."""
    return f"{prefix}-{number:0{KEY_DIGITS}d}"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a case key, else raise ValueError.

    Args:
        prefix: the process's ``key`` (letters, digits, underscores; a letter first).
    """
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"key prefix {prefix!r} must start with a letter and hold only letters, "
            "digits and underscores (for example 'ISS')"
        )
    return prefix


def allocate_key(session: Session, prefix: str) -> str:
    """Take the next key for ``prefix`` inside the session's write transaction.

    A single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` increments the
    counter: on PostgreSQL it holds the counter row's lock until commit, on SQLite
    the transaction already holds the write lock (BEGIN IMMEDIATE), so concurrent
    openers never get the same number.

    Args:
        session: a session in a write transaction.
        prefix: the key prefix, such as ``ISS``.
    """
    return format_key(prefix, increment_counter(session, check_prefix(prefix)))
