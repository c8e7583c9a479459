"""What an import refuses, and why.

::

    RollupError
    └── ConfigError
        └── RefusalError        a script, query or task cannot be translated: names file, line, node, reason
    RollupError
    └── SourceError        the live InfluxDB of ``--from`` or ``--check`` did not answer as expected

A :class:`Refusal` is the record of one untranslatable input; :class:`RefusalError` carries it while a
parser or translator unwinds, and the importer collects it into the result. One input gets one
refusal: the first thing it cannot translate.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollup.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Refusal:
    """One input that was not translated: where, which node or clause, and why."""

    file: str
    line: int
    node: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.node}: {self.reason}" if self.node else f"{where}: {self.reason}"


class RefusalError(ConfigError):
    """Raised by parsers and translators; :attr:`refusal` says where and why."""

    def __init__(self, refusal: Refusal):
        super().__init__(str(refusal))
        self.refusal = refusal
