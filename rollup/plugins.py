"""Plug-in aggregates: the classes a plug-in is written with, and how rollup finds plug-ins.

A plug-in subclasses :class:`WindowAggregate` (it needs every value of a window) or
:class:`StreamingAggregate` (it keeps a small state per window); see docs/plugins.md and
:mod:`rollup.core.plugins`, where the core runs them. rollup finds plug-ins in two places:

* **entry points** of the group ``rollup.aggregates`` of the installed distributions: the entry
  point's name is how jobs call the plug-in, its value the class (``rollup_busy_hour:BusyHour``).
  A distribution's entry point is only imported when a job uses it;
* **modules named in the settings** (``plugins = ["mycompany.rollup_aggs"]``), imported when the
  settings load: every plug-in class the module defines with a ``name`` is one.

A job names a plug-in like a built-in (``"busy_hour"``), or with parameters
(``{ name = "busy_hour", bucket = "1h" }``): they are the keyword arguments of the class, which
refuses a bad one with ``ValueError`` (or ``TypeError``) when the job is loaded.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

import numpy as np

from rollup.core.durations import parse_duration
from rollup.core.plugin_runs import FieldPlugins
from rollup.core.plugins import (
    Aggregate,
    Chunks,
    PluginUse,
    Result,
    Results,
    State,
    StreamingAggregate,
    Values,
    WindowAggregate,
    check_declaration,
)
from rollup.core.spec import is_builtin

__all__ = [
    "ENTRY_POINT_GROUP",
    "Aggregate",
    "Chunks",
    "Registry",
    "Result",
    "Results",
    "State",
    "StreamingAggregate",
    "Values",
    "WindowAggregate",
    "discover",
    "duration_ns",
    "evaluate",
    "installed",
    "module_plugins",
]

ENTRY_POINT_GROUP = "rollup.aggregates"


def evaluate(
    aggregate: WindowAggregate | StreamingAggregate,
    values: Sequence[float] | np.ndarray,
    *,
    times: Sequence[int] | np.ndarray | None = None,
    series: Sequence[int] | np.ndarray | None = None,
    window: tuple[int, int] | None = None,
    batch_rows: int | None = None,
) -> dict[str, float]:
    """What rollup writes for ``aggregate`` over one (group, window) holding ``values``, as the
    core runs it (the same checks included): output name (without the field's prefix) → number.

    ``times`` (epoch ns) and ``series`` (ids) go with the values; ``window`` is ``[start, end)``
    (default: the times' span). ``batch_rows`` hands a streaming plug-in its values in batches of
    that many rows (update, then merge), as batches of a source would. ValueError with the reason
    when the plug-in fails, as the window would."""
    name = aggregate.name or type(aggregate).__name__.lower()
    use = PluginUse(name, aggregate)
    numbers = np.asarray(values, dtype=np.float64)
    count = len(numbers)
    stamps = np.zeros(count, dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
    ids = np.zeros(count, dtype=np.int64) if series is None else np.asarray(series, dtype=np.int64)
    if times is None and "times" in aggregate.needs:
        raise ValueError(f"{name} needs times: give them")
    if window is None:
        window = (int(stamps.min()), int(stamps.max()) + 1) if count else (0, 1)
    bounds = (np.array([window[0]]), np.array([window[1]]))
    plugins = FieldPlugins([use], lambda slots: bounds)
    plugins.grow(1)
    slot = np.zeros(1, dtype=np.int64)
    if use.streaming:
        step = batch_rows or max(count, 1)
        for low in range(0, count, step):
            part = slice(low, low + step)
            size = np.array([len(numbers[part])], dtype=np.int64)
            plugins.update(slot, size, numbers[part], stamps[part], ids[part])
    elif count:
        rows = plugins.kept_rows(numbers, stamps, ids).reshape(count, -1)
        plugins.reduce(slot, np.array([count]), rows)
    columns = plugins.columns(slot, np.array([count > 0]))
    if plugins.failures:
        raise ValueError(plugins.failures[0][1])
    return {output: column[0] for output, column in columns if column[0] is not None}


def duration_ns(text: str) -> int:
    """A duration as a job writes it (``"1h"``, ``"15m"``) in nanoseconds; ValueError unless it
    is a fixed length longer than zero (not ``1mo``) — for plug-in parameters."""
    if not isinstance(text, str):
        raise ValueError(f'invalid duration {text!r}: expected a text such as "1h" or "15m"')
    duration = parse_duration(text)
    if duration.is_calendar:
        raise ValueError(f"invalid duration {text!r}: a calendar month has no fixed length")
    if duration.nanos <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than zero")
    return duration.nanos


@dataclass(frozen=True)
class _Source:
    """Where a plug-in comes from, and how to get its class."""

    origin: str
    load: Callable[[], object]


class Registry:
    """The plug-ins rollup can find, by the name jobs call them."""

    def __init__(self, sources: Mapping[str, list[_Source]]):
        self._sources = dict(sources)
        self._made: dict[tuple[str, str], PluginUse] = {}

    def names(self) -> list[str]:
        return sorted(self._sources)

    def __contains__(self, name: object) -> bool:
        return name in self._sources

    def hint(self) -> str:
        """How a message about an unknown aggregate ends: which plug-ins there are."""
        names = ", ".join(self.names())
        return f", or a plug-in aggregate ({names or 'none installed'})"

    def use(self, name: str, parameters: Mapping[str, object]) -> PluginUse:
        """The plug-in ``name`` made with ``parameters``; ValueError saying what is wrong. The same
        parameters give the same instance (a plug-in keeps no state of a run)."""
        key = (name, repr(sorted(parameters.items())))
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._make(name, dict(parameters))
        return made

    def _make(self, name: str, parameters: dict[str, object]) -> PluginUse:
        sources = self._sources.get(name)
        if not sources:
            raise ValueError(f"unknown plug-in aggregate {name!r}")
        if len(sources) > 1:
            raise ValueError(
                f"plug-in {name!r} is provided twice: by {' and by '.join(s.origin for s in sources)}"
            )
        (source,) = sources
        try:
            kind = source.load()
        except Exception as exc:  # a broken distribution fails the jobs that use it, nothing else
            raise ValueError(f"plug-in {name!r} ({source.origin}) cannot be loaded: {_error(exc)}") from exc
        if not isinstance(kind, type):
            raise ValueError(f"plug-in {name!r} ({source.origin}) is not a class")
        check_declaration(name, kind)
        _check_parameters(name, kind, parameters)
        try:
            aggregate = kind(**parameters)
        except (ValueError, TypeError) as exc:  # how a plug-in refuses a parameter
            raise ValueError(f"{name}: {exc}") from exc
        except Exception as exc:  # a plug-in's own bug fails the jobs that use it, nothing else
            raise ValueError(f"{name}: cannot be made with these parameters: {_error(exc)}") from exc
        return PluginUse(name, aggregate, parameters)


def _check_parameters(name: str, kind: type, parameters: Mapping[str, object]) -> None:
    """ValueError naming a parameter the class does not take, or one it needs that is missing."""
    try:
        signature = inspect.signature(kind)
    except (TypeError, ValueError):  # no signature to read: the constructor will tell
        return
    accepted = [
        p.name for p in signature.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    listed = f"parameters: {', '.join(accepted)}" if accepted else "it takes none"
    for key in parameters:
        if key not in accepted and not takes_any:
            raise ValueError(f"{name}: unknown parameter {key!r} ({listed})")
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in parameters
    ]
    if missing:
        raise ValueError(f"{name}: parameter(s) {', '.join(map(repr, missing))} must be given")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def module_plugins(module: ModuleType) -> dict[str, type]:
    """The plug-in classes ``module`` defines (not those it imports), by name."""
    found: dict[str, type] = {}
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, WindowAggregate | StreamingAggregate)
            and value.__module__ == module.__name__
            and value.name
        ):
            check_declaration(value.name, value)
            if is_builtin(value.name):
                raise ValueError(
                    f"plug-in {value.__qualname__} of module {module.__name__}: {value.name!r} is "
                    "a built-in aggregate's name"
                )
            if value.name in found:
                raise ValueError(f"module {module.__name__} defines two plug-ins named {value.name!r}")
            found[value.name] = value
    return found


def import_modules(names: Sequence[str]) -> list[ModuleType]:
    """The modules named in the settings, imported; ValueError naming the one that fails."""
    modules = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any error of a module named in the settings is a setting to fix
            hint = " (is its directory on PYTHONPATH?)" if isinstance(exc, ModuleNotFoundError) else ""
            raise ValueError(f"cannot import module {name!r}: {_error(exc)}{hint}") from exc
        module_plugins(module)
        modules.append(module)
    return modules


def discover(modules: Sequence[str] = ()) -> Registry:
    """The plug-ins of the installed distributions' entry points and of ``modules`` (imported)."""
    sources: dict[str, list[_Source]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if is_builtin(point.name):
            continue  # a built-in's name always means the built-in
        dist = f" of {point.dist.name} {point.dist.version}" if point.dist is not None else ""
        sources.setdefault(point.name, []).append(_Source(f"entry point {point.value}{dist}", point.load))
    for module in import_modules(modules):
        for name, kind in module_plugins(module).items():
            sources.setdefault(name, []).append(
                _Source(f"module {module.__name__}", functools.partial(_same, kind))
            )
    return Registry(sources)


def _same(kind: type) -> type:
    return kind


@functools.cache
def installed() -> Registry:
    """The plug-ins of the installed distributions (entry points only), found once per process:
    what a job loaded without settings can use."""
    return discover()
