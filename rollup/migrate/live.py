"""Talking to a live InfluxDB 1.x: its continuous queries (``--from``) and a SELECT's rows (``--check``).

One plain ``/query`` request each (JSON, ``epoch=ns``), over the connection's client, so the
credentials travel as they do for sources (headers, never the URL); every failure is a
:class:`SourceError` naming the server and what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.migrate.importer import Input

_SHOWN = 300


@dataclass(frozen=True, slots=True)
class Row:
    time: int
    tags: dict[str, str]
    values: dict[str, float | int | None]


def continuous_queries(connection: InfluxConnection, database: str | None = None) -> list[Input]:
    """``SHOW CONTINUOUS QUERIES`` as inputs labelled ``URL database DB``, of one database or all."""
    inputs = []
    for series in _query(connection, "SHOW CONTINUOUS QUERIES", None):
        name = str(series.get("name", ""))
        if database is not None and name != database:
            continue
        for cq_name, statement in series.get("values") or []:
            inputs.append(Input(f"{connection.url} database {name}", str(statement), str(cq_name)))
    return inputs


def select_rows(connection: InfluxConnection, database: str, statement: str) -> list[Row]:
    """Every row of a SELECT's result, with its series' tags (empty tag values left out)."""
    rows = []
    for series in _query(connection, statement, database):
        tags = {k: str(v) for k, v in (series.get("tags") or {}).items() if v not in ("", None)}
        columns = list(series.get("columns") or [])
        for values in series.get("values") or []:
            record = dict(zip(columns, values, strict=True))
            time = record.pop("time")
            rows.append(Row(int(time), tags, record))
    return rows


def _query(connection: InfluxConnection, statement: str, database: str | None) -> list[dict[str, Any]]:
    params = {"q": statement, "epoch": "ns"}
    if database is not None:
        params["db"] = database
    try:
        with connection.client("InfluxDB") as client:
            response = client.post("/query", data=params)
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot reach InfluxDB at {connection.url}: {exc}") from None
    if response.status_code != 200:
        raise SourceError(
            f"InfluxDB at {connection.url} answered HTTP {response.status_code}: {response.text[:_SHOWN]}"
        )
    try:
        body = response.json()
        result = body["results"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise SourceError(
            f"InfluxDB at {connection.url} sent an unexpected answer: {response.text[:_SHOWN]}"
        ) from None
    if "error" in result:
        raise SourceError(f"InfluxDB at {connection.url}: {result['error']} (in: {statement[:_SHOWN]})")
    return list(result.get("series") or [])
