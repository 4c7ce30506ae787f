"""What a trial's reports and its trainer's end mean: shared by the runner (Celery, the local
pool) and the agent (`hpsearch agent`, on the user's machine), so that a trial ends the same
way wherever it runs. Imports no database session and no server."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from types import FrameType
from typing import NamedTuple

from hpsearch.db.states import TrialState
from hpsearch.trainer import Diverged

log = logging.getLogger(__name__)

# What of an exception a trial keeps: its message in the reason, short enough for a table cell,
# and its traceback's last lines on the trial, each line cut too, so that a trainer raising a
# megabyte of text stores under 4 KB.
MESSAGE_CHARS = 500
TRACEBACK_LINES = 15
MESSAGE_LINES = 3  # of those 15, the exception's own, so that a long message hides no frame
LINE_CHARS = 240


class Outcome(NamedTuple):
    """How a trial ended; `traceback` only when an exception ended it."""

    state: TrialState
    reason: str | None
    values: dict[str, float] | None
    traceback: str | None = None


class Interrupted(BaseException):
    """Raised into a trainer still training when its study has ended. A BaseException, as
    KeyboardInterrupt is: a trainer's `except Exception` must not swallow it."""


# The signal that interrupts a trainer. Not SIGALRM, which training code may use for timeouts
# of its own, nor SIGUSR1, Celery's soft time limit.
_INTERRUPT = signal.SIGUSR2


class Stopper:
    """Stops a trainer that does not stop by itself once its study ended (timed out, cancelled
    or deleted): one that never reports, or never returns after `report` said stop. Shared by
    the worker's runner and the agent, whose heartbeat threads learn that the study ended.

    `interrupt` raises `Interrupted` in the trial's thread through a signal, but only while
    trainer code runs there: never inside hpsearch's own `report`, reads or writes (`shielded`),
    where `report` answers True instead. Every later beat interrupts again.
    """

    def __init__(self) -> None:
        # Python runs signal handlers in the main thread only: a trial run in another thread
        # (Celery's threads pool, an agent in a thread) can be stopped only by its `report`.
        self.interruptible = threading.current_thread() is threading.main_thread()
        self.in_trainer = False  # trainer code runs now, not hpsearch's code it called
        # Held by the heartbeat thread while it acts, and by the trial's thread as the trainer
        # returns: no process is killed, nor signalled, for a trainer that already returned.
        self.lock = threading.Lock()
        self.training = False
        self.interrupted_at: float | None = None

    @contextmanager
    def running_trainer(self) -> Iterator[None]:
        """Trainer code runs inside: it may be interrupted."""
        global _RUNNING
        if self.interruptible:
            _install_interrupt_handler()
            _RUNNING, self.training, self.in_trainer = self, True, True
        try:
            yield
        finally:
            self.in_trainer = False  # first: a signal from here on is ignored
            with self.lock:
                _RUNNING, self.training = None, False

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """hpsearch's own code, called by the trainer, runs inside: it is never interrupted."""
        was, self.in_trainer = self.in_trainer, False
        try:
            yield
        finally:
            self.in_trainer = was

    def interrupt(
        self, overdue: Callable[[], None] | None = None, overdue_after_s: float = math.inf
    ) -> None:
        """Interrupt the trainer if its code runs now (called with each heartbeat once the
        study no longer runs); `overdue` too once the first interruption is `overdue_after_s`
        old and the trainer still trains."""
        with self.lock:
            if not self.training:
                return
            now = time.monotonic()
            self.interrupted_at = self.interrupted_at or now
            if overdue is not None and now - self.interrupted_at >= overdue_after_s:
                overdue()
            if self.in_trainer:
                signal.pthread_kill(threading.main_thread().ident or 0, _INTERRUPT)


# The stopper of the trial whose trainer runs in this process's main thread now, if any.
_RUNNING: Stopper | None = None


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    # A signal that arrives as the trainer returns finds nothing to interrupt: it is ignored.
    if _RUNNING is not None and _RUNNING.in_trainer:
        raise Interrupted


@cache
def _install_interrupt_handler() -> None:
    # Once per process and never removed: a signal sent just as a trainer returns must not
    # meet the default action, which ends the process.
    signal.signal(_INTERRUPT, _on_interrupt)


