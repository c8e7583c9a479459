"""The one retry policy of every adapter: which failures are tried again, how long it waits, what
it logs, and what is raised when it gives up."""

from __future__ import annotations

import logging
import re

import pytest

from rollup.retry import MAX_WAIT_SECONDS, Retry, RetryableError, retry_after, retryable_status
from rollup.secrets import remember


class Flaky:
    """Fails with the given errors in turn, then returns "done"."""

    def __init__(self, *failures: BaseException):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waited.append)
    return waited


def test_retryable_failures_are_tried_again_until_the_call_succeeds(sleeps: list[float]) -> None:
    action = Flaky(RetryableError("busy"), RetryableError("busy"))
    assert Retry(attempts=3, backoff=0.5).call(action, "thing") == "done"
    assert action.calls == 3
    assert len(sleeps) == 2


def test_the_last_failure_is_raised_when_the_attempts_run_out(sleeps: list[float]) -> None:
    action = Flaky(*(RetryableError(f"busy {i}") for i in range(5)))
    with pytest.raises(RetryableError, match="busy 2"):
        Retry(attempts=3, backoff=0).call(action, "thing")
    assert action.calls == 3


def test_a_failure_not_worth_another_attempt_is_raised_at_once(sleeps: list[float]) -> None:
    action = Flaky(ValueError("a mapping conflict"))
    with pytest.raises(ValueError, match="a mapping conflict"):
        Retry(attempts=5, backoff=0).call(action, "thing")
    assert (action.calls, sleeps) == (1, [])


def test_the_caller_says_what_is_retryable(sleeps: list[float]) -> None:
    action = Flaky(ConnectionError("refused"))
    retry = Retry(attempts=2, backoff=0)
    assert retry.call(action, "thing", retryable=lambda e: isinstance(e, ConnectionError)) == "done"


def test_waits_double_from_the_backoff_with_jitter_and_a_cap(sleeps: list[float]) -> None:
    with pytest.raises(RetryableError):
        Retry(attempts=9, backoff=0.5).call(Flaky(*[RetryableError("busy")] * 9), "thing")
    assert len(sleeps) == 8
    for attempt, waited in enumerate(sleeps[:5]):
        assert 0.5 * 2**attempt <= waited <= 0.5 * 2**attempt + 0.5
    assert all(MAX_WAIT_SECONDS <= waited <= MAX_WAIT_SECONDS + 0.5 for waited in sleeps[7:])
    assert len(set(sleeps)) == len(sleeps), "jitter"


def test_retry_after_is_honoured_within_the_cap(sleeps: list[float]) -> None:
    asked = [RetryableError("busy", retry_after=3.0), RetryableError("busy", retry_after=600.0)]
    assert Retry(attempts=3, backoff=0.01).call(Flaky(*asked), "thing") == "done"
    assert 3.0 <= sleeps[0] < 3.1
    assert MAX_WAIT_SECONDS <= sleeps[1] < MAX_WAIT_SECONDS + 0.1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("Wed, 21 Oct 2026 07:28:00 GMT", None)],
)
def test_retry_after_headers_in_seconds_are_read_and_dates_left_to_the_backoff(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after(header) == seconds


def test_each_retry_is_logged_with_the_attempt_the_reason_and_the_wait_secrets_masked(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    remember("Pa55-in-a-reason")
    logger = logging.getLogger("rollup.test.adapter")
    action = Flaky(RetryableError("HTTP 503: echo Pa55-in-a-reason"), ConnectionError("refused"))
    with caplog.at_level(logging.WARNING):
        Retry(attempts=3, backoff=0.05).call(
            action,
            "InfluxDB sink 'out'",
            retryable=lambda e: isinstance(e, RetryableError | ConnectionError),
            describe=lambda e: f"{type(e).__name__}: {e}",
            logger=logger,
        )
    lines = [record.getMessage() for record in caplog.records]
    assert {record.name for record in caplog.records} == {"rollup.test.adapter"}
    first = r"InfluxDB sink 'out': attempt 1 failed \(RetryableError: HTTP 503: echo \*\*\*\)"
    assert re.fullmatch(first + r"; retrying in 0\.\d\ds", lines[0])
    assert re.fullmatch(
        r"InfluxDB sink 'out': attempt 2 failed \(ConnectionError: refused\); retrying in 0\.\d\ds", lines[1]
    )


def test_attempts_are_counted_in_words() -> None:
    assert (Retry(1, 0).tried, Retry(3, 0).tried) == ("1 attempt", "3 attempts")
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        Retry(0, 0)


def test_overloaded_and_unavailable_statuses_are_retryable_the_others_need_a_fix() -> None:
    assert [
        s for s in (200, 301, 400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504) if retryable_status(s)
    ] == [
        429,
        500,
        502,
        503,
        504,
    ]
