"""InfluxDB 2 Flux tasks → plans.

A task runs every ``task.every`` (``offset`` later) over ``range(start: -task.every)``: the
derivative sees only that range (each window loses its first interval), ``derivative(nonNegative:
true)`` turns a decrease into a null (the interval is dropped; with ``initialZero: true`` the
counter is taken as restarted from 0), ``aggregateWindow`` stamps each window at its stop
(``timeSrc: "_start"``: its start), and ``to()`` writes the field under its own name into the
bucket. A range longer than the window recomputes the older windows at every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from rollup.core.durations import NS_PER_SECOND
from rollup.core.spec import Stamp
from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.flux import (
    Array,
    Binary,
    Call,
    Expr,
    FluxDuration,
    Function,
    Lit,
    Member,
    Name,
    Pipe,
    Record,
    Statement,
    Unary,
    dotted,
    parse,
)
from rollup.migrate.functions import (
    SIGNED_DERIVATIVE,
    Mapped,
    UnsupportedFunctionError,
    alignment_difference,
    map_aggregate,
    percentile_from,
)
from rollup.migrate.plan import (
    Derivative,
    Destination,
    FieldPlan,
    Grouping,
    Output,
    Plan,
    window_size,
)
from rollup.migrate.where import AllOf, AnyOf, Condition, InexpressibleError, Operator, TagTest, where_from

_TAG_OPS: dict[str, Operator] = {"==": "==", "!=": "!=", "=~": "=~", "!~": "!~"}
_IGNORED = {"yield"}
_REFUSED = {
    "window": "window() with an aggregate: write aggregateWindow(every: …, fn: …) instead",
    "join": "joins several streams; a job reads one measurement",
    "union": "merges several streams; a job reads one measurement",
    "pivot": "pivots fields into columns; a job aggregates each field on its own",
    "map": "computes new values; only a scale (r._value * constant) can be expressed",
    "fill": "fills missing values; a job skips what is missing",
    "timeShift": "moves timestamps; a job stamps each row at its window start or end",
    "increase": "increase() is a running total; use aggregateWindow(fn: sum) after derivative()",
    "difference": "rollup computes rates (derivative), not differences",
    "rename": "renames columns; the job names its fields with `as`",
    "duplicate": "copies columns; a job writes its aggregates and group tags",
    "sort": "sorts rows; a job writes one row per group and window",
    "limit": "keeps some rows; a job aggregates all of them",
    "sql.from": "reads SQL; a job reads InfluxDB",
}


def translate_file(text: str, file: str, name: str) -> list[Plan]:
    """The plans of one Flux task (``name``: ``option task`` ``name``, else the file's)."""
    return _Translator(parse(text, file), file, name).plans()


@dataclass
class _Chain:
    """What one pipeline reads, computes and writes."""

    line: int
    database: str = ""
    retention_policy: str | None = None
    measurement: str | None = None
    fields: list[str] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    range_start: FluxDuration | None = None
    group_by: list[str] | None = None
    derivative: Derivative | None = None
    scale: float = 1.0
    every: FluxDuration | None = None
    offset_ns: int = 0
    timezone: str | None = None
    mapped: Mapped | None = None
    stamp: Stamp = "end"
    output_measurement: str | None = None
    output_field: str | None = None
    destination: Destination | None = None
    differences: list[str] = field(default_factory=list)


class _Translator:
    def __init__(self, statements: list[Statement], file: str, name: str):
        self.statements = statements
        self.file = file
        self.name = name
        self.variables: dict[str, Expr] = {}
        self.task: dict[str, Expr] = {}
        self.timezone: str | None = None

    def refuse(self, line: int, node: str, reason: str) -> RefusalError:
        return RefusalError(Refusal(self.file, line, node, reason))

    def plans(self) -> list[Plan]:
        chains: list[_Chain] = []
        for statement in self.statements:
            if statement.kind == "option":
                self._option(statement)
            elif statement.kind == "assign":
                assert statement.name is not None
                self.variables[statement.name] = statement.value
            else:
                chain = self._chain(statement.value, statement.line)
                if chain is not None:
                    chains.append(chain)
        if not chains:
            raise self.refuse(0, "to()", "no pipeline writes with to(): there is nothing to import")
        return self._group(chains)

    def _option(self, statement: Statement) -> None:
        if statement.name == "task":
            if not isinstance(statement.value, Record):
                raise self.refuse(statement.line, "option task", "must be a record {name: …, every: …}")
            self.task = statement.value.items
            task_name = self.task.get("name")
            if isinstance(task_name, Lit) and isinstance(task_name.value, str):
                self.name = task_name.value
            if "cron" in self.task:
                raise self.refuse(
                    statement.line, "option task cron", "use every: a job's windows follow each other"
                )
        elif statement.name == "location":
            self.timezone = self._location(statement.value, statement.line)

    def _location(self, expr: Expr, line: int) -> str:
        if isinstance(expr, Call) and expr.name == "timezone.location":
            zone = expr.args.get("name")
            if isinstance(zone, Lit) and isinstance(zone.value, str):
                return zone.value
        raise self.refuse(line, "location", 'only timezone.location(name: "Area/City") can be expressed')

    # -- pipelines -------------------------------------------------------------------------------

    def _calls(self, expr: Expr, line: int) -> list[Call]:
        if isinstance(expr, Pipe):
            return [*self._calls(expr.source, line), expr.call]
        if isinstance(expr, Call):
            return [expr]
        if isinstance(expr, Name) and expr.name in self.variables:
            return self._calls(self.variables[expr.name], line)
        raise self.refuse(line, dotted(expr) or "expression", "not a pipeline starting with from()")

    def _chain(self, expr: Expr, line: int) -> _Chain | None:
        calls = self._calls(expr, line)
        if not any(call.name in ("to", "experimental.to") for call in calls):
            return None  # a pipeline that writes nothing (a yield for the UI): the task's output is to()
        first = calls[0]
        if first.name in _REFUSED:
            raise self.refuse(first.line, f"{first.name}()", _REFUSED[first.name])
        if first.name != "from":
            raise self.refuse(first.line, f"{first.name}()", "a task's pipeline starts with from(bucket: …)")
        chain = _Chain(first.line)
        self._from(first, chain)
        for call in calls[1:]:
            if chain.destination is not None:
                if call.name in _IGNORED:
                    continue
                raise self.refuse(
                    call.line, f"{call.name}()", "after to(): the job's output is what to() wrote"
                )
            self._step(call, chain)
        self._finish(chain)
        return chain

    def _from(self, call: Call, chain: _Chain) -> None:
        bucket = self._string(call, "bucket")
        if bucket is None:
            raise self.refuse(call.line, "from()", 'name the bucket: from(bucket: "db/rp")')
        database, _, policy = bucket.partition("/")
        chain.database, chain.retention_policy = database, policy or None

    def _step(self, call: Call, chain: _Chain) -> None:
        name = call.name
        if name in _IGNORED:
            return
        if name == "range":
            self._range(call, chain)
        elif name == "filter":
            self._filter(call, chain)
        elif name == "group":
            self._group_call(call, chain)
        elif name == "derivative":
            self._derivative(call, chain)
        elif name == "map":
            self._map(call, chain)
        elif name == "aggregateWindow":
            self._aggregate_window(call, chain)
        elif name == "set":
            self._set(call, chain)
        elif name in ("keep", "drop"):
            if chain.mapped is None:
                raise self.refuse(call.line, f"{name}()", "before aggregateWindow() it changes the groups")
            chain.differences.append(f"{name}() (line {call.line}): the job writes its group tags")
        elif name in ("to", "experimental.to"):
            self._to(call, chain)
        elif name in _REFUSED:
            raise self.refuse(call.line, f"{name}()", _REFUSED[name])
        else:
            raise self.refuse(call.line, f"{name}()", "not a function rollup import knows")

    def _range(self, call: Call, chain: _Chain) -> None:
        start = call.args.get("start")
        stop = call.args.get("stop")
        if stop is not None and not (isinstance(stop, Call) and stop.name == "now"):
            raise self.refuse(call.line, "range(stop: …)", "a task reads up to now")
        duration = self._duration(start, call.line, "range(start: …)", negative=True)
        chain.range_start = duration

    def _filter(self, call: Call, chain: _Chain) -> None:
        fn = call.args.get("fn")
        if not isinstance(fn, Function) or len(fn.params) != 1:
            raise self.refuse(call.line, "filter()", "takes fn: (r) => condition")
        condition = self._condition(fn.body, fn.params[0], call.line)
        for item in _conjuncts(condition):
            if isinstance(item, TagTest) and item.tag == "_measurement":
                if item.op != "==" or chain.measurement not in (None, item.value):
                    raise self.refuse(
                        call.line, "filter()", 'a job reads one measurement: r._measurement == "…"'
                    )
                chain.measurement = item.value
            elif _field_tests(item) is not None:
                values = _field_tests(item) or []
                chain.fields = [f for f in chain.fields if f in values] if chain.fields else values
            else:
                if _mentions(item, ("_measurement", "_field")):
                    raise self.refuse(
                        call.line,
                        "filter()",
                        "r._measurement and r._field must be equalities ANDed with the rest",
                    )
                chain.conditions.append(item)

    def _condition(self, expr: Expr, param: str, line: int) -> Condition:
        if isinstance(expr, Binary) and expr.op in ("and", "or"):
            items = (self._condition(expr.left, param, line), self._condition(expr.right, param, line))
            return AllOf(items) if expr.op == "and" else AnyOf(items)
        if isinstance(expr, Binary) and expr.op in _TAG_OPS:
            column = _column(expr.left, param)
            right = expr.right
            wanted = "regex" if expr.op in ("=~", "!~") else "string"
            if column is not None and isinstance(right, Lit) and right.kind == wanted:
                if column.startswith("_") and column not in ("_measurement", "_field"):
                    raise self.refuse(
                        line, "filter()", f"a condition on {column}: only tags can be expressed"
                    )
                return TagTest(column, _TAG_OPS[expr.op], str(right.value))
        raise self.refuse(
            line,
            "filter()",
            'only conditions on r._measurement, r._field and tags (== "v", =~ /re/, and, or) work',
        )

    def _group_call(self, call: Call, chain: _Chain) -> None:
        mode = self._string(call, "mode")
        if mode not in (None, "by"):
            raise self.refuse(call.line, "group(mode: …)", 'only mode: "by" can be expressed')
        columns = call.args.get("columns")
        names: list[str] = []
        if columns is not None:
            if not isinstance(columns, Array) or not all(_is_string(c) for c in columns.items):
                raise self.refuse(call.line, "group()", 'takes columns: ["tag", …]')
            names = [str(c.value) for c in columns.items if isinstance(c, Lit)]
        if "_field" not in names and len(chain.fields) > 1:
            raise self.refuse(call.line, "group()", "without _field it merges the fields into one value")
        chain.group_by = [n for n in names if not n.startswith("_")]
        if chain.derivative is None and chain.mapped is None:
            self._group_note(chain)

    def _group_note(self, chain: _Chain) -> None:
        tags = chain.group_by
        what = f"per group ({', '.join(tags)})" if tags else "over every series merged"
        chain.differences.append(
            f"group() before derivative(): Flux takes the derivative {what}, rollup per series "
            "(the same numbers only if each group is one series)"
        )

    def _derivative(self, call: Call, chain: _Chain) -> None:
        if chain.mapped is not None:
            raise self.refuse(call.line, "derivative()", "a derivative of aggregates: rollup uses raw points")
        if chain.derivative is not None:
            raise self.refuse(call.line, "derivative()", "a derivative of a derivative")
        columns = call.args.get("columns")
        if columns is not None and not (
            isinstance(columns, Array) and [_string_value(c) for c in columns.items] == ["_value"]
        ):
            raise self.refuse(call.line, "derivative(columns: …)", "only _value can be expressed")
        unit = call.args.get("unit")
        unit_ns = NS_PER_SECOND
        if unit is not None:
            duration = self._duration(unit, call.line, "derivative(unit: …)")
            if duration.months:
                raise self.refuse(call.line, "derivative(unit: …)", "a unit of months has no fixed length")
            unit_ns = duration.nanos
        if not self._bool(call, "nonNegative"):
            hint = SIGNED_DERIVATIVE.format(hint="with nonNegative: true")
            raise self.refuse(call.line, "derivative()", hint)
        chain.derivative = Derivative(unit_ns, "reset" if self._bool(call, "initialZero") else "drop")

    def _map(self, call: Call, chain: _Chain) -> None:
        """``map(fn: (r) => ({r with _value: r._value * 8.0}))``: a scale."""
        fn = call.args.get("fn")
        if isinstance(fn, Function) and len(fn.params) == 1 and isinstance(fn.body, Record):
            record = fn.body
            if isinstance(record.base, Name) and set(record.items) == {"_value"}:
                factor = _factor(record.items["_value"], fn.params[0])
                if factor is not None and factor > 0:
                    if chain.mapped is not None and chain.mapped.aggregates == ("count",):
                        raise self.refuse(
                            call.line, "map()", "scales a count: rollup scales values, not counts"
                        )
                    chain.scale *= factor
                    return
        raise self.refuse(call.line, "map()", _REFUSED["map"])

    def _aggregate_window(self, call: Call, chain: _Chain) -> None:
        if chain.mapped is not None:
            raise self.refuse(call.line, "aggregateWindow()", "a second aggregation")
        every = call.args.get("every")
        chain.every = self._duration(every, call.line, "aggregateWindow(every: …)")
        if "period" in call.args and self._duration(call.args["period"], call.line, "period") != chain.every:
            raise self.refuse(call.line, "aggregateWindow(period: …)", "windows that overlap or leave gaps")
        column = self._string(call, "column")
        if column not in (None, "_value"):
            raise self.refuse(call.line, "aggregateWindow(column: …)", "only _value can be expressed")
        if "offset" in call.args:
            offset = self._duration(call.args["offset"], call.line, "aggregateWindow(offset: …)")
            chain.offset_ns = offset.nanos
        if "location" in call.args:
            chain.timezone = self._location(call.args["location"], call.line)
        time_source = self._string(call, "timeSrc")
        if time_source not in (None, "_stop", "_start"):
            raise self.refuse(
                call.line, "aggregateWindow(timeSrc: …)", "the job stamps the window start or end"
            )
        chain.stamp = "start" if time_source == "_start" else "end"
        chain.mapped = self._function(call.args.get("fn"), call.line)
        if chain.mapped.aggregates == ("count",) and self._bool(call, "createEmpty", default=True):
            chain.differences.append(
                "count with createEmpty: Flux writes 0 for a window without points; rollup writes nothing"
            )
        if chain.mapped.difference:
            chain.differences.append(chain.mapped.difference)

    def _function(self, fn: Expr | None, line: int) -> Mapped:
        name: str | None = None
        percentile: float | None = None
        if isinstance(fn, Name):
            name = fn.name
        elif isinstance(fn, Function) and isinstance(fn.body, Pipe) and isinstance(fn.body.source, Name):
            inner = fn.body.call
            name = inner.name
            if name in ("quantile", "percentile"):
                q = inner.args.get("q", inner.args.get("percentile"))
                if not isinstance(q, Lit) or not isinstance(q.value, float):
                    raise self.refuse(line, f"{name}()", "takes q: a number between 0 and 1")
                percentile = percentile_from(q.value)
                name = "quantile"
        if name is None:
            raise self.refuse(line, "aggregateWindow(fn: …)", "takes an aggregate such as mean")
        try:
            return map_aggregate(name, "flux", percentile)
        except UnsupportedFunctionError as exc:
            raise self.refuse(line, f"{name}()", str(exc)) from None

    def _set(self, call: Call, chain: _Chain) -> None:
        key, value = self._string(call, "key"), self._string(call, "value")
        if key == "_measurement" and value:
            chain.output_measurement = value
        elif key == "_field" and value:
            if len(chain.fields) > 1:
                raise self.refuse(call.line, 'set(key: "_field")', "gives several fields one name")
            chain.output_field = value
        else:
            raise self.refuse(
                call.line, "set()", "only _measurement and _field can be set: the job names its tags"
            )

    def _to(self, call: Call, chain: _Chain) -> None:
        if chain.mapped is None:
            raise self.refuse(
                call.line, "to()", "writes points that are not aggregated: a job writes aggregates"
            )
        for name in ("bucketID", "orgID", "tagColumns", "fieldFn", "token"):
            if name in call.args:
                raise self.refuse(call.line, f"to({name}: …)", "cannot be expressed: name the bucket and org")
        bucket = self._string(call, "bucket")
        if bucket is None:
            raise self.refuse(call.line, "to()", 'name the bucket: to(bucket: "…")')
        org = self._string(call, "org")
        host = self._string(call, "host")
        measurement = chain.output_measurement or chain.measurement or ""
        chain.destination = Destination("influxdb", measurement, org=org, bucket=bucket, url=host)

    def _finish(self, chain: _Chain) -> None:
        if chain.measurement is None:
            raise self.refuse(chain.line, "filter()", 'name the measurement: r._measurement == "…"')
        if not chain.fields:
            raise self.refuse(chain.line, "filter()", 'name the fields: r._field == "…" (or several with or)')
        if chain.range_start is None:
            raise self.refuse(chain.line, "range()", "a task reads range(start: -task.every)")
        if chain.every is None:
            raise self.refuse(
                chain.line, "aggregateWindow()", "a job aggregates per window: add aggregateWindow()"
            )

    # -- plans -----------------------------------------------------------------------------------

    def _group(self, chains: list[_Chain]) -> list[Plan]:
        grouping = Grouping()
        for chain in chains:
            assert chain.destination is not None
            assert chain.mapped is not None
            key = (
                chain.database,
                chain.retention_policy,
                chain.measurement,
                chain.every,
                chain.offset_ns,
                chain.stamp,
                tuple(chain.group_by) if chain.group_by is not None else None,
                repr(chain.conditions),
                chain.destination,
            )
            fields = [self._field_plan(chain, f) for f in chain.fields]
            grouping.add(key, fields, chain.differences, partial(self._plan, chain))
        return grouping.plans

    @staticmethod
    def _field_plan(chain: _Chain, source_field: str) -> FieldPlan:
        """``to()`` writes each field under its own name, or the one ``set(key: "_field")`` gave."""
        assert chain.mapped is not None
        name = "" if chain.mapped.extra else chain.output_field or source_field
        outputs = [Output(aggregate, name) for aggregate in chain.mapped.aggregates]
        return FieldPlan(source_field, chain.line, chain.derivative, outputs, chain.scale)

    def _plan(self, chain: _Chain) -> Plan:
        assert chain.every is not None
        assert chain.range_start is not None
        assert chain.destination is not None
        every = chain.every
        task_every = self._task_duration("every", chain.line) or every
        recompute = self._recompute(chain, task_every)
        try:
            where = where_from(AllOf(tuple(chain.conditions)) if chain.conditions else None)
        except InexpressibleError as exc:
            raise self.refuse(chain.line, "filter()", str(exc)) from None
        plan = Plan(
            language="flux",
            name=self.name,
            file=self.file,
            line=chain.line,
            database=chain.database,
            retention_policy=chain.retention_policy,
            measurement=str(chain.measurement),
            every=window_size(every.nanos, every.months),
            group_by=None if chain.group_by is None else list(chain.group_by),
            fields=[],
            stamp=chain.stamp,
            first_interval_lost=True,
            destination=chain.destination,
            where=where,
            offset_ns=chain.offset_ns,
            timezone=chain.timezone or self.timezone or "UTC",
            delay_ns=(self._task_duration("offset", chain.line) or FluxDuration(0, 0)).nanos,
            recompute=recompute,
        )
        alignment = alignment_difference(every.nanos, "flux") if not every.months else None
        if alignment:
            plan.differences.append(alignment)
        return plan

    def _recompute(self, chain: _Chain, task_every: FluxDuration) -> int:
        """Windows the task recomputes at every run, from its range, its period and the window."""
        assert chain.every is not None
        assert chain.range_start is not None
        window, reach = chain.every, chain.range_start.negate()
        if window.months or task_every.months or reach.months:
            if window == task_every == reach:
                return 0
            raise self.refuse(
                chain.line, "range()", "calendar months: the range, the task and the window must match"
            )
        if task_every.nanos % window.nanos or reach.nanos % window.nanos or reach.nanos < task_every.nanos:
            raise self.refuse(
                chain.line,
                "range()",
                "each run must read whole windows, at least those since the last run: "
                "range(start: -task.every) with aggregateWindow(every: task.every) is the usual shape",
            )
        return (reach.nanos - task_every.nanos) // window.nanos

    # -- values ----------------------------------------------------------------------------------

    def _task_duration(self, name: str, line: int) -> FluxDuration | None:
        value = self.task.get(name)
        return None if value is None else self._duration(value, line, f"option task {name}")

    def _duration(self, expr: Expr | None, line: int, what: str, negative: bool = False) -> FluxDuration:
        if isinstance(expr, Member) and dotted(expr) in ("task.every", "task.offset"):
            value = self._task_duration(expr.name, line)
            if value is None:
                raise self.refuse(line, what, f"uses {dotted(expr)}, which option task does not set")
            return value
        if isinstance(expr, Lit) and isinstance(expr.value, FluxDuration):
            return expr.value
        if negative and isinstance(expr, Name | Member) and (dotted(expr) or "").startswith("v."):
            raise self.refuse(line, what, "a dashboard variable: a task reads a range before now")
        if negative and isinstance(expr, Unary) and expr.op == "-":
            return self._duration(expr.operand, line, what).negate()
        raise self.refuse(line, what, "takes a duration such as 1d or task.every")

    def _string(self, call: Call, name: str) -> str | None:
        value = call.args.get(name)
        if value is None:
            return None
        if isinstance(value, Lit) and isinstance(value.value, str) and value.kind == "string":
            return value.value
        raise self.refuse(call.line, f"{call.name}({name}: …)", "takes a string")

    def _bool(self, call: Call, name: str, default: bool = False) -> bool:
        value = call.args.get(name)
        if value is None:
            return default
        if isinstance(value, Lit) and isinstance(value.value, bool):
            return value.value
        raise self.refuse(call.line, f"{call.name}({name}: …)", "takes true or false")


def _conjuncts(condition: Condition) -> list[Condition]:
    if isinstance(condition, AllOf):
        return [leaf for item in condition.items for leaf in _conjuncts(item)]
    return [condition]


def _column(expr: Expr, param: str) -> str | None:
    """``r.tag`` or ``r["tag"]`` of the function's parameter."""
    if isinstance(expr, Member) and isinstance(expr.target, Name) and expr.target.name == param:
        return expr.name
    return None


def _field_tests(item: Condition) -> list[str] | None:
    """``r._field == "a"`` or an OR of them → the field names; None for anything else."""
    leaves = item.items if isinstance(item, AnyOf) else (item,)
    names = []
    for leaf in leaves:
        if not (isinstance(leaf, TagTest) and leaf.tag == "_field" and leaf.op == "=="):
            return None
        names.append(leaf.value)
    return names


def _mentions(item: Condition, columns: tuple[str, ...]) -> bool:
    if isinstance(item, TagTest):
        return item.tag in columns
    return any(_mentions(i, columns) for i in item.items)


def _factor(expr: Expr, param: str) -> float | None:
    """``r._value * 8.0``, ``8.0 * r._value``, ``r._value / 1000.0``, ``float(v: r._value) * 8.0``."""
    if _column(expr, param) == "_value":
        return 1.0
    if isinstance(expr, Call) and expr.name == "float" and "v" in expr.args:
        return _factor(expr.args["v"], param)
    if isinstance(expr, Binary) and expr.op in ("*", "/"):
        right = (
            expr.right.value if isinstance(expr.right, Lit) and isinstance(expr.right.value, float) else None
        )
        left = expr.left.value if isinstance(expr.left, Lit) and isinstance(expr.left.value, float) else None
        if right:
            inner = _factor(expr.left, param)
            return None if inner is None else inner * right if expr.op == "*" else inner / right
        if left and expr.op == "*":
            inner = _factor(expr.right, param)
            return None if inner is None else inner * left
    return None


def _is_string(expr: Expr) -> bool:
    return isinstance(expr, Lit) and expr.kind == "string"


def _string_value(expr: Expr) -> str | None:
    return str(expr.value) if isinstance(expr, Lit) and expr.kind == "string" else None
