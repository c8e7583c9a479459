"""From inputs (files, statements, a live InfluxDB's continuous queries) to an :class:`ImportResult`.

Every input is translated on its own: one that cannot be is refused (one refusal, naming file,
line, node and reason) and the others are still translated. Job names are unique across the
result; sink profiles are shared by the jobs that write to the same place.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollup.migrate import cq, fluxtask, kapacitor
from rollup.migrate.emit import ImportedJob, Options, SinkProfile, emit, safe_name, sink_profile
from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.plan import Language, Plan


@dataclass(frozen=True, slots=True)
class Input:
    label: str
    """How errors name it: the path as given, ``argument 2``, ``http://influx:8086 database telegraf``."""
    text: str
    name: str
    """The default task name (a file's stem); continuous queries and Flux tasks name themselves."""


@dataclass
class ImportResult:
    jobs: list[ImportedJob] = field(default_factory=list)
    sinks: list[SinkProfile] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


_TRANSLATORS: dict[Language, Callable[[Input], list[Plan]]] = {
    "kapacitor": lambda item: kapacitor.translate_file(item.text, item.label, item.name),
    "cq": lambda item: cq.translate_file(item.text, item.label),
    "flux": lambda item: fluxtask.translate_file(item.text, item.label, item.name),
}


def import_inputs(language: Language, inputs: Sequence[Input], options: Options) -> ImportResult:
    result = ImportResult()
    plans: list[Plan] = []
    for item in inputs:
        try:
            plans.extend(_TRANSLATORS[language](item))
        except RefusalError as exc:
            result.refusals.append(exc.refusal)
    taken: set[str] = set()
    sinks: dict[str, SinkProfile] = {}
    for plan in plans:
        profile = _shared(sink_profile(plan.destination), sinks)
        name = _unique(safe_name(plan.name), taken)
        try:
            job = emit(plan, name, profile.name, options)
        except RefusalError as exc:
            result.refusals.append(exc.refusal)
            continue
        taken.add(name)
        result.jobs.append(job)
        if profile not in result.sinks:
            result.sinks.append(profile)
    return result


def _shared(profile: SinkProfile, sinks: dict[str, SinkProfile]) -> SinkProfile:
    """The same profile for the same destination; another name for another one of that name."""
    name = profile.name
    number = 1
    while name in sinks and sinks[name].toml != profile.toml:
        number += 1
        name = f"{profile.name}-{number}"
    sinks.setdefault(name, SinkProfile(name, profile.toml))
    return sinks[name]


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def read_files(paths: Sequence[Path]) -> tuple[list[Input], list[Refusal]]:
    """Each file as an input (``-`` is standard input); an unreadable file is a refusal."""
    inputs: list[Input] = []
    refusals: list[Refusal] = []
    for path in paths:
        label = str(path)
        try:
            text = sys.stdin.read() if label == "-" else path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            refusals.append(Refusal(label, 0, "", f"not UTF-8 text (byte {exc.start})"))
            continue
        except OSError as exc:
            refusals.append(Refusal(label, 0, "", f"cannot read: {exc.strerror}"))
            continue
        inputs.append(Input(label, text, "stdin" if label == "-" else path.stem))
    return inputs, refusals


def statement_arguments(arguments: Sequence[str]) -> tuple[list[Input], list[Refusal]]:
    """``rollup import cq`` arguments: a file of statements, ``-``, or a statement itself."""
    inputs: list[Input] = []
    refusals: list[Refusal] = []
    for number, argument in enumerate(arguments, start=1):
        if argument.lstrip()[:6].upper() == "CREATE":
            inputs.append(Input(f"argument {number}", argument, f"argument-{number}"))
            continue
        if argument != "-" and not Path(argument).is_file():
            refusals.append(
                Refusal(argument, 0, "", "neither a file nor a CREATE CONTINUOUS QUERY statement")
            )
            continue
        found, problems = read_files([Path(argument)])
        inputs += found
        refusals += problems
    return inputs, refusals
