"""Process settings: ``config/rollup.toml`` (or ``--config`` / ``ROLLUP_CONFIG``) overridden by
``ROLLUP_`` environment variables (nested keys with ``__``, e.g. ``ROLLUP_SOURCES__BUFFER__URL``).

Relative paths are taken from the current working directory. Secrets are never values here:
connection profiles name the environment variable or file that holds each one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rollup.config import config_error, known_keys, read_toml
from rollup.influx import InfluxConnection

DEFAULT_CONFIG = Path("config/rollup.toml")


class SourceProfile(InfluxConnection):
    """A buffer InfluxDB that jobs read from (``[sources.NAME]``)."""

    chunk_size: int = Field(default=10_000, ge=1, le=1_000_000)
    format: Literal["json", "csv"] = "json"
    concurrency: int = Field(default=1, ge=1, le=64)
    """Queries in flight per read, each over a subset of the series (split on one tag's values)."""
    read_ahead: int = Field(default=4, ge=0, le=1000)
    """Batches received and parsed ahead by a reader thread per query, while the last is rolled up
    (0: no thread, with ``concurrency = 1``)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROLLUP_", env_nested_delimiter="__", extra="forbid")

    jobs_dir: Path = Path("jobs")
    sinks_dir: Path = Path("sinks")
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sources: dict[str, SourceProfile] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's content is passed as init arguments; the environment wins over it.
        return (env_settings, init_settings)


def load_settings(config: Path | None = None) -> Settings:
    """Settings from ``config`` (default: ``$ROLLUP_CONFIG`` or config/rollup.toml, if present)."""
    explicit = config is not None or "ROLLUP_CONFIG" in os.environ
    path = config or Path(os.environ.get("ROLLUP_CONFIG", str(DEFAULT_CONFIG)))
    data = read_toml(path) if explicit or path.exists() else {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{path} (or ROLLUP_ environment)" if data else "ROLLUP_ environment"
        raise config_error(
            where, exc, known_keys({"the top level": Settings, "[sources.NAME]": SourceProfile})
        ) from None
