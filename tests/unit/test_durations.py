"""Duration strings: what parses, to what, and what is refused with a message naming the problem."""

from __future__ import annotations

import pytest

from rollup.core.durations import NS_PER_SECOND, parse_duration, parse_fixed_duration

S = NS_PER_SECOND

PARSED = [
    # (rule, text, months, nanos)
    ("seconds", "90s", 0, 90 * S),
    ("minutes", "15m", 0, 15 * 60 * S),
    ("hours", "3h", 0, 3 * 3600 * S),
    ("day_is_24h_as_plain_duration", "1d", 0, 86400 * S),
    ("week_is_7x24h_as_plain_duration", "1w", 0, 7 * 86400 * S),
    ("combination_adds_up", "1h30m", 0, 5400 * S),
    ("milliseconds_not_minutes", "250ms", 0, 250_000_000),
    ("microseconds_ascii", "5us", 0, 5_000),
    ("microseconds_micro_sign", "5µs", 0, 5_000),
    ("nanoseconds", "7ns", 0, 7),
    ("month_is_calendar", "1mo", 1, 0),
    ("quarter_is_three_months", "3mo", 3, 0),
    ("bare_zero_is_zero_seconds", "0", 0, 0),
    ("surrounding_and_inner_spaces_ignored", " 1h 30m ", 0, 5400 * S),
]


@pytest.mark.parametrize(("text", "months", "nanos"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_parse_duration(text: str, months: int, nanos: int) -> None:
    duration = parse_duration(text)
    assert (duration.months, duration.nanos) == (months, nanos)
    assert duration.is_calendar == (months != 0)


REFUSED = [
    # (rule, text, words the message must contain)
    ("empty", "", "invalid duration"),
    ("no_unit", "90", "invalid duration"),
    ("unknown_unit", "3x", "invalid duration"),
    ("fraction", "1.5h", "invalid duration"),
    ("negative", "-5m", "invalid duration"),
    ("upper_case_unit", "1H", "invalid duration"),
    ("trailing_garbage", "1h30", "invalid duration"),
    ("months_mixed_with_fixed_units", "1mo1d", "months cannot be combined"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_error_message_lists_accepted_forms() -> None:
    with pytest.raises(ValueError, match=r"90s, 15m, 3h, 1d, 1w"):
        parse_duration("soon")


def test_fixed_duration_returns_nanoseconds() -> None:
    assert parse_fixed_duration("2m") == 120 * S


def test_fixed_duration_refuses_months() -> None:
    with pytest.raises(ValueError, match="calendar month has no fixed length"):
        parse_fixed_duration("1mo")


def test_seconds_of_fixed_duration() -> None:
    assert parse_duration("1h30m").seconds == 5400.0
    assert parse_duration("250ms").seconds == 0.25


def test_calendar_duration_has_no_seconds() -> None:
    with pytest.raises(ValueError, match="calendar duration"):
        _ = parse_duration("1mo").seconds


def test_text_is_the_cleaned_input() -> None:
    assert str(parse_duration(" 1h 30m ")) == "1h30m"
    assert str(parse_duration("0")) == "0s"
