"""A fast way through InfluxDB's JSON: integer rows parsed as text by numpy, not as Python objects.

A chunk of ``/query`` output is one JSON document whose bulk is ``"values":[[t,v1,v2],[t,v1,v2],…]``
per series. Decoding that into Python lists (one int object per number) and then into numpy arrays
costs most of the time a rollup spends on its input. When a series' values are all non-negative
integers (time stamps and counters, the common case) the text between ``"values":[[`` and ``]]`` is
made of digits, ``,`` and ``],[`` only, and numpy reads it straight into an int64 array.

:func:`split_values` cuts those runs of text out of a chunk and leaves a small *skeleton* (names,
tags, columns, flags) in which each ``values`` holds the index of its text; the skeleton is then
decoded as usual. :func:`integer_rows` reads one text, or returns None: the caller then decodes the
whole chunk the ordinary way, which handles (and reports) everything else, so the fast path never
has to be right about anything unusual:

- only digits, ``,`` and ``],[`` may appear, in exactly the pattern of rows of ``width`` numbers
  (so a row of the wrong width, a null, a float, a negative number, a string or a boolean all go
  the ordinary way);
- numbers from 2^63 are read as uint64 (all of the series' numbers then are); 2^64 - 1 and beyond
  go the ordinary way (numpy gives 2^64 - 1 for anything larger).

Finding the text of a series by searching for ``"values":[[`` and the last ``]]`` before the next
such marker is safe: inside a JSON string every ``"`` is escaped, so the marker cannot start there,
and a ``]]`` found past the real end (in a tag value of the next series, say) leaves ``]]`` and
more in the text, which sends the chunk the ordinary way. The skeleton keeps everything else byte
for byte, so its decoding reports malformed JSON as before.
"""

from __future__ import annotations

import numpy as np

_MARK = b'"values":[['
_DIGITS = b"0123456789"
_SPACES = bytes(range(256)).replace(b"[", b" ").replace(b"]", b" ").replace(b",", b" ")
_INT64_MAX = np.iinfo(np.int64).max
_UINT64_MAX = np.iinfo(np.uint64).max


def split_values(chunk: bytes) -> tuple[bytes, list[bytes]] | None:
    """The chunk with each ``"values":[[…]]`` replaced by ``"values":<index>``, and those texts
    (without the outer brackets); None if the chunk has no such value."""
    position = chunk.find(_MARK)
    if position < 0:
        return None
    parts: list[bytes] = []
    texts: list[bytes] = []
    done = 0
    while position >= 0:
        start = position + len(_MARK)
        following = chunk.find(_MARK, start)
        # The last "]]" before the next series (searched backwards: the text between is short).
        end = chunk.rfind(b"]]", start, following if following >= 0 else len(chunk))
        if end < 0:
            return None
        parts.append(chunk[done:position])
        parts.append(b'"values":%d' % len(texts))
        texts.append(chunk[start:end])
        done = end + 2
        position = following
    parts.append(chunk[done:])
    return b"".join(parts), texts


def integer_rows(text: bytes, width: int) -> np.ndarray | None:
    """``1,2,3],[4,5,6`` as a (rows × width) int64 array (uint64 if a number needs it), or None
    unless every row holds exactly ``width`` non-negative integers."""
    if width < 1 or not text:
        return None
    separators = text.translate(None, _DIGITS)
    rows = separators.count(b"],[") + 1
    if separators != (b"," * (width - 1) + b"],[") * (rows - 1) + b"," * (width - 1):
        return None
    # Digits and spaces only now, which numpy cannot misread; an empty number (``1,,2``, not JSON)
    # shows as a count that is short.
    spaced = text.translate(_SPACES)
    numbers = np.fromstring(spaced, dtype=np.int64, sep=" ")
    if len(numbers) != rows * width:
        return None
    if numbers.max() == _INT64_MAX:  # numpy saturates: the number may be larger
        numbers = np.fromstring(spaced, dtype=np.uint64, sep=" ")
        if numbers.max() == _UINT64_MAX:
            return None
    shaped: np.ndarray = numbers.reshape(rows, width)
    return shaped
