"""One log line when a server we depend on becomes unreachable and one when it is back, however
many requests fail in between: the API's database, the workers' broker."""

from __future__ import annotations

import logging
import threading
import time


class Outage:
    """The state of one dependency as this process last found it: reachable, or away since a
    moment, with the failures counted rather than logged."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what, self.log = what, log
        self.lock = threading.Lock()
        self.since: float | None = None  # monotonic time of the first failure
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        """A request failed because the server could not be reached; logged if it is the
        outage's first."""
        with self.lock:
            self.failures += 1
            if self.since is not None:
                return
            self.since = time.monotonic()
        # One line, not a stack trace: the cause is outside this process.
        reason = " ".join(str(exc).split())[:300]
        self.log.warning("%s unreachable: %s: %s", self.what, type(exc).__name__, reason)

    def succeeded(self) -> None:
        """A request got through: ends the outage, if there was one, with one line."""
        if self.since is None:  # the common case, without taking the lock
            return
        with self.lock:
            if self.since is None:
                return
            lasted, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        self.log.warning(
            "%s reachable again after %.1f s (%d requests failed)", self.what, lasted, failures
        )
