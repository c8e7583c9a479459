"""InfluxQL text for a :class:`SourceQuery`, with every name and value escaped.

The rules follow InfluxDB 1.x's scanner (checked against a real ``influxd``):

- Identifiers are double-quoted and string literals single-quoted; inside both, ``\\`` and the quote
  are backslash-escaped and a line feed is written ``\\n``. Those are the only escapes the scanner
  knows.
- The scanner reads a carriage return as a line feed, so a CR cannot be written in a string or an
  identifier at all. A tag value holding one is matched with an anchored, quoted regex instead
  (``=~ /^a\\rb$/``); a name holding one is rejected.
- Regex literals are ``/``-delimited; ``/`` is escaped as ``\\/`` and every other backslash passes
  through to the regex engine (RE2), so CR and LF are written ``\\r`` and ``\\n``. A regex ending in
  a backslash would escape the closing ``/`` and swallow the rest of the statement, so an empty
  group ``(?:)`` is appended to it first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rollup.sources.base import SourceQuery, TagMatch

_STRING_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n"})
_IDENT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_REGEX_ESCAPES = str.maketrans({"/": "\\/", "\n": "\\n", "\r": "\\r"})
_REGEX_META = str.maketrans({c: "\\" + c for c in "\\.+*?()|[]{}^$"} | {"\n": "\\n", "\r": "\\r"})
# A raw line break right after an unescaped backslash: escaping the break would change its meaning.
_ESCAPED_BREAK = re.compile(r"(?<!\\)(?:\\\\)*\\[\n\r]")


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted InfluxQL identifier."""
    if "\r" in name:
        raise ValueError(f"InfluxQL cannot express a name containing a carriage return: {name!r}")
    return '"' + name.translate(_IDENT_ESCAPES) + '"'


def quote_string(value: str) -> str:
    """``value`` as a single-quoted InfluxQL string literal (not possible if it holds a CR)."""
    if "\r" in value:
        raise ValueError(f"InfluxQL string literals cannot contain a carriage return: {value!r}")
    return "'" + value.translate(_STRING_ESCAPES) + "'"


def quote_regex(pattern: str) -> str:
    """``pattern`` (RE2 syntax) as a ``/``-delimited InfluxQL regex literal."""
    if _ESCAPED_BREAK.search(pattern):
        raise ValueError(f"regex escapes a raw line break, which RE2 does not accept: {pattern!r}")
    if pattern.endswith("\\"):
        pattern += "(?:)"
    return "/" + pattern.translate(_REGEX_ESCAPES) + "/"


def _equals(tag: str, value: str, negate: bool) -> str:
    if "\r" in value:
        exact = "^" + value.translate(_REGEX_META) + "$"
        return f"{tag} {'!~' if negate else '=~'} {quote_regex(exact)}"
    return f"{tag} {'!=' if negate else '='} {quote_string(value)}"


def tag_condition(name: str, match: TagMatch) -> str:
    """One parenthesised condition: ``("t" = 'a' OR "t" =~ /re/)``, or its negation joined by AND."""
    if not match.values and match.regex is None:
        raise ValueError(f"the condition on tag {name!r} names neither values nor a regex")
    tag = quote_ident(name)
    terms = [_equals(tag, value, match.negate) for value in match.values]
    if match.regex is not None:
        terms.append(f"{tag} {'!~' if match.negate else '=~'} {quote_regex(match.regex)}")
    return "(" + (" AND " if match.negate else " OR ").join(terms) + ")"


def _source(q: SourceQuery) -> str:
    return measurement_path(q.database, q.retention_policy, q.measurement)


def measurement_path(database: str, retention_policy: str | None, measurement: str) -> str:
    """``"db"."rp"."m"`` (``"db".."m"``: the default retention policy)."""
    rp = quote_ident(retention_policy) if retention_policy is not None else ""
    return f"{quote_ident(database)}.{rp}.{quote_ident(measurement)}"


def _tag_conditions(q: SourceQuery, extra: Sequence[tuple[str, TagMatch]] = ()) -> list[str]:
    conditions = [tag_condition(name, q.where[name]) for name in sorted(q.where)]
    return conditions + [tag_condition(name, match) for name, match in extra]


def build_query(q: SourceQuery, extra: Sequence[tuple[str, TagMatch]] = ()) -> str:
    """``SELECT`` the fields of every series of the measurement in ``[start, end)``, grouped by series
    (``extra``: more tag conditions, ANDed with the query's own)."""
    if not q.fields:
        raise ValueError("a source query needs at least one field")
    if q.start >= q.end:
        raise ValueError(f"empty time range: start {q.start} is not before end {q.end}")
    fields = ",".join(quote_ident(f) for f in dict.fromkeys(q.fields))
    conditions = [f"time >= {int(q.start)}", f"time < {int(q.end)}", *_tag_conditions(q, extra)]
    return f"SELECT {fields} FROM {_source(q)} WHERE {' AND '.join(conditions)} GROUP BY *"


def tag_values_query(q: SourceQuery) -> str:
    """``SHOW TAG VALUES`` of every tag of the series the query selects (whatever their time)."""
    conditions = _tag_conditions(q)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SHOW TAG VALUES FROM {_source(q)} WITH KEY =~ /.*/{where}"


def first_point_query(q: SourceQuery) -> str:
    """The oldest point the query selects, whatever its series: the fields, merged in time order."""
    fields = ",".join(quote_ident(f) for f in dict.fromkeys(q.fields))
    conditions = [f"time >= {int(q.start)}", f"time < {int(q.end)}", *_tag_conditions(q)]
    return f"SELECT {fields} FROM {_source(q)} WHERE {' AND '.join(conditions)} LIMIT 1"
