"""Index names from a pattern such as ``rollup-{job}-{yyyy.MM}``.

Placeholders:

* ``{job}`` and ``{measurement}`` — the job's name and its ``output.measurement``, lowercased
  (index names cannot hold capitals);
* a date built from ``yyyy``, ``MM`` and ``dd`` with ``.``, ``-`` or ``_`` between them
  (``{yyyy}``, ``{yyyy.MM}``, ``{yyyy-MM-dd}``): the **window start in the job's time zone**, so a
  local day, week or month always lands in the index of its own local date (a daily window
  starting 2026-11-01 00:00 Europe/Zurich, which is 2026-10-31T23:00Z, goes to ``….2026.11``).

The index template of a job matches the pattern with every date replaced by ``*``. Its priority
grows with the number of fixed characters, so the template of ``rollup-interface-daily-*`` wins
over the one of ``rollup-interface-*`` for the indices both patterns match, and the two jobs can
live side by side (Elasticsearch refuses overlapping templates of equal priority).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from rollup.core.durations import NS_PER_SECOND
from rollup.core.windows import load_zone
from rollup.errors import ConfigError

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_DATE = re.compile(r"(?:yyyy|MM|dd)(?:[.\-_]?(?:yyyy|MM|dd))*")
_STRFTIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d"}
_NAMES = ("job", "measurement")
_FORBIDDEN = frozenset('\\/*?"<>| ,#:')
_MAX_BYTES = 255
BASE_PRIORITY = 100


def _strftime(date_format: str) -> str:
    return re.sub("yyyy|MM|dd", lambda match: _STRFTIME[match.group(0)], date_format)


def _parts(pattern: str) -> list[tuple[str, str]]:
    """``("text", …)``, ``("name", "job")`` and ``("date", "yyyy.MM")`` in order; ValueError if invalid."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(pattern):
        parts.append(("text", pattern[position : match.start()]))
        inner = match.group(1)
        if inner in _NAMES:
            parts.append(("name", inner))
        elif _DATE.fullmatch(inner):
            parts.append(("date", inner))
        else:
            raise ValueError(
                f"unknown placeholder {{{inner}}}: use {{job}}, {{measurement}} or a date made of "
                "yyyy, MM and dd such as {yyyy.MM}"
            )
        position = match.end()
    parts.append(("text", pattern[position:]))
    for kind, text in parts:
        if kind == "text" and ("{" in text or "}" in text):
            raise ValueError(f"unbalanced brace in {pattern!r}")
    return [(kind, text) for kind, text in parts if text]


def _check_name(name: str) -> None:
    """ValueError unless Elasticsearch and OpenSearch accept ``name`` as an index name."""
    if name != name.lower():
        raise ValueError(f"{name!r} has capital letters: index names are lowercase")
    forbidden = sorted(set(name) & _FORBIDDEN)
    if forbidden:
        shown = " ".join(repr(c) for c in forbidden)
        raise ValueError(f"{name!r} contains {shown}, not allowed in index names")
    if name.startswith(("-", "_", "+", ".")) or name in ("", ".", ".."):
        raise ValueError(f"{name!r}: an index name cannot be empty or start with '-', '_', '+' or '.'")
    if len(name.encode()) > _MAX_BYTES:
        raise ValueError(f"{name[:40]!r}…: an index name is at most {_MAX_BYTES} bytes long")


def check_pattern(pattern: str) -> str:
    """The pattern if a job could use it (sample names substituted); ValueError otherwise."""
    sample = []
    for kind, text in _parts(pattern):
        sample.append("x" if kind == "name" else "2026.11.01" if kind == "date" else text)
    _check_name("".join(sample))
    return pattern


@dataclass(frozen=True, slots=True)
class IndexNames:
    """The indices of one job under one pattern."""

    pattern: str
    job: str
    timezone: str
    resolved: tuple[tuple[str, str], ...]
    """Parts with the names filled in: ``("text", …)`` or ``("date", strftime format)``."""

    @classmethod
    def of(cls, pattern: str, job: str, measurement: str, timezone: str) -> IndexNames:
        """ConfigError, naming the job, if the pattern cannot give valid index names for it."""
        values = {"job": job.lower(), "measurement": measurement.lower()}
        try:
            resolved = tuple(
                ("text", values[text]) if kind == "name" else (kind, text) for kind, text in _parts(pattern)
            )
            names = cls(pattern, job, timezone, resolved)
            _check_name(names.name(0))
        except ValueError as exc:
            raise ConfigError(
                f"job {job}: index pattern {pattern!r} gives no valid index name: {exc}"
            ) from exc
        return names

    def name(self, start_ns: int) -> str:
        """The index of a window starting at ``start_ns``."""
        moment = dt.datetime.fromtimestamp(start_ns // NS_PER_SECOND, load_zone(self.timezone))
        return "".join(
            moment.strftime(_strftime(text)) if kind == "date" else text for kind, text in self.resolved
        )

    @property
    def wildcard(self) -> str:
        """The template's index pattern: every date replaced by ``*``."""
        return "".join("*" if kind == "date" else text for kind, text in self.resolved)

    @property
    def template_name(self) -> str:
        """The pattern with the date formats spelled out, e.g. ``rollup-bw-yyyy.mm``."""
        return "".join(text for _, text in self.resolved).lower()

    @property
    def priority(self) -> int:
        return BASE_PRIORITY + sum(len(text) for kind, text in self.resolved if kind == "text")
