"""Plans → job files and sink profiles, in ``--exact`` or recommended mode, each job validated.

``--exact`` reproduces the original's conventions (docs/migrating.md, "Kapacitor-compatible settings"):
``lookback = "0s"`` where the original loses each window's first interval, ``on_decrease =
"drop"``, and its timestamp (Kapacitor and Flux stamp the window end, continuous queries the
start). The recommended mode keeps rollup's defaults and lists in the file's header comment every
place where its numbers will differ from the original's, and why. Either way, what rollup cannot
reproduce at all (a median, a percentile's rank, a derivative per group of series …) is listed.
"""

from __future__ import annotations

import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from rollup.core.durations import NS_PER_SECOND
from rollup.core.spec import output_field
from rollup.errors import ConfigError
from rollup.jobs.loader import load_job
from rollup.jobs.spec import DEFAULT_LOOKBACK, JobSpec
from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.plan import (
    LANGUAGE_NAMES,
    CheckQuery,
    Derivative,
    Destination,
    FieldPlan,
    Plan,
    duration_text,
)
from rollup.migrate.tomltext import key, line


@dataclass(frozen=True, slots=True)
class Options:
    exact: bool = False
    timezone: str | None = None
    """Recommended mode: windows in this IANA zone instead of the original's (UTC for most)."""
    source_profile: str = "buffer"
    command: str = "rollup import"


@dataclass(frozen=True, slots=True)
class SinkProfile:
    name: str
    toml: str


@dataclass(frozen=True, slots=True)
class ImportedJob:
    name: str
    toml: str
    spec: JobSpec
    notes: tuple[str, ...]
    """Where the numbers will differ from the original's, and why (also in the file's header)."""
    origin: str
    """``file:line`` of the task, query or statement."""
    renames: dict[str, str]
    """The original's output name → the job's output field (``in_mean`` → ``in_mean``)."""
    check: CheckQuery | None = None


def sink_profile(destination: Destination) -> SinkProfile:
    """The sink profile a destination needs, named after where it writes (one per database and
    retention policy, or bucket, whatever the measurement)."""
    if destination.kind == "elasticsearch":
        relay = f"httpPost('{destination.url}')" if destination.url else "httpPost()"
        lines = [
            f"# The original's {relay} posted the results for something else to index;",
            '# rollup writes them to Elasticsearch itself (type = "opensearch" for OpenSearch).',
            'type = "elasticsearch"',
            'url = "${ROLLUP_ELASTICSEARCH_URL:-http://127.0.0.1:9200}"',
            'index = "rollup-{job}-{yyyy.MM}"',
            '# username = "rollup"',
            '# password_env = "ROLLUP_ELASTICSEARCH_PASSWORD"',
        ]
        return SinkProfile("search", "\n".join(lines) + "\n")
    url = destination.url or "${ROLLUP_INFLUX_URL:-http://127.0.0.1:8086}"
    lines = ["# The InfluxDB the imported jobs write to, where the original wrote.", 'type = "influxdb"']
    lines.append(line("url", url))
    if destination.bucket is not None:
        name = destination.bucket
        lines += [line("org", destination.org or "${ROLLUP_INFLUX_ORG}"), line("bucket", destination.bucket)]
        lines.append('token_env = "ROLLUP_INFLUX_TOKEN"')
    else:
        assert destination.database is not None
        name = destination.database
        lines.append(line("database", destination.database))
        if destination.retention_policy:
            name += f"-{destination.retention_policy}"
            lines.append(line("retention_policy", destination.retention_policy))
        lines += ['# username = "rollup"', '# password_env = "ROLLUP_INFLUX_PASSWORD"']
    return SinkProfile(safe_name(name), "\n".join(lines) + "\n")


