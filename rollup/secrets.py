"""Credentials: where they come from, and how they are kept out of every text rollup prints.

* A profile never holds a secret, only where to read it (:class:`Credentials`: ``password_env``,
  ``password_file``, ``token_env``, ``token_file``); :func:`read_secret` reads it when a
  connection is built.
* Secrets travel in headers, never in URLs: :func:`plain_url` refuses a URL with credentials in it
  (``user:password@``, or InfluxDB 1.x's ``?u=…&p=…``), and its error never quotes one.
* Defence in depth: every secret read is remembered, and :func:`redact` masks remembered secrets
  and the credentials of any URL (:func:`mask_url`) in a text. Error messages, ledger entries and
  ``status`` go through it; :class:`RedactingFilter` applies it to every log record, tracebacks
  included. That catches what a server or a third-party library might still echo back, e.g. an
  error page quoting a request's ``Authorization`` header.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from rollup.errors import ConfigError

MASK = "***"
_SECRETS: set[str] = set()
_LITERAL_SECRETS = ("password", "token", "api_key")

URL_CREDENTIALS = {"p": "password", "password": "password", "u": "username", "token": "token"}
"""Query parameters that carry a credential (InfluxDB 1.x reads ``u`` and ``p``), and what they hold."""
_AUTHORITY = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?/*([^/]*)")
"""What follows the scheme (if any) and the slashes: ``user:password@host:port`` or a mistyped form of it."""
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_QUERY_CREDENTIAL = re.compile(r"(?i)([?&;](?:p|password|u|token)=)[^&#;\s'\"<>]*")


# -- remembering and masking ----------------------------------------------------------------------


def remember(secret: str) -> None:
    """Mask ``secret`` in every text :func:`redact` sees from now on."""
    if len(secret) >= 4:  # masking one- to three-letter strings would garble ordinary text
        _SECRETS.add(secret)


def _split_query(url: str) -> tuple[str, str]:
    """``url`` cut before its query or fragment, and that query or fragment."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:cut], url[cut:]


def mask_url(url: str) -> str:
    """``url`` with the password of its user information and the values of its credential query
    parameters masked: ``influx://admin:***@host:8086/?u=***&p=***``. Works on what merely looks
    like a URL too (``elastic:***@host:9200``), and rather masks too much than too little (the last
    ``@`` before the query ends the user information); a user name alone (``rollup@host``) is kept."""
    head, tail = _split_query(url)
    at = head.rfind("@")
    if at >= 0:
        scheme_end = head.find("://")
        start = scheme_end + 3 if 0 <= scheme_end < at else 0
        user, colon, _ = head[start:at].partition(":")
        if colon:
            head = f"{head[:start]}{user}:{MASK}{head[at:]}"
    return head + _QUERY_CREDENTIAL.sub(lambda match: match.group(1) + MASK, tail)


def redact(text: str) -> str:
    """``text`` with every remembered secret and the credentials of every URL in it masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL.sub(lambda match: mask_url(match.group(0)), text)
    return _QUERY_CREDENTIAL.sub(lambda match: match.group(1) + MASK, text)


_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Masks secrets and URL credentials in a record's message, its ``extra`` texts and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
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
    """An http(s) URL without credentials in it, without a trailing slash; ValueError otherwise.

    Credentials (``user:password@`` before the host, even without a valid scheme, or a ``p``,
    ``password``, ``u`` or ``token`` query parameter) are refused first, with a message that
    does not quote the URL; any other message quotes it masked (:func:`mask_url`)."""
    head, tail = _split_query(value)
    authority = _AUTHORITY.match(head)
    if authority is not None and "@" in authority.group(1):
        raise ValueError(
            "credentials cannot be written into the URL: give the user in username and the password "
            "in password_env or password_file (or a token in token_env or token_file)"
        )
    query = tail[1:].split("#", 1)[0] if tail.startswith("?") else ""
    found = [
        (name, URL_CREDENTIALS[name.lower()])
        for name, _ in parse_qsl(query)
        if name.lower() in URL_CREDENTIALS
    ]
    if found:
        name, holds = min(found, key=lambda pair: pair[1] == "username")  # the secret, if any
        use = "token_env or token_file" if holds == "token" else "username and password_env or password_file"
        raise ValueError(
            f"credentials cannot be written into the URL (query parameter {name!r} holds a {holds}): "
            f"use {use}"
        )
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        # Not chained: httpx's message may quote the URL; this one quotes it masked.
        raise ValueError(f"invalid URL {mask_url(value)!r}: {redact(str(exc))}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"expected an http:// or https:// URL, got {mask_url(value)!r}")
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
