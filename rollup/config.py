"""Reading TOML files and turning validation errors into one-line messages naming file, key, reason."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rollup.errors import ConfigError
from rollup.secrets import mask_url, redact

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLAIN_KEY = re.compile(r"[\w\-]+")


def expand_variables(value: Any, path: Path) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in string values (not keys) from the environment."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set (used as ${{{name}}})")

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [expand_variables(item, path) for item in value]
    if isinstance(value, dict):
        return {key: expand_variables(item, path) for key, item in value.items()}
    return value


def read_toml(path: Path, expand: bool = True) -> dict[str, Any]:
    """A TOML file with ``${NAME:-default}`` expanded in its string values (unless ``expand`` is off)."""
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return expand_variables(data, path) if expand else data
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): TOML files are UTF-8") from None


Vocabulary = Mapping[str, list[str]]
"""Every key a file may hold → the sections where it belongs (for hints on misplaced keys)."""


def known_keys(sections: Mapping[str, type[BaseModel]]) -> dict[str, list[str]]:
    """The keys of each section's model, e.g. ``{"top level": JobSpec, "[window]": WindowSpec}``."""
    keys: dict[str, list[str]] = {}
    for section, model in sections.items():
        for name, info in model.model_fields.items():
            keys.setdefault(info.alias or name, []).append(section)
    return keys


def describe_errors(error: ValidationError, vocabulary: Vocabulary | None = None) -> list[str]:
    """``key.path: reason`` for each problem pydantic found."""
    lines = []
    for item in error.errors():
        location = ".".join(_key(part) for part in item["loc"] if not _hidden(part))
        kind = item["type"]
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if kind == "extra_forbidden":
            key = str(item["loc"][-1]) if item["loc"] else location
            vocabulary = vocabulary or {}
            message = f"unknown key {key!r}"
            if key in vocabulary:
                message += f" here: it belongs in {' or '.join(vocabulary[key])}"
            else:
                close = difflib.get_close_matches(key, sorted(vocabulary), n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
        elif kind == "missing":
            message = "required key is missing"
        elif kind in ("literal_error", "enum") or kind.endswith("_type") or kind.endswith("_parsing"):
            message = f"{message} (got {_shown(item.get('input'))})"
        lines.append(f"{location}: {message}" if location else message)
    return lines


def _hidden(part: str | int) -> bool:
    """Parts of a location that are no key of the file: pydantic's validator names, and the
    ``~``-tags that tell which model of a union was validated."""
    return str(part).startswith(("function-", "~"))


def _shown(value: object) -> str:
    """A value quoted in an error, any credential masked (a URL given where a list was expected)."""
    return redact(repr(mask_url(value) if isinstance(value, str) else value))


def _key(part: str | int) -> str:
    """A key of an error's location as written in TOML: quoted unless it is a bare key."""
    text = str(part)
    return text if _PLAIN_KEY.fullmatch(text) else repr(text)


def config_error(
    path: Path | str, error: ValidationError, vocabulary: Vocabulary | None = None
) -> ConfigError:
    problems = describe_errors(error, vocabulary)
    if len(problems) == 1:
        return ConfigError(f"{path}: {problems[0]}")
    return ConfigError(f"{path}: " + "; ".join(problems))
