"""Process settings: ``config/rollup.toml`` (or ``--config`` / ``ROLLUP_CONFIG``) overridden by
``ROLLUP_`` environment variables (nested keys with ``__``, e.g. ``ROLLUP_SOURCES__BUFFER__URL``).

Relative paths are taken from the current working directory. Secrets are never values here:
connection profiles name the environment variable or file that holds each one. The one exception
is ``ledger``: a PostgreSQL URL given in the environment (``ROLLUP_LEDGER``, e.g. from a
Kubernetes secret) may carry a password; it is a ``SecretStr``, never logged, and refused when
written literally in the settings file (use ``ledger_password_env`` or ``ledger_password_file``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rollup.config import config_error, known_keys, read_toml
from rollup.core.durations import NS_PER_SECOND, Duration, parse_duration
from rollup.durations import PositiveSpan, Span
from rollup.errors import ConfigError
from rollup.ledger import ledger_scheme
from rollup.plugins import import_modules
from rollup.secrets import read_secret
from rollup.sources.profile import SourceProfile

DEFAULT_CONFIG = Path("config/rollup.toml")
DEFAULT_LEDGER = "sqlite:state/ledger.sqlite"


class ServeSettings(BaseModel):
    """``rollup serve`` (``[serve]``; ``ROLLUP_SERVE__HOST`` etc. in the environment)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address of /healthz, /readyz and /metrics")
    port: int = Field(default=9108, ge=0, le=65535, description="0: any free port (logged)")
    sweep: Span = Field(default=parse_duration("1m"), description="Every job's pass runs at least this often")
    concurrency: int = Field(default=4, ge=1, le=256, description="Jobs whose passes run at once")
    misfire_grace: Span = Field(
        default=parse_duration("1m"), description="A trigger that could not start for this long is dropped"
    )
    shutdown_timeout: Span = Field(
        default=parse_duration("25s"),
        description="SIGTERM: how long the windows in flight may take to finish",
    )

    @field_validator("sweep", "misfire_grace")
    @classmethod
    def _at_least_a_second(cls, value: Duration) -> Duration:
        if value.nanos < NS_PER_SECOND:
            raise ValueError("must be at least 1s")
        return value

    @property
    def misfire_grace_seconds(self) -> int:
        return max(1, self.misfire_grace.nanos // NS_PER_SECOND)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROLLUP_", env_nested_delimiter="__", extra="forbid", hide_input_in_errors=True
    )

    jobs_dir: Path = Path("jobs")
    sinks_dir: Path = Path("sinks")
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sources: dict[str, SourceProfile] = Field(default_factory=dict)
    ledger: SecretStr = Field(
        default=SecretStr(DEFAULT_LEDGER),
        description="Where window state lives: sqlite:PATH or postgresql://USER@HOST:PORT/DB",
    )
    ledger_password_env: str | None = None
    ledger_password_file: Path | None = None
    ledger_keep: PositiveSpan = Field(
        default=parse_duration("400d"),
        description="Rows of windows older than this (and than the buffer retention) are pruned",
    )
    ledger_lease: Span = Field(
        default=parse_duration("1m"),
        description="A claimed window whose owner stopped renewing it is owed again after this",
    )
    serve: ServeSettings = Field(default_factory=ServeSettings)
    plugins: list[str] = Field(
        default_factory=list,
        description="Modules whose plug-in aggregates jobs may use (imported when the settings load)",
    )

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, value: list[str]) -> list[str]:
        import_modules(value)
        return value

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, value: SecretStr) -> SecretStr:
        ledger_scheme(value.get_secret_value())
        return value

    @field_validator("ledger_lease")
    @classmethod
    def _lease(cls, value: Duration) -> Duration:
        if value.nanos < NS_PER_SECOND:
            raise ValueError("ledger_lease must be at least 1s")
        return value

    @model_validator(mode="after")
    def _one_password(self) -> Settings:
        if self.ledger_password_env is not None and self.ledger_password_file is not None:
            raise ValueError("give ledger_password_env or ledger_password_file, not both")
        if (self.ledger_password_env or self.ledger_password_file) and _url_password(self.ledger):
            raise ValueError("the ledger URL already holds a password: drop ledger_password_env/_file")
        return self

    def ledger_password(self) -> SecretStr | None:
        return read_secret(self.ledger_password_env, self.ledger_password_file, "ledger password")

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
    written = read_toml(path, expand=False).get("ledger") if data else None
    if isinstance(written, str) and "${" not in written and _url_password(SecretStr(written)):
        raise ConfigError(
            f"{path}: ledger: a password cannot be written in the settings file: use "
            "ledger_password_env or ledger_password_file (or pass the whole URL in ROLLUP_LEDGER)"
        )
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = f"{path} (or ROLLUP_ environment)" if data else "ROLLUP_ environment"
        raise config_error(
            where,
            exc,
            known_keys(
                {"the top level": Settings, "[sources.NAME]": SourceProfile, "[serve]": ServeSettings}
            ),
        ) from None


def _url_password(url: SecretStr) -> bool:
    """Whether a ledger URL holds a password (``scheme://user:password@host``)."""
    text = url.get_secret_value()
    if "://" not in text:
        return False
    authority = text.split("://", 1)[1].split("/", 1)[0]
    return "@" in authority and ":" in authority.rsplit("@", 1)[0]
