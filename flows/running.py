"""``aftercare run``: one case as a real Prefect flow run in the foreground, answered by people or a script."""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from prefect import tags

from aftercare.engine.errors import AftercareError
from aftercare.engine.loader import Library, LoadedDefinition

from aftercare.engine.register import Register

from .answering import paused_key, submit_answer
from .human import pause_prefix
from .process_flow import CASE_LISTENERS, build_flow, run_tags

ANSWER_KEYS = ("decision", "by", "comment")
INTERRUPT_ATTEMPTS = 5
INTERRUPT_SECONDS = 5.0


class AnswerFeeder:
    """Submits scripted answers through resume_flow_run as the run asks for them, like people would."""

    def __init__(self, answers: Mapping[str, Any], library: Library, *, echo: bool = True) -> None:
        self.queue = {step: list(value) if isinstance(value, list) else [value] for step, value in answers.items()}
        self.library = library
        self.register = Register()
        self.echo = echo
        self.case_key: str | None = None
        self.flow_run_id: str | None = None
        self.error: AftercareError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_case(self, case_key: str, flow_run_id: str) -> None:
        """Called by the flow once its case is known; starts feeding."""
        if self._thread is not None:
            return
        self.case_key, self.flow_run_id = case_key, flow_run_id
        self._thread = threading.Thread(target=self._feed, name=f"answers-{case_key}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop feeding."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _waiting_step(self, key: str) -> str | None:
        """The step the run's current pause key belongs to (the case's current step)."""
        assert self.case_key
        record = self.register.case(self.case_key)
        for run in reversed(self.register.step_runs(self.case_key)):
            if run.is_open and run.step_id == record.current_step and key.startswith(pause_prefix(run.step_id, run.visit)):
                return run.step_id
        return None

    def _feed(self) -> None:
        assert self.case_key and self.flow_run_id
        answered: set[str] = set()
        told: set[str] = set()
        while not self._stop.is_set():
            try:
                key = paused_key(self.flow_run_id)
            except Exception:  # noqa: BLE001 - a passing API hiccup; ask again
                key = None
            if not key or key in answered:
                time.sleep(0.3)
                continue
            step_id = self._waiting_step(key)
            if step_id is None:
                time.sleep(0.3)
                continue
            queue = self.queue.get(step_id)
            if not queue:
                if key not in told and self.echo:
                    print(f"{self.case_key} waits at {step_id!r}: answer in the Prefect UI or with "
                          f"`aftercare answer {self.case_key} {step_id} --as PERSON ...`", file=sys.stderr)
                told.add(key)
                time.sleep(0.5)
                continue
            script = dict(queue.pop(0))
            fields = {name: value for name, value in script.items() if name not in ANSWER_KEYS}
            try:
                submit_answer(
                    self.case_key, step_id, by=str(script.get("by", "")), decision=script.get("decision"),
                    comment=script.get("comment"), fields=fields, team=self.library.team,
                )
                answered.add(key)
            except AftercareError as error:
                self.error = error
                self._interrupt_the_run()
                return

    def _interrupt_the_run(self) -> None:
        """The run waits for an answer that will never come: interrupt it, as Ctrl-C would.

        An interrupt was once seen to be lost (the run stayed paused until the test's
        timeout; the cause was not traced), so it is repeated until ``run_foreground`` has
        stopped the feeder, which means it took effect.
        """
        for _ in range(INTERRUPT_ATTEMPTS):
            _thread.interrupt_main()
            if self._stop.wait(INTERRUPT_SECONDS):
                return


def run_foreground(definition: LoadedDefinition, library: Library, inputs: Mapping[str, Any], answers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Run one case of a definition as a Prefect flow run in this process and return its result."""
    process_flow = build_flow(definition, library)
    feeder = AnswerFeeder(answers or {}, library)
    CASE_LISTENERS.append(feeder.on_case)
    try:
        with tags(*run_tags(definition)):  # the tags a served or deployed run has from its deployment
            result: dict[str, Any] = process_flow(**dict(inputs))
    except KeyboardInterrupt:
        if feeder.error is not None:
            raise feeder.error from None
        raise
    finally:
        CASE_LISTENERS.remove(feeder.on_case)
        feeder.stop()
    return result
