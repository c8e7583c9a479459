"""An import's files: printed, or written into the jobs and sinks directories.

Writing is all or nothing: every target is checked before the first file is written, and a file
that exists with other content is never overwritten unless asked (``force``). A file that already
holds exactly the same text is left as it is.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rollup.errors import ConfigError
from rollup.migrate.importer import ImportResult


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    unchanged: bool


def render(result: ImportResult, jobs_dir: Path, sinks_dir: Path) -> str:
    """Every file of the result, each under a comment naming where it belongs."""
    parts = [f"# ---- {jobs_dir / (job.name + '.toml')} ----\n{job.toml}" for job in result.jobs]
    parts += [f"# ---- {sinks_dir / (sink.name + '.toml')} ----\n{sink.toml}" for sink in result.sinks]
    return "\n".join(parts)


def write_files(result: ImportResult, jobs_dir: Path, sinks_dir: Path, force: bool) -> list[Written]:
    targets = [(jobs_dir / f"{job.name}.toml", job.toml) for job in result.jobs]
    targets += [(sinks_dir / f"{sink.name}.toml", sink.toml) for sink in result.sinks]
    existing = {path: _current(path) for path, _ in targets}
    conflicts = [path for path, text in targets if existing[path] is not None and existing[path] != text]
    if conflicts and not force:
        raise ConfigError(
            "\n".join(f"{path}: exists with other content; --force overwrites it" for path in conflicts)
        )
    written = []
    for path, text in targets:
        unchanged = existing[path] == text
        if not unchanged:
            _replace(path, text)
        written.append(Written(path, unchanged))
    return written


def _current(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the existing file: {exc}") from None


def _replace(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: a reader never sees half a file."""
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
