"""TOML text for the values a job file holds, written by hand so the file can carry comments."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
TomlValue = str | int | float | bool | Sequence["TomlValue"] | Mapping[str, "TomlValue"]


def string(text: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else string(name)


def value(item: TomlValue) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, str):
        return string(item)
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        return repr(item) if item == item and item not in (float("inf"), float("-inf")) else "nan"
    if isinstance(item, Mapping):
        inner = ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items())
        return "{ " + inner + " }" if inner else "{}"
    return "[" + ", ".join(value(v) for v in item) + "]"


def line(name: str, item: TomlValue, comment: str = "") -> str:
    text = f"{key(name)} = {value(item)}"
    return f"{text}  # {comment}" if comment else text