def safe_name(text: str) -> str:
    """A job or profile name from anything: letters, digits, ``_``, ``-``, ``.``."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_-.") else "-" for c in text).strip("-.")
    return cleaned or "imported"


class _Job:
    """One plan being written as a job file."""

    def __init__(self, plan: Plan, name: str, sink: str, options: Options):
        self.plan = plan
        self.name = name
        self.sink = sink
        self.options = options
        self.notes: list[str] = []
        self.renames: dict[str, str] = {}
        self.reset_fields: list[str] = []

    def text(self) -> str:
        body = self._body()
        if self.reset_fields:
            self.notes.append(
                f'on_decrease = "reset" ({", ".join(self.reset_fields)}): after a decrease the counter '
                "is taken as restarted from 0 and the interval counts its new value; the original drops "
                'the interval. For SNMP Counter32 fields use "wrap32", or "auto" with max_rate '
                "(docs/semantics.md)"
            )
        return self._header() + "\n" + body

    # -- header ----------------------------------------------------------------------------------

    def _header(self) -> str:
        plan, options = self.plan, self.options
        mode = " --exact" if options.exact else ""
        what = LANGUAGE_NAMES[plan.language]
        lines = [
            f"# Imported from {plan.file}:{plan.line} ({what} {plan.name}) by `{options.command}{mode}`."
        ]
        if options.exact:
            lines.append("# --exact: the settings reproduce the original's numbers where rollup can.")
        else:
            lines.append(
                "# Recommended settings; `--exact` reproduces the original's numbers where rollup can."
            )
        notes = [*plan.differences, *self.notes]
        if notes:
            lines.append("# Where the results differ from the original's, and why:")
            for note in notes:
                wrapped = textwrap.wrap(note, 96, initial_indent="#   - ", subsequent_indent="#     ")
                lines.extend(wrapped)
        else:
            lines.append("# The results are the original's.")
        return "\n".join(lines) + "\n"

    # -- body ------------------------------------------------------------------------------------

    def _body(self) -> str:
        plan = self.plan
        out = [line("name", self.name), line("description", f"Imported from {plan.file} ({plan.name})")]
        if plan.group_by is not None:
            out.append(line("group_by", plan.group_by))
        out += ["", "[source]", line("profile", self.options.source_profile), line("database", plan.database)]
        if plan.retention_policy:
            out.append(line("retention_policy", plan.retention_policy))
        out.append(line("measurement", plan.measurement))
        if plan.where:
            out.append(line("where", plan.where))
        out += ["", "[window]", *self._window()]
        taken: set[str] = set()
        for field_plan in plan.fields:
            out += ["", f"[fields.{key(field_plan.field)}]", *self._field(field_plan, taken)]
        out += ["", "[output]", line("measurement", plan.destination.measurement), line("sinks", [self.sink])]
        out.append(self._timestamp())
        if plan.recompute:
            out += [
                "",
                "[schedule]",
                line("recompute", plan.recompute, "the original recomputed these windows"),
            ]
        return "\n".join(out) + "\n"

    def _window(self) -> list[str]:
        plan, options = self.plan, self.options
        out = [line("every", plan.every.text)]
        zone = plan.timezone if options.exact or options.timezone is None else options.timezone
        if zone != plan.timezone:
            self.notes.append(
                f"[window] timezone: windows follow {zone}'s calendar (a day at DST changes is 23 or 25 "
                f"hours long); the original's were {plan.timezone}: every window covers other hours"
            )
        out.append(line("timezone", zone))
        if plan.offset_ns and (options.exact or not plan.offset_is_delay):
            out.append(line("offset", duration_text(plan.offset_ns)))
        elif plan.offset_ns:
            self.notes.append(
                f"[window] offset: .offset({duration_text(plan.delay_ns)}) delayed each query and so "
                f"shifted the original's windows ({duration_text(plan.offset_ns)} after each "
                f"{plan.every.text} boundary); the job's windows start on the boundaries and `delay` "
                "waits for late points instead"
            )
        if plan.delay_ns:
            out.append(line("delay", duration_text(plan.delay_ns), "the original waited this long"))
        if not plan.has_counters:
            return out
        if plan.first_interval_lost and options.exact:
            out.append(line("lookback", "0s", "as the original: the first point of a window gives no rate"))
        elif plan.first_interval_lost:
            self.notes.append(
                f"[window] lookback (default {DEFAULT_LOOKBACK}): each series' last point before the "
                "window gives the window's first interval, which the original drops at every window "
                "edge (one rate more per series and window)"
            )
        else:
            self.notes.append(
                f"[window] lookback (default {DEFAULT_LOOKBACK}): the original carries each series' "
                f"previous point however old; the job looks back {DEFAULT_LOOKBACK} (set lookback "
                "longer if points are further apart)"
            )
        return out

    def _field(self, field_plan: FieldPlan, taken: set[str]) -> list[str]:
        prefix = self._prefix(field_plan, taken)
        out = []
        if prefix != field_plan.field:
            out.append(line("as", prefix))
        derivative = field_plan.derivative
        out.append(line("kind", "counter" if derivative is not None else "gauge"))
        if derivative is not None:
            out.append(self._on_decrease(field_plan, derivative))
            if derivative.unit_ns != NS_PER_SECOND:
                out.append(line("unit", duration_text(derivative.unit_ns)))
        if field_plan.scale != 1.0:
            out.append(line("scale", float(field_plan.scale)))
        aggregates = list(dict.fromkeys(o.aggregate for o in field_plan.outputs))
        out.append(line("aggregates", aggregates))
        return out

    def _on_decrease(self, field_plan: FieldPlan, derivative: Derivative) -> str:
        if derivative.on_decrease == "reset":
            return line("on_decrease", "reset", "as the original: a decrease is a restart from 0")
        if self.options.exact:
            return line("on_decrease", "drop", "as the original: a decrease drops the interval")
        self.reset_fields.append(field_plan.field)
        return line("on_decrease", "reset", "a decrease is a restart from 0")

    def _prefix(self, field_plan: FieldPlan, taken: set[str]) -> str:
        """The field's ``as``: the prefix that gives the original's names back where it can."""
        named = [o for o in field_plan.outputs if o.name]
        chosen = [o for o in named if not _default_name(o.name)]  # `mean` says nothing of the field
        candidates = {_strip(o.name, o.aggregate) for o in chosen}
        if chosen and len(candidates) == 1 and None not in candidates:
            prefix = str(candidates.pop())
        elif len(chosen) == 1:
            prefix = chosen[0].name
        else:
            prefix = field_plan.field
        if prefix in taken:
            prefix = f"{prefix}_{field_plan.field}"
        taken.add(prefix)
        for output in named:
            written = output_field(prefix, output.aggregate)
            self.renames[output.name] = written
            if written != output.name:
                self.notes.append(f"the original's field {output.name!r} is written as {written!r}")
        return prefix

    def _timestamp(self) -> str:
        plan = self.plan
        if self.options.exact:
            return line("timestamp", plan.stamp, "as the original")
        if plan.stamp == "end":
            self.notes.append(
                '[output] timestamp = "start": each row is stamped at its window start; the original '
                'stamped the window end (timestamp = "end" keeps that)'
            )
        return line("timestamp", "start")


def emit(plan: Plan, name: str, sink: str, options: Options) -> ImportedJob:
    """The job file of ``plan``; RefusalError (naming the original) if rollup refuses the result."""
    job = _Job(plan, name, sink, options)
    text = job.text()
    spec = _validate(text, name, plan)
    return ImportedJob(
        name=name,
        toml=text,
        spec=spec,
        notes=(*plan.differences, *job.notes),
        origin=f"{plan.file}:{plan.line}",
        renames=job.renames,
        check=plan.check,
    )


def _validate(text: str, name: str, plan: Plan) -> JobSpec:
    with tempfile.TemporaryDirectory(prefix="rollup-import-") as directory:
        path = Path(directory) / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_job(path)
        except ConfigError as exc:
            reason = str(exc).replace(f"{path}: ", "")
            raise RefusalError(
                Refusal(plan.file, plan.line, plan.name, f"the translated job is not valid: {reason}")
            ) from None


def _strip(name: str, aggregate: str) -> str | None:
    suffix = output_field("", aggregate)
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else None


_FUNCTION_NAMES = frozenset({"mean", "max", "min", "sum", "count", "last", "stddev", "median", "percentile",
                             "spread", "derivative", "non_negative_derivative"})  # fmt: skip


def _default_name(name: str) -> bool:
    """``mean``, ``mean_1``: the name InfluxQL or Kapacitor gives a value nobody named."""
    base, _, number = name.rpartition("_")
    return name in _FUNCTION_NAMES or (base in _FUNCTION_NAMES and number.isdigit())
