"""The exact text of every definition a case ran, so running cases keep their version; and linking runs to cases."""

from __future__ import annotations

from sqlalchemy import select

from ..clock import utc_now
from ..errors import NotFoundError
from .history import add_audit
from .models import Definition
from .records import CASE_OPEN, CASE_QUEUED, CaseRecord
from .rows import case_record, case_row
from .store import SYSTEM_ACTOR, Store


class DefinitionStore(Store):
    """Definitions by hash, and the flow run that drives a case."""

    def save_definition(self, digest: str, process: str, version: int, text: str) -> None:
        """Keep a definition's text under its hash; saving the same hash again writes nothing."""
        with self._write() as session:
            if session.get(Definition, digest) is None:
                row = Definition(hash=digest, process=process, version=version, text=text, saved_at=utc_now())
                session.add(row)

    def definition_text(self, digest: str) -> str:
        """The text of the definition with this hash.

        Raises:
            NotFoundError: no definition was saved under it.
        """
        text = self.stored_definition(digest)
        if text is None:
            raise NotFoundError(f"no definition {digest!r} in the register")
        return text

    def stored_definition(self, digest: str) -> str | None:
        """The text of the definition with this hash, None when none was saved under it."""
        with self._read() as session:
            text: str | None = session.scalars(select(Definition.text).where(Definition.hash == digest)).one_or_none()
        return text

    def attach_run(self, key: str, flow_run_id: str, *, actor: str = SYSTEM_ACTOR) -> CaseRecord:
        """Record the flow run that drives a case (a linked case launched after it was opened)."""
        with self._write() as session:
            case = case_row(session, key, lock=True)
            if case.flow_run_id != flow_run_id:
                before = case.flow_run_id
                case.flow_run_id = flow_run_id
                if case.status == CASE_QUEUED:
                    case.status = CASE_OPEN
                add_audit(
                    session, case.id, "case.run_attached", actor, utc_now(),
                    before={"flow_run_id": before}, after={"flow_run_id": flow_run_id},
                )
                session.flush()
            return case_record(session, case)