class Steps:
    """What a trial's reports said so far: the base of every `hpsearch.trainer.Context`.

    `check` turns a report into floats, or marks the trial diverged on a NaN or infinite
    metric; `stopped` records that a report answered stop; `outcome` judges the end."""

    # What runs where nothing is kept (an agent, `hpsearch.optimize`): no state to resume,
    # and checkpoints offered are not taken. The runner's context keeps them.
    resume: bytes | None = None

    def __init__(self) -> None:
        self.diverged: str | None = None
        self.last: dict[str, float] = {}
        self.stopped_at: int | None = None
        self.step_name = "step"

    def check(self, step: int, metrics: Mapping[str, float]) -> dict[str, float] | None:
        """The metrics as floats; None when one is not finite (the trial has diverged)."""
        values = {name: float(value) for name, value in metrics.items()}
        bad = next((name for name, value in values.items() if not math.isfinite(value)), None)
        if bad is not None:
            self.diverged = f"diverged at step {step} ({bad} {values[bad]})"
            return None
        self.last = values
        return values

    def checkpoint(self, step: int, save: Callable[[], bytes]) -> None:
        """Offered state is not kept here (see `resume`)."""

    def keep_weights(self, save: Callable[[], bytes]) -> None:
        """Offered weights are not kept here (see `resume`)."""

    def stopped(self, step: int, stop: bool) -> bool:
        """`stop`, remembered: a trainer that stops after a stop answer was pruned."""
        if stop:
            self.stopped_at = step
        return stop

    def outcome(self, metrics: dict[str, float]) -> Outcome:
        """The trial's end, from what the trainer returned and what it reported."""
        if self.diverged is not None:
            return Outcome(TrialState.FAILED, self.diverged, self.last or None)
        bad = next((name for name, value in metrics.items() if not _finite(value)), None)
        if bad is not None:
            finite = {name: value for name, value in metrics.items() if _finite(value)}
            reason = f"diverged: final {bad} is {metrics[bad]}"
            return Outcome(TrialState.FAILED, reason, finite or None)
        if self.stopped_at is not None:
            reason = f"pruned at {self.step_name} {self.stopped_at}"
            return Outcome(TrialState.PRUNED, reason, metrics or None)
        return Outcome(TrialState.COMPLETE, None, metrics)


def train_outcome(train: Callable[[], Mapping[str, float]], steps: Steps) -> Outcome:
    """Run `train` and make every way it ends, its errors included, a terminal state: user
    code never takes its worker (or agent) down with it."""
    try:
        metrics = dict(train())
    except Interrupted:  # its study ended: the runner gives the trial the study's reason
        return Outcome(TrialState.FAILED, None, steps.last or None)
    except Diverged as exc:
        return Outcome(TrialState.FAILED, _diverged(exc.reason), exc.metrics or None)
    except Exception as exc:  # a bug or bad data must end this trial, not the process
        # Imported here: the engine loads NumPy and its kernels, which an agent may not need.
        from hpsearch.worker.engine.config import ConfigError

        if isinstance(exc, ConfigError):
            return Outcome(TrialState.FAILED, f"error: invalid config: {exc}", None)
        log.exception("trial failed with an unexpected error")
        return Outcome(TrialState.FAILED, _error_reason(exc), None, _traceback_tail(exc))
    return steps.outcome(metrics)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _diverged(reason: str) -> str:
    return reason if reason.startswith("diverged") else f"diverged: {reason}"


def _error_reason(exc: Exception) -> str:
    """`error: Type: message`, the message cut to its first `MESSAGE_CHARS` characters."""
    return f"error: {type(exc).__name__}: {cut(str(exc), MESSAGE_CHARS)}"


def _traceback_tail(exc: Exception) -> str:
    """The traceback's last frames as Python prints them (with this machine's full paths),
    then the first lines of the exception itself: `TRACEBACK_LINES` lines of `LINE_CHARS` at
    most."""
    message = "".join(traceback.format_exception_only(exc)).splitlines()[:MESSAGE_LINES]
    frames = "".join(traceback.format_tb(exc.__traceback__)).splitlines()
    lines = ["Traceback (most recent call last):", *frames][-(TRACEBACK_LINES - len(message)) :]
    return "\n".join(cut(line, LINE_CHARS) for line in lines + message)


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start with a mark of the cut."""
    return text if len(text) <= limit else text[: limit - 2] + " …"
