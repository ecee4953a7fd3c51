"""Who gets a message on which channel: references (``person:X``, ``role:X``, channel URLs) to targets.

Rules (see also the package docstring):

* ``person:X`` reaches the person on every channel of their ``notify`` list
  (``email`` by default): ``email`` becomes ``email:ADDRESS``, ``console`` stays,
  anything else is an Apprise URL kept unexpanded (``${VAR}`` is resolved at send time).
* ``role:X`` reaches every member as above, *and* the role's own ``notify`` channels
  once for the role, in addition to its members: a role channel is a shared room
  (a DingTalk or Slack group), the members' own channels are how each of them asked to
  be reached, and an outbox that must lose nothing does not drop the personal copy.
  A role's ``email`` entry adds nothing (a role has no address; its members get mail).
* A channel named directly (``"slack://..."``, ``console``) is a target of its own.
* A person named several times (directly and through roles) gets one message per channel.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aftercare.engine.errors import StepError
from aftercare.engine.team import PersonSpec, TeamSpec

from .rendering import DEFAULT_LOCALE

log = logging.getLogger(__name__)

EMAIL = "email"
CONSOLE = "console"


@dataclass(frozen=True)
class Target:
    """One recipient on one channel.

    Attributes:
        recipient: ``person:li.na``, ``role:on-call``, or the channel itself when named directly.
        channel: ``email:ADDRESS``, ``console`` or an Apprise URL (unexpanded).
        locale: the language of the built-in messages it gets.
        person: the person's id, when the target is a person.
        name: how the message greets it.
        email: the person's address, when known.
        people: the people behind the target (the person, a role's members).
    """

    recipient: str
    channel: str
    locale: str
    person: str | None
    name: str
    email: str | None = None
    people: tuple[str, ...] = ()


def majority_locale(team: TeamSpec, people: Iterable[str]) -> str:
    """The most common locale of some people (English on a tie or for nobody)."""
    counts = Counter(team.people[p].locale for p in people if p in team.people)
    if not counts:
        return DEFAULT_LOCALE
    best = max(counts.values())
    winners = sorted(locale for locale, count in counts.items() if count == best)
    return DEFAULT_LOCALE if DEFAULT_LOCALE in winners else winners[0]


def person_channels(person_id: str, person: PersonSpec) -> list[str]:
    """The channels a person's ``notify`` list names, mail resolved to ``email:ADDRESS``."""
    channels: list[str] = []
    for entry in person.notify:
        entry = entry.strip()
        if entry == EMAIL:
            if person.email:
                channels.append(f"{EMAIL}:{person.email}")
            else:
                log.warning("%s has the email channel but no email address; using the console", person_id)
                channels.append(CONSOLE)
        elif entry:
            channels.append(entry)
    return list(dict.fromkeys(channels))


def is_channel(reference: str) -> bool:
    """Whether a reference names a channel rather than a person or role."""
    return "://" in reference or reference in (EMAIL, CONSOLE)


def targets(team: TeamSpec, references: Sequence[str]) -> list[Target]:
    """Every (recipient, channel) the references reach, without repeats, in order.

    Args:
        team: the team file.
        references: rendered references (``router.resolve_recipients``).

    Raises:
        StepError: a reference names no person or role of the team.
    """
    out: list[Target] = []
    seen: set[tuple[str, str]] = set()

    def add(target: Target) -> None:
        if (target.recipient, target.channel) not in seen:
            seen.add((target.recipient, target.channel))
            out.append(target)

    def add_person(person_id: str) -> None:
        person = team.people[person_id]
        for channel in person_channels(person_id, person):
            add(Target(f"person:{person_id}", channel, person.locale, person_id, person.name, person.email, (person_id,)))

    for reference in references:
        reference = reference.strip()
        if not reference:
            continue
        if is_channel(reference):
            if reference == EMAIL:
                log.warning("a message names the bare channel 'email', which has no address; name a person instead")
                continue
            everyone = list(team.people)
            add(Target(reference, reference, majority_locale(team, everyone), None, reference))
            continue
        kind, _, name = reference.partition(":")
        if kind == "role" and name in team.roles:
            role = team.roles[name]
            for channel in role.notify:
                if channel.strip() == EMAIL:
                    continue
                add(Target(reference, channel.strip(), majority_locale(team, role.members), None, name, None, role.members))
            for member in role.members:
                add_person(member)
            continue
        try:
            members = team.members(reference)
        except KeyError:
            raise StepError(f"{reference!r} names no person or role of the team") from None
        for member in members:
            add_person(member)
    return out
