"""TLS contexts for the HTTP clients of every adapter, one per setting and shared."""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path


def tls_context(verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """The context that verifies certificates against ``ca_file`` (default: the system's CAs), or
    verifies nothing when ``verify`` is off. A changed CA file gives a new context."""
    path = None if ca_file is None else str(ca_file)
    return _context(verify, path, _modified(path))


def _modified(path: str | None) -> int | None:
    try:
        return None if path is None else os.stat(path).st_mtime_ns
    except OSError:
        return None  # reported by loading it


@functools.lru_cache(maxsize=32)
def _context(verify: bool, ca_file: str | None, modified: int | None) -> ssl.SSLContext:
    """One TLS context per setting (and CA file version), shared by every client: building one
    loads the whole CA bundle (~60 ms), which rollup serve would otherwise pay twice a pass."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
