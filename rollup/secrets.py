"""Credentials: where they come from, and how they are kept out of every text rollup prints.

* A profile never holds a secret, only where to read it (:class:`Credentials`: ``password_env``,
  ``password_file``, ``token_env``, ``token_file``); :func:`read_secret` reads it when a
  connection is built.
* Secrets travel in headers, never in URLs: :func:`plain_url` refuses a URL with credentials in it.
* Defence in depth: every secret read is remembered, and :func:`redact` masks remembered secrets
  in a text. Error messages, ledger entries and ``status`` go through it; :class:`RedactingFilter`
  applies it to every log record, tracebacks included. That catches what a server or a
  third-party library might still echo back, e.g. an error page quoting a request's
  ``Authorization`` header.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from rollup.errors import ConfigError

MASK = "***"
_SECRETS: set[str] = set()
_LITERAL_SECRETS = ("password", "token", "api_key")


# -- remembering and masking ----------------------------------------------------------------------


def remember(secret: str) -> None:
    """Mask ``secret`` in every text :func:`redact` sees from now on."""
    if len(secret) >= 4:  # masking one- to three-letter strings would garble ordinary text
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` with every remembered secret masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks remembered secrets in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


# -- reading ---------------------------------------------------------------------------------------


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """The secret named by an environment variable or held in a file, or None if neither is set;
    remembered for :func:`redact`."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env} is not set")
    elif file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    else:
        return None
    remember(value)
    return SecretStr(value)


def plain_url(value: str) -> str:
    """An http(s) URL without credentials in it, without a trailing slash; ValueError otherwise."""
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    if parsed.userinfo:
        raise ValueError("credentials cannot be written into the URL: use username and password_env")
    return value.rstrip("/")


class Credentials(BaseModel):
    """Where a connection's secrets come from (never the secrets themselves)."""

    # A secret written into a profile by mistake must not be echoed by a validation error.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    token_env: str | None = None
    token_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in _LITERAL_SECRETS:
                if key in data:
                    raise ValueError(
                        f"{key!r} cannot be written in a profile: use {key}_env (an environment "
                        f"variable) or {key}_file (a secret file) instead"
                    )
        return data

    def password(self, what: str) -> SecretStr | None:
        return read_secret(self.password_env, self.password_file, f"{what} password")

    def token(self, what: str) -> SecretStr | None:
        return read_secret(self.token_env, self.token_file, f"{what} token")
