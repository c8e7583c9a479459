"""Named sink profiles: ``sinks/NAME.toml`` files, each with a ``type`` that picks the sink."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from rollup.config import config_error, known_keys, read_toml
from rollup.errors import ConfigError
from rollup.sinks.base import OutputTarget, Sink


class _SinkType(NamedTuple):
    module: str
    profile: str
    sink: str


# Imported on first use, so a deployment that writes only to InfluxDB never loads the
# Elasticsearch clients.
SINK_TYPES: dict[str, _SinkType] = {
    "influxdb": _SinkType("rollup.sinks.influxdb", "InfluxSinkProfile", "InfluxSink"),
    "elasticsearch": _SinkType("rollup.sinks.elasticsearch", "ElasticsearchSinkProfile", "ElasticsearchSink"),
    "opensearch": _SinkType("rollup.sinks.opensearch", "OpenSearchSinkProfile", "OpenSearchSink"),
}


def _resolve(kind: str) -> tuple[type[BaseModel], Any]:
    entry = SINK_TYPES[kind]
    module = importlib.import_module(entry.module)
    return getattr(module, entry.profile), getattr(module, entry.sink)


def load_sink_profile(path: Path) -> BaseModel:
    data = read_toml(path)
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in SINK_TYPES:
        choices = ", ".join(sorted(SINK_TYPES))
        raise ConfigError(f"{path}: type: expected one of {choices} (got {kind!r})")
    model, _ = _resolve(kind)
    try:
        return model(**data)
    except ValidationError as exc:
        # Not chained: the validation error holds the file's values, a secret written under a wrong
        # key among them, which the masking does not know (the message itself never quotes them).
        raise config_error(path, exc, known_keys({"the profile": model})) from None


def scan_sink_profiles(directory: Path) -> tuple[dict[str, BaseModel], dict[str, str]]:
    """Every profile in ``directory`` by name (file stem), and the ones that do not load with
    their error (ConfigError only if the directory itself is missing)."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: sinks directory not found")
    profiles: dict[str, BaseModel] = {}
    problems: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            profiles[path.stem] = load_sink_profile(path)
        except ConfigError as exc:
            problems[path.stem] = str(exc)
    return profiles, problems


def build_sink(name: str, profile: BaseModel, target: OutputTarget) -> Sink:
    _, factory = _resolve(str(getattr(profile, "type")))  # noqa: B009 - every profile model has `type`
    sink: Sink = factory(name, profile, target)
    return sink
