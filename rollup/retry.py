"""Trying a call again when it failed for now: the one retry policy of every adapter.

An adapter runs a call through :meth:`Retry.call` with a predicate saying which failures are worth
another attempt (connection refused or reset, timeout, HTTP 5xx or 429 …: the transient ones of
:mod:`rollup.errors`). Between attempts it waits ``backoff`` seconds, then twice that, and so on
(exponential backoff, at most :data:`MAX_WAIT_SECONDS`), plus up to ``backoff`` seconds of random
jitter so that replicas retrying the same server spread out; a failure that carries the server's
``Retry-After`` (:class:`RetryableError`) waits at least that long, within the same cap. Each retry is
logged as ``<what>: attempt N failed (<reason>); retrying in X.XXs``, secrets masked. When the
attempts run out, or a failure is not worth another attempt, the last failure is raised as it is:
the adapter turns it into its own error, naming the attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from rollup.secrets import redact

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 30.0
"""No wait between two attempts is longer (plus jitter), whatever the backoff or ``Retry-After`` says."""


class RetryableError(Exception):
    """A failure worth another attempt (e.g. HTTP 503), with the wait the server asked for, if any."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status is worth another attempt: the server is overloaded (429) or
    unavailable (5xx). Any other error status needs a fix."""
    return status >= 500 or status == 429


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; None if absent or an HTTP date
    (the backoff applies then)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _is_retryable_error(failure: BaseException) -> bool:
    return isinstance(failure, RetryableError)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often to try, and how long to wait in between."""

    attempts: int
    """Attempts in all, the first one included (at least 1)."""
    backoff: float
    """Seconds before the first retry; doubles each time, plus up to as much jitter."""
    max_wait: float = MAX_WAIT_SECONDS

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.backoff < 0:
            raise ValueError(f"backoff must not be negative, got {self.backoff}")

    @property
    def tried(self) -> str:
        """``1 attempt``, ``3 attempts``."""
        return f"{self.attempts} attempt{'s' if self.attempts > 1 else ''}"

    def call(
        self,
        action: Callable[[], T],
        what: str,
        *,
        retryable: Callable[[BaseException], bool] = _is_retryable_error,
        describe: Callable[[BaseException], str] = str,
        logger: logging.Logger = log,
    ) -> T:
        """``action()``, tried again after each retryable failure until it succeeds or the attempts
        run out; then the last failure is raised. ``what`` names the call in the log, ``describe``
        gives a failure's reason there."""
        backoff = wait_exponential(multiplier=self.backoff, max=self.max_wait) + wait_random(0, self.backoff)

        def wait(state: RetryCallState) -> float:
            delay: float = backoff(state)
            failure = state.outcome.exception() if state.outcome is not None else None
            asked = getattr(failure, "retry_after", None)
            if isinstance(asked, float):
                delay = max(delay, min(asked, self.max_wait))
            return delay

        def log_retry(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome is not None else None
            reason = describe(failure) if failure is not None else "?"
            pause = state.next_action.sleep if state.next_action is not None else 0.0
            logger.warning(
                redact(f"{what}: attempt {state.attempt_number} failed ({reason}); retrying in {pause:.2f}s")
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            retry=retry_if_exception(retryable),
            before_sleep=log_retry,
            reraise=True,
        )
        return retrying(action)
