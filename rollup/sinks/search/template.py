"""The composable index template a sink installs for its job, and the mapping inside it.

Mappings:

* ``@timestamp``, ``window_start``, ``window_end``: ``date``; ``window``, ``job``: ``keyword``;
* every output field with its schema type (``long`` or ``double``), so a mean that happens to be
  whole in the first document never makes the field an integer;
* tags as ``keyword``. With ``group_by`` the tags are known: they are mapped explicitly and the
  mapping is ``dynamic: strict``, so a document with any other field is rejected. Without
  ``group_by`` every tag of the source series is a group tag and the set is not known in advance:
  the mapping is then ``dynamic: true`` with a dynamic template turning every new string into a
  ``keyword`` and date and numeric detection off (a tag value ``2026-11-01`` or ``42`` stays a
  keyword). Documents hold only strings besides the mapped fields, so nothing else is ever added.

The template carries ``_meta``: ``managed_by = "rollup"``, the owning ``job`` and a
``fingerprint`` of its content, so installing is idempotent (no write when the fingerprint
matches) and a template of another job or of another tool is never overwritten.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from rollup.sinks.base import OutputTarget
from rollup.sinks.search.index_names import IndexNames

MANAGED_BY = "rollup"
_DATE = {"type": "date"}
_KEYWORD = {"type": "keyword"}


def mapping(target: OutputTarget) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "@timestamp": _DATE,
        "window_start": _DATE,
        "window_end": _DATE,
        "window": _KEYWORD,
        "job": _KEYWORD,
    }
    properties.update({name: {"type": kind} for name, kind in sorted(target.schema.items())})
    if target.tags is not None:
        properties.update(dict.fromkeys(target.tags, _KEYWORD))
        return {"dynamic": "strict", "properties": properties}
    return {
        "dynamic": "true",
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [
            {"tags_as_keywords": {"match_mapping_type": "string", "mapping": _KEYWORD}},
        ],
        "properties": properties,
    }


def template_body(
    names: IndexNames, target: OutputTarget, shards: int | None = None, replicas: int | None = None
) -> dict[str, Any]:
    settings: dict[str, int] = {}
    if shards is not None:
        settings["number_of_shards"] = shards
    if replicas is not None:
        settings["number_of_replicas"] = replicas
    template: dict[str, Any] = {"mappings": mapping(target)}
    if settings:
        template["settings"] = settings
    body: dict[str, Any] = {
        "index_patterns": [names.wildcard],
        "priority": names.priority,
        "template": template,
        "_meta": {"managed_by": MANAGED_BY, "job": target.job},
    }
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    body["_meta"]["fingerprint"] = digest[:16]
    return body
