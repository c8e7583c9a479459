from __future__ import annotations

import pytest

from rollup.sources.base import SourceQuery, TagMatch
from rollup.sources.influxql import build_query, quote_ident, quote_regex, quote_string, tag_condition

START = 1_700_000_000_000_000_000
END = 1_700_086_400_000_000_000


def query(**overrides: object) -> SourceQuery:
    values: dict[str, object] = {
        "database": "telegraf",
        "measurement": "snmp",
        "fields": ("ifHCInOctets",),
        "start": START,
        "end": END,
    }
    values.update(overrides)
    return SourceQuery(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("plain", '"plain"', id="plain-name-is-quoted"),
        pytest.param('a"b', '"a\\"b"', id="double-quote-is-backslash-escaped"),
        pytest.param("a\\b", '"a\\\\b"', id="backslash-is-doubled"),
        pytest.param("a\nb", '"a\\nb"', id="line-feed-is-written-backslash-n"),
        pytest.param("a'b", '"a\'b"', id="single-quote-stays"),
        pytest.param("a.b c,d=e", '"a.b c,d=e"', id="dots-spaces-commas-equals-stay"),
        pytest.param("wärme°", '"wärme°"', id="unicode-stays"),
    ],
)
def test_quote_ident(name: str, expected: str) -> None:
    assert quote_ident(name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("eth0", "'eth0'", id="plain-value-is-quoted"),
        pytest.param("it's", "'it\\'s'", id="single-quote-is-backslash-escaped"),
        pytest.param("C:\\temp", "'C:\\\\temp'", id="backslash-is-doubled"),
        pytest.param("a\nb", "'a\\nb'", id="line-feed-is-written-backslash-n"),
        pytest.param('say "hi"', "'say \"hi\"'", id="double-quote-stays"),
        pytest.param("", "''", id="empty-value"),
        pytest.param("x' OR 1=1 --", "'x\\' OR 1=1 --'", id="injection-stays-inside-the-literal"),
        pytest.param("\\'", "'\\\\\\''", id="backslash-before-quote-escapes-both"),
    ],
)
def test_quote_string(value: str, expected: str) -> None:
    assert quote_string(value) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("^eth[0-9]+$", "/^eth[0-9]+$/", id="plain-regex"),
        pytest.param("a/b", "/a\\/b/", id="slash-is-escaped"),
        pytest.param("a\\/b", "/a\\\\/b/", id="already-escaped-slash-keeps-its-meaning"),
        pytest.param("\\d+", "/\\d+/", id="other-backslashes-pass-through"),
        pytest.param("a\\\\", "/a\\\\(?:)/", id="trailing-backslash-gets-an-empty-group"),
        pytest.param("a\\", "/a\\(?:)/", id="odd-trailing-backslash-cannot-escape-the-delimiter"),
        pytest.param("a\nb", "/a\\nb/", id="line-feed-is-written-backslash-n"),
        pytest.param("a\rb", "/a\\rb/", id="carriage-return-is-written-backslash-r"),
    ],
)
def test_quote_regex(pattern: str, expected: str) -> None:
    assert quote_regex(pattern) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("a\\\nb", id="escaped-line-feed"),
        pytest.param("a\\\rb", id="escaped-carriage-return"),
        pytest.param("a\\\\\\\nb", id="escaped-line-feed-after-escaped-backslash"),
    ],
)
def test_quote_regex_rejects_an_escaped_raw_line_break(pattern: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        quote_regex(pattern)


def test_quote_regex_accepts_a_line_break_after_an_escaped_backslash() -> None:
    assert quote_regex("a\\\\\nb") == "/a\\\\\\nb/"


@pytest.mark.parametrize("quote", [quote_ident, quote_string])
def test_carriage_return_cannot_be_quoted(quote: object) -> None:
    with pytest.raises(ValueError, match="carriage return"):
        quote("a\rb")  # type: ignore[operator]


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        pytest.param(TagMatch(values=("a",)), "(\"t\" = 'a')", id="one-value"),
        pytest.param(TagMatch(values=("a", "b")), "(\"t\" = 'a' OR \"t\" = 'b')", id="values-are-ORed"),
        pytest.param(
            TagMatch(values=("a", "b"), negate=True),
            "(\"t\" != 'a' AND \"t\" != 'b')",
            id="negated-values-are-ANDed",
        ),
        pytest.param(TagMatch(regex="^a"), '("t" =~ /^a/)', id="regex"),
        pytest.param(TagMatch(regex="^a", negate=True), '("t" !~ /^a/)', id="negated-regex"),
        pytest.param(
            TagMatch(values=("a",), regex="^b"), '("t" = \'a\' OR "t" =~ /^b/)', id="values-or-regex"
        ),
        pytest.param(
            TagMatch(values=("a",), regex="^b", negate=True),
            '("t" != \'a\' AND "t" !~ /^b/)',
            id="negated-values-and-regex",
        ),
        pytest.param(
            TagMatch(values=("a\rb.c",)), '("t" =~ /^a\\rb\\.c$/)', id="value-with-cr-becomes-anchored-regex"
        ),
        pytest.param(
            TagMatch(values=("a\r/(b)",), negate=True),
            '("t" !~ /^a\\r\\/\\(b\\)$/)',
            id="negated-value-with-cr-quotes-regex-metacharacters",
        ),
    ],
)
def test_tag_condition(match: TagMatch, expected: str) -> None:
    assert tag_condition("t", match) == expected


def test_tag_condition_needs_values_or_regex() -> None:
    with pytest.raises(ValueError, match="neither values nor a regex"):
        tag_condition("t", TagMatch())


def test_build_query_selects_fields_in_range_grouped_by_series() -> None:
    assert build_query(query(fields=("in", "out"))) == (
        f'SELECT "in","out" FROM "telegraf".."snmp" WHERE time >= {START} AND time < {END} GROUP BY *'
    )


def test_build_query_names_the_retention_policy() -> None:
    assert 'FROM "telegraf"."autogen"."snmp" ' in build_query(query(retention_policy="autogen"))


def test_build_query_escapes_every_name() -> None:
    text = build_query(query(database='d"b', measurement="m\\x", fields=('f"1',), retention_policy="r'p"))
    assert text.startswith('SELECT "f\\"1" FROM "d\\"b"."r\'p"."m\\\\x" WHERE')


def test_build_query_drops_repeated_fields() -> None:
    assert build_query(query(fields=("a", "b", "a"))).startswith('SELECT "a","b" FROM')


def test_build_query_ands_tag_conditions_in_tag_order() -> None:
    where = {"z": TagMatch(values=("1",)), "a": TagMatch(regex="x", negate=True)}
    assert build_query(query(where=where)).endswith(
        f'WHERE time >= {START} AND time < {END} AND ("a" !~ /x/) AND ("z" = \'1\') GROUP BY *'
    )


def test_build_query_keeps_an_injection_inside_its_literal() -> None:
    text = build_query(query(where={"host": TagMatch(values=("x') OR (1=1", 'a" OR "b'))}))
    assert '("host" = \'x\\\') OR (1=1\' OR "host" = \'a" OR "b\') GROUP BY *' in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"fields": ()}, "at least one field", id="no-fields"),
        pytest.param({"start": END, "end": START}, "empty time range", id="start-after-end"),
        pytest.param({"end": START}, "empty time range", id="start-equals-end"),
    ],
)
def test_build_query_rejects(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_query(query(**overrides))
