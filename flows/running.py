"""``aftercare run``: one case as a real Prefect flow run in the foreground, answered by people or a script.

With an answers file, a feeder thread answers each step as the run asks, through the
run's resume form like a person would, in the order the file gives (``after:`` orders,
it does not sleep). An answer scripted after the due of a step with ``on_timeout`` is too
late, and ``timeout: true`` lets the due pass: the feeder marks the step timed out in the
register, as the due's timer run does when the due really passes, and the run takes
``on_timeout`` at once. The answers file is read by the engine's one parser.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from prefect import tags

from aftercare.engine import settings
from aftercare.engine.answers import is_late
from aftercare.engine.answers_file import ScriptedAnswer, ScriptedAnswers
from aftercare.engine.clock import utc_now
from aftercare.engine.errors import AftercareError, StepError
from aftercare.engine.loader import Library, LoadedDefinition
from aftercare.engine.register import Register, StepRunRecord
from aftercare.engine.runner import structure_of
from aftercare.engine.spec import HumanStep, ProcessSpec

from .answering import case_spec, paused_key, submit_answer
from .executor import await_round, waiting_round
from .resume_form import pause_prefix
from .forms import parse_row
from .process_flow import CASE_LISTENERS, build_flow, run_tags

SCRIPT_ACTOR = "aftercare run --answers"
INTERRUPT_ATTEMPTS = 5
INTERRUPT_SECONDS = 5.0


class AnswerFeeder:
    """Submits scripted answers through resume_flow_run as the run asks for them, like people would."""

    def __init__(self, answers: ScriptedAnswers, library: Library, *, echo: bool = True) -> None:
        self.answers = answers
        self.library = library
        self.register = Register()
        self.echo = echo
        self.case_key: str | None = None
        self.flow_run_id: str | None = None
        self.spec: ProcessSpec | None = None
        self.error: AftercareError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round = 0
        """The case run's waiting round the last answer that decided a step side by side was given in."""

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

    def _waiting(self, key: str) -> StepRunRecord | None:
        """The open human step the run's current pause key belongs to."""
        assert self.case_key
        for run in self.register.step_runs(self.case_key):
            if run.is_open and run.eligible and key.startswith(pause_prefix(run.step_id, run.visit)):
                return run
        return None

    def _feed(self) -> None:
        assert self.case_key and self.flow_run_id
        answered: set[str] = set()
        told: set[str] = set()
        while not self._stop.is_set():
            try:
                if self._answer_beside_others():
                    continue
            except AftercareError as error:
                self.error = error
                with contextlib.suppress(AftercareError):
                    self.register.fail_case(self.case_key, f"a scripted answer was refused: {error}", actor=SCRIPT_ACTOR)
                self._interrupt_the_run()
                return
            try:
                key = paused_key(self.flow_run_id)
            except Exception:  # noqa: BLE001 - a passing API hiccup; ask again
                key = None
            run = self._waiting(key) if key and key not in answered else None
            if key is None or run is None:
                time.sleep(0.3)
                continue
            try:
                if self._answer(run, key, told):
                    answered.add(key)
            except AftercareError as error:
                # The run waits for an answer that will never come: the case fails with the
                # reason, then the run is stopped.
                self.error = error
                with contextlib.suppress(AftercareError):
                    self.register.fail_case(self.case_key, f"the scripted answer to {run.step_id!r} was refused: {error}", actor=SCRIPT_ACTOR)
                self._interrupt_the_run()
                return

    def _answer_beside_others(self) -> bool:
        """Steps waiting side by side (parallel branches, instances) in form runs of their own: answer the one
        whose scripted answer comes first (``after`` from when it began), and wait until its run took it.

        Only in a waiting round of the case's run (:func:`.executor.waiting_round`): every branch of
        the moment begun, and the last deciding answer acted on."""
        assert self.case_key and self.flow_run_id
        if not self._ready():
            return False
        if not await_round(self.flow_run_id, self._round, timeout=0.3):
            return True  # the run is still beginning this moment's branches (or acting on the last answer): wait for its round
        this_round = waiting_round(self.flow_run_id)
        ready = self._ready()
        if not ready:
            return False
        _, _, run, scripted = min(ready, key=lambda r: (r[0], r[1]))
        step_id, _ = parse_row(run.step_id)
        self.answers.pop(step_id)
        if scripted.timeout:
            self.register.mark_timed_out(run.id, utc_now(), actor=SCRIPT_ACTOR)
            self._round = this_round
            return True
        before = len(self.register.answers(self.case_key, run.step_id, run.visit))
        given = scripted.submission
        try:
            submit_answer(
                self.case_key, step_id, by=given.by, decision=given.decision, comment=given.comment,
                fields=dict(given.fields), library=self.library, register=self.register,
            )
        except AftercareError:
            current = self.register.step_run(self.case_key, run.step_id, run.visit)
            if current is None or not current.is_open:
                return True  # withdrawn or decided meanwhile: the answer came after it was needed, as a simulation has it
            raise
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self._stop.is_set():  # taken before the next one goes in: the order holds
            current = self.register.step_run(self.case_key, run.step_id, run.visit)
            if current is None or not current.is_open:
                break
            if len(self.register.answers(self.case_key, run.step_id, run.visit)) > before:
                return True
            time.sleep(0.2)
        # It decided its step: the next answer waits until the case's run has acted on it (a join may
        # withdraw what that answer is for) and settled to wait again.
        self._round = this_round
        return True

    def _ready(self) -> list[tuple[datetime, int, StepRunRecord, ScriptedAnswer]]:
        """The open rows waiting beside others that have a scripted answer next, with the moment it arrives."""
        assert self.case_key
        spec = self._spec()
        structure = structure_of(spec)
        ready: list[tuple[datetime, int, StepRunRecord, ScriptedAnswer]] = []
        for run in self.register.step_runs(self.case_key):
            step_id, unit = parse_row(run.step_id)
            if not run.is_open or not run.eligible or step_id not in spec.step_ids:
                continue
            step = spec.step(step_id)
            for_each = getattr(step, "for_each", None) is not None
            if (for_each and unit is None) or not (for_each or structure.in_region(step_id)):
                continue
            scripted = self.answers.peek(step_id)
            if scripted is None or (not scripted.timeout and scripted.submission.by not in run.eligible):
                continue
            ready.append((run.started_at + (scripted.after or timedelta(0)), run.id, run, scripted))
        return ready

    def _answer(self, run: StepRunRecord, key: str, told: set[str]) -> bool:
        """Answer the waiting step from the script; True once its pause is answered or its due made to pass."""
        assert self.case_key
        scripted = self.answers.peek(run.step_id)
        if scripted is None:
            if key not in told and self.echo:
                print(f"{self.case_key} waits at {run.step_id!r}: answer in the Prefect UI or with "
                      f"`aftercare answer {self.case_key} {run.step_id} --as PERSON ...`", file=sys.stderr)
            told.add(key)
            time.sleep(0.5)
            return False
        step: HumanStep = self._spec().step(run.step_id)  # type: ignore[assignment]
        arrives = run.started_at + scripted.after if scripted.after else utc_now()
        if scripted.timeout or is_late(step, run.due_at, arrives):
            self.answers.pop(run.step_id)
            if not step.on_timeout:
                if scripted.timeout:
                    raise StepError(f"step {step.id!r} has no on_timeout: a passed due never decides it; give an answer instead")
                return self._submit(run, scripted)  # late, but nothing times out: escalated, still taken
            self.register.mark_timed_out(run.id, utc_now(), actor=SCRIPT_ACTOR)
            return True
        self.answers.pop(run.step_id)
        return self._submit(run, scripted)

    def _submit(self, run: StepRunRecord, scripted: ScriptedAnswer) -> bool:
        assert self.case_key
        given = scripted.submission
        submit_answer(
            self.case_key, run.step_id, by=given.by, decision=given.decision, comment=given.comment,
            fields=dict(given.fields), library=self.library, register=self.register,
        )
        return True

    def _spec(self) -> ProcessSpec:
        if self.spec is None:
            assert self.case_key
            self.spec = case_spec(self.register, self.library, self.register.case(self.case_key))
        return self.spec

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



class OneLineErrors(logging.Filter):
    """Aftercare's own errors in a foreground run's log as their message, without Prefect's traceback.

    The command prints the error in one line (DESIGN.md "The command line") and the
    register keeps it with the failed case; ``AFTERCARE_DEBUG=1`` keeps the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AftercareError):
            record.exc_info, record.exc_text = None, None
        return True


ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def run_foreground(
    definition: LoadedDefinition, library: Library, inputs: Mapping[str, Any], answers: ScriptedAnswers | None = None
) -> dict[str, Any]:
    """Run one case of a definition as a Prefect flow run in this process and return its result."""
    process_flow = build_flow(definition, library)
    feeder = AnswerFeeder(answers or ScriptedAnswers(), library)
    CASE_LISTENERS.append(feeder.on_case)
    quiet = OneLineErrors()
    if not settings.current().debug:
        for name in ENGINE_LOGGERS:
            logging.getLogger(name).addFilter(quiet)
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
        for name in ENGINE_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)
    return result
