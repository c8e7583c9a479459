"""One document per output row, i.e. per (group, window).

::

    {"@timestamp": "2026-11-02T00:00:00+01:00",    # the row's time: window start (or end, see below)
     "window": "1d", "window_start": "2026-11-02T00:00:00+01:00", "window_end": "2026-11-03T00:00:00+01:00",
     "job": "interface-daily",
     "agent_host": "sw001", "ifName": "xe-0/0/1",   # the group's tags (empty values left out)
     "in_mean": 1234.5, "in_samples": 1440, …}      # <field>_<aggregate> and coverage, typed by the schema

Times are ISO 8601 rendered **in the job's time zone** with its offset: the same instant as UTC,
but a local day reads as local midnight. ``@timestamp`` is the row's time, i.e. the window start
unless the job sets ``output.timestamp = "end"``; ``window_start`` and ``window_end`` are always
both there.

The ``_id`` is a 128-bit BLAKE2b digest of (job, the group's tag pairs sorted by key, window
start in epoch ns): writing the same window again overwrites the same documents. It does not
depend on the values, the index pattern or the sink, so a re-run replaces what the first run wrote.

Elasticsearch and OpenSearch reserve names starting with ``_`` for metadata (``_id``, ``_index``,
``_source``, ``_routing`` …; a document holding ``_id`` is refused, and new metadata names come with
new versions). A tag or an output field with such a name is refused rather than renamed, with its
name and the reason: when the sink is built for the job if it is a ``group_by`` tag or an output
field, when the row is written if it is a series tag of a job without ``group_by``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

import orjson

from rollup.core.pipeline import OutputRow
from rollup.core.windows import format_instant, load_zone
from rollup.errors import ConfigError, SinkError
from rollup.sinks.base import OutputTarget

RESERVED = ("@timestamp", "window", "window_start", "window_end", "job")
"""Fields every document has; no tag or output field may use these names."""
METADATA_PREFIX = "_"
"""Names Elasticsearch and OpenSearch keep for their metadata fields; no tag or output field may use them."""
_METADATA_REASON = (
    "Elasticsearch and OpenSearch reserve names starting with '_' for metadata fields "
    "(_id, _index, _source, _routing …)"
)


@lru_cache(maxsize=4096)
def _instant(ns: int, timezone: str) -> str:
    return format_instant(ns, load_zone(timezone))


def _group(row: OutputRow) -> list[tuple[str, str]]:
    return sorted((key, value) for key, value in row.tags.items() if value)


def document_id(job: str, row: OutputRow) -> str:
    key = orjson.dumps([job, _group(row), row.window.start])
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class Documents:
    """Turns the rows of one job into documents."""

    def __init__(self, target: OutputTarget):
        self.target = target
        self._schema: Mapping[str, Literal["long", "double"]] = target.schema
        self._taken = frozenset(RESERVED) | frozenset(target.schema)
        clashes = sorted(set(target.tags or ()) & self._taken)
        if clashes:
            raise ConfigError(
                f"job {target.job}: group_by tag(s) {', '.join(clashes)} would overwrite a document field "
                f"of the same name ({', '.join(RESERVED)} or an output field)"
            )
        metadata = [tag for tag in target.tags or () if tag.startswith(METADATA_PREFIX)]
        if metadata:
            raise ConfigError(
                f"job {target.job}: group_by tag(s) {', '.join(sorted(metadata))} cannot be document fields: "
                f"{_METADATA_REASON}; leave them out of group_by, or write this job to InfluxDB only"
            )
        fields = [name for name in target.schema if name.startswith(METADATA_PREFIX)]
        if fields:
            raise ConfigError(
                f"job {target.job}: output field(s) {', '.join(sorted(fields))} cannot be document fields: "
                f"{_METADATA_REASON}; rename the field (as)"
            )

    def id(self, row: OutputRow) -> str:
        return document_id(self.target.job, row)

    def source(self, row: OutputRow) -> dict[str, object]:
        """The document; SinkError if the row cannot be one (a tag clashes, a value has the wrong type)."""
        zone = self.target.timezone
        doc: dict[str, object] = {
            "@timestamp": _instant(row.time, zone),
            "window": self.target.window,
            "window_start": _instant(row.window.start, zone),
            "window_end": _instant(row.window.end, zone),
            "job": self.target.job,
        }
        for key, value in _group(row):
            if key.startswith(METADATA_PREFIX):
                raise SinkError(
                    f"row {row.tags!r}: tag {key!r} cannot be a document field: {_METADATA_REASON}; "
                    "leave the tag out of the group (group_by) or write this job to InfluxDB only",
                    transient=False,
                )
            if key in self._taken:
                raise SinkError(
                    f"row {row.tags!r}: tag {key!r} has the name of a document field; "
                    "leave it out of the group (group_by) or rename the output field (as)",
                    transient=False,
                )
            doc[key] = value
        for name, number in row.values.items():
            kind = self._schema.get(name)
            if kind is None:
                raise SinkError(
                    f"row {row.tags!r} has field {name!r} that the job's output schema does not declare",
                    transient=False,
                )
            if kind == "long":
                if isinstance(number, float) and not number.is_integer():
                    raise SinkError(
                        f"row {row.tags!r}: field {name!r} is declared long but holds {number!r}",
                        transient=False,
                    )
                doc[name] = int(number)
            elif math.isfinite(number):  # JSON has no NaN or infinity: such a value is left out
                doc[name] = float(number)
        return doc
