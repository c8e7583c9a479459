"""Kapacitor TICKscripts → plans.

A batch task (``batch|query(…).period(p).every(p).align()``) queries each window ``[t − p, t)``
and runs its pipeline on that batch alone: a derivative restarts at every window (its first
interval is lost), ``nonNegative()`` drops a decrease, and an aggregate is stamped at the window
end. A stream task (``stream|from()…|window().period(p).every(p)``) does the same once the window
closes — unless the derivative comes before ``window()``, where it runs over the unbroken stream
and keeps the interval across the window edge.

Each branch from the source to an ``influxDBOut()`` (or ``httpPost()``) is one set of output
fields; branches of one source writing to one measurement become one job with several fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial

from rollup.core.durations import NS_PER_SECOND
from rollup.core.spec import Stamp
from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.functions import (
    SIGNED_DERIVATIVE,
    Mapped,
    UnsupportedFunctionError,
    alignment_difference,
    map_aggregate,
)
from rollup.migrate.influxql import Call as QueryCall
from rollup.migrate.influxql import Literal as QueryLiteral
from rollup.migrate.influxql import MeasurementRef, SelectField, condition_of, parse_select
from rollup.migrate.influxql import Ref as QueryRef
from rollup.migrate.plan import (
    Derivative,
    Destination,
    FieldPlan,
    Grouping,
    Output,
    Plan,
    window_size,
)
from rollup.migrate.tickscript import (
    BinaryOp,
    Call,
    Expr,
    FieldRef,
    Lambda,
    Lit,
    Node,
    Script,
    UnaryOp,
    parse,
)
from rollup.migrate.where import AllOf, AnyOf, Condition, InexpressibleError, Operator, TagTest, where_from

_AGGREGATES = {"mean", "max", "min", "sum", "count", "last", "first", "median", "percentile", "spread",
               "stddev", "mode", "distinct", "top", "bottom", "elapsed", "difference", "movingAverage",
               "cumulativeSum", "holtWinters", "holtWintersWithFit", "integral", "sample"}  # fmt: skip
_PASS_THROUGH = {"log": "log() only logs", "httpOut": "httpOut() only serves the data over Kapacitor's API",
                 "noOp": "noOp() does nothing"}  # fmt: skip
_REFUSED = {
    "alert": "rollup writes aggregates, it does not alert: keep alerting in Kapacitor (or in Prometheus)",
    "deadman": "rollup writes aggregates, it does not alert: keep the deadman in Kapacitor",
    "join": "joins several pipelines; a job reads one measurement and computes each field on its own",
    "union": "merges several pipelines; a job reads one measurement",
    "combine": "combines points with each other; a job aggregates per group and window",
    "flatten": "flattens points into one; a job aggregates per group and window",
    "shift": "moves timestamps; a job stamps each row at its window start or end",
    "default": "fills in missing fields or tags; a job skips points that lack a field",
    "delete": "deletes fields or tags; a job writes exactly its aggregates",
    "sideload": "adds values from files; a job reads only InfluxDB",
    "stateCount": "counts states; not an aggregate a job computes",
    "stateDuration": "measures states; not an aggregate a job computes",
    "changeDetect": "detects changes; not an aggregate a job computes",
    "kapacitorLoopback": "writes back into Kapacitor; a job writes to InfluxDB or Elasticsearch",
    "k8sAutoscale": "scales Kubernetes resources; not a rollup",
    "swarmAutoscale": "scales Docker Swarm services; not a rollup",
    "ec2Autoscale": "scales EC2 groups; not a rollup",
    "barrier": "emits on idle time; a job's windows close on the calendar",
    "stats": "reports statistics of the node; not a rollup",
    "queryFlux": "a Flux query: import the Flux part with `rollup import flux`",
}
_TAG_OPS: dict[str, Operator] = {"==": "==", "!=": "!=", "=~": "=~", "!~": "!~"}


def translate_file(text: str, file: str, name: str) -> list[Plan]:
    """The plans of one TICKscript (``name``: the task's name, usually the file name)."""
    return _Translator(parse(text, file), file, name).plans()


@dataclass
class _Track:
    """One value flowing down a branch: a field, maybe its rate, maybe scaled, maybe aggregated."""

    field: str
    line: int
    derivative: Derivative | None = None
    scale: float = 1.0
    mapped: Mapped | None = None
    from_query: bool = False
    """Aggregated by the batch query itself (InfluxDB stamps it at the window start)."""


@dataclass
class _Branch:
    """What is known at a point of the pipeline, copied at every fork."""

    source: Node
    database: str
    retention_policy: str | None
    measurement: str
    every: int = 0
    offset: int = 0
    delay: int = 0
    windowed: bool = False
    stamp: Stamp = "end"
    first_interval_lost: bool = True
    group_by: list[str] | None = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    tracks: dict[str, _Track] = field(default_factory=dict)
    wildcard: bool = False
    """``SELECT *``: any name is a raw field until a node says otherwise."""
    differences: list[str] = field(default_factory=list)


@dataclass
class _Written:
    branch: _Branch
    destination: Destination


class _Translator:
    def __init__(self, script: Script, file: str, name: str):
        self.script = script
        self.file = file
        self.name = name
        self.written: list[_Written] = []
        self.ignored: list[str] = []

    def refuse(self, line: int, node: str, reason: str) -> RefusalError:
        return RefusalError(Refusal(self.file, line, node, reason))

    def plans(self) -> list[Plan]:
        if not self.script.roots:
            raise self.refuse(0, "", "no pipeline: a task starts with batch or stream")
        for root in self.script.roots:
            self._root(root)
        if not self.written:
            raise self.refuse(
                self.script.roots[0].line,
                self.script.roots[0].kind,
                "no branch writes anything (influxDBOut() or httpPost()): there is nothing to import",
            )
        return self._group()

    # -- sources ---------------------------------------------------------------------------------

    def _root(self, root: Node) -> None:
        if not root.children:
            raise self.refuse(root.line, root.kind, "an empty pipeline")
        for source in root.children:
            self._refuse_unknown(source)
            if root.kind == "batch":
                if source.kind != "query":
                    raise self.refuse(
                        source.line, source.label(), "a batch task starts with query('SELECT …')"
                    )
                branch = self._query(source)
            else:
                if source.kind != "from":
                    raise self.refuse(source.line, source.label(), "a stream task starts with from()")
                branch = self._from(source)
            for child in source.children:
                self._walk(child, _fork(branch))

    def _query(self, node: Node) -> _Branch:
        if len(node.args) != 1 or not _is(node.args[0], "string"):
            raise self.refuse(node.line, "query()", "takes the InfluxQL query as a string")
        text = str(_literal(node.args[0]))
        select = parse_select(text, self.file, node.args[0].line)
        if select.group_time is not None or select.group_tags != []:
            raise self.refuse(node.line, "query()", "the query must not GROUP BY: use .groupBy() on the node")
        source = select.source
        if not isinstance(source, MeasurementRef) or source.name is None:
            raise self.refuse(
                node.line, "query()", "the query must read one measurement (no subquery, no regex)"
            )
        if source.database is None:
            raise self.refuse(node.line, "query()", 'name the database: FROM "db"."rp"."measurement"')
        branch = _Branch(node, source.database, source.retention_policy, source.name)
        if select.where is not None:
            branch.conditions.append(condition_of(select.where, self.file))
        self._query_fields(branch, select.fields)
        self._schedule(branch, node)
        self._group_by_property(branch, node)
        if node.prop("fill") is not None and any(t.from_query for t in branch.tracks.values()):
            branch.differences.append("fill(): rollup writes nothing for a group without points in a window")
        return branch

    def _query_fields(self, branch: _Branch, fields: list[SelectField]) -> None:
        for item in fields:
            expr, alias, line = item.expr, item.alias, item.line
            if isinstance(expr, QueryLiteral) and expr.kind == "star":
                branch.wildcard = True
            elif isinstance(expr, QueryRef):
                branch.tracks[alias or expr.name] = _Track(expr.name, line)
            elif isinstance(expr, QueryCall) and expr.args and isinstance(expr.args[0], QueryRef):
                percentile = None
                if (
                    expr.name == "percentile"
                    and len(expr.args) == 2
                    and isinstance(expr.args[1], QueryLiteral)
                ):
                    percentile = float(expr.args[1].value)
                mapped = self._map(expr.name, percentile, line)
                if mapped.difference:
                    branch.differences.append(mapped.difference)
                name = alias or expr.name
                branch.tracks[name] = _Track(expr.args[0].name, line, mapped=mapped, from_query=True)
                branch.stamp = "start"
            else:
                raise self.refuse(line, "query()", 'select fields, or aggregates of fields, e.g. mean("f")')

    def _schedule(self, branch: _Branch, node: Node) -> None:
        cron = node.prop("cron")
        if cron is not None:
            raise self.refuse(
                cron.line, "cron()", "use .every() with .align(): a job's windows follow each other"
            )
        period, every = self._duration(node, "period"), self._duration(node, "every")
        if period is None or every is None:
            raise self.refuse(node.line, node.label(), "needs .period() and .every()")
        if period != every:
            raise self.refuse(
                node.line,
                node.label(),
                f"period {_text(period)} with every {_text(every)}: windows that overlap or leave gaps; "
                "a job's windows follow each other",
            )
        offset = self._duration(node, "offset") or 0
        branch.every = every
        branch.offset = (-offset) % every
        branch.delay = offset
        branch.windowed = True
        if node.prop("align") is None:
            branch.differences.append(
                "without .align() Kapacitor starts its windows when the task is enabled; the job's "
                "windows start on the calendar (midnight for a day)"
            )
        alignment = alignment_difference(every, "kapacitor")
        if alignment:
            branch.differences.append(alignment)

    def _from(self, node: Node) -> _Branch:
        measurement = self._string_prop(node, "measurement")
        if measurement is None:
            raise self.refuse(node.line, "from()", "name the measurement: .measurement('…')")
        database = self._string_prop(node, "database")
        policy = self._string_prop(node, "retentionPolicy")
        if database is None and self.script.dbrp:
            database, policy = self.script.dbrp[0][0], policy or self.script.dbrp[0][1]
        if database is None:
            raise self.refuse(node.line, "from()", 'name the database: .database(\'…\') or dbrp "db"."rp"')
        for name in ("truncate", "round"):
            prop = node.prop(name)
            if prop is not None:
                raise self.refuse(prop.line, f"{name}()", "changes point times, which changes every rate")
        branch = _Branch(node, database, policy, measurement, wildcard=True)
        where = node.prop("where")
        if where is not None:
            branch.conditions.append(self._lambda_condition(where.args, where.line))
        self._group_by_property(branch, node)
        return branch

    def _group_by_property(self, branch: _Branch, node: Node) -> None:
        prop = node.prop("groupBy")
        if prop is not None:
            branch.group_by = self._tags(prop.args, prop.line)

    def _tags(self, args: tuple[Expr, ...], line: int) -> list[str] | None:
        tags: list[str] = []
        for arg in args:
            if _is(arg, "star"):
                return None
            if isinstance(arg, Call) and arg.name == "time":
                raise self.refuse(
                    line, "groupBy(time(…))", "buckets the query on the server: a job reads raw points"
                )
            if not _is(arg, "string"):
                raise self.refuse(line, "groupBy()", "takes tag names as strings, or *")
            tags.append(str(_literal(arg)))
        return tags

    # -- the pipeline ----------------------------------------------------------------------------

    def _walk(self, node: Node, branch: _Branch) -> None:
        self._refuse_unknown(node)
        kind = node.kind
        if kind in ("influxDBOut", "httpPost"):
            if node.children:
                raise self.refuse(node.children[0].line, node.children[0].label(), f"after {kind}()")
            self.written.append(_Written(branch, self._destination(node, branch)))
            return
        if kind in _PASS_THROUGH:
            branch.differences.append(f"{_PASS_THROUGH[kind]}: the job has no equivalent (line {node.line})")
        elif kind == "window":
            self._window(node, branch)
        elif kind == "where":
            branch.conditions.append(self._lambda_condition(node.args, node.line))
        elif kind == "groupBy":
            branch.group_by = self._tags(node.args, node.line)
        elif kind == "derivative":
            self._derivative(node, branch)
        elif kind == "eval":
            self._eval(node, branch)
        elif kind in _AGGREGATES:
            self._aggregate(node, branch)
        else:
            raise self.refuse(node.line, node.label(), "not a node rollup import knows")
        if not node.children:
            self.ignored.append(f"the branch ending at {node.label()} (line {node.line}) writes nothing")
        for child in node.children:
            self._walk(child, _fork(branch) if len(node.children) > 1 else branch)

    def _refuse_unknown(self, node: Node) -> None:
        if node.udf:
            raise self.refuse(
                node.line, node.label(), "a user-defined function runs its own program: rollup cannot run it"
            )
        if node.kind in _REFUSED:
            raise self.refuse(node.line, node.label(), _REFUSED[node.kind])

    def _window(self, node: Node, branch: _Branch) -> None:
        if branch.source.kind != "from":
            raise self.refuse(node.line, "window()", "a batch is already a window")
        if branch.windowed:
            raise self.refuse(node.line, "window()", "a second window")
        for name in ("periodCount", "everyCount"):
            if node.prop(name) is not None:
                raise self.refuse(
                    node.line, f"{name}()", "windows of a number of points: a job's windows are times"
                )
        self._schedule(branch, node)
        branch.delay = 0
        branch.offset = 0
        if any(track.derivative is not None for track in branch.tracks.values()):
            branch.first_interval_lost = False  # the derivative ran over the unbroken stream

    def _derivative(self, node: Node, branch: _Branch) -> None:
        if len(node.args) != 1 or not _is(node.args[0], "string"):
            raise self.refuse(node.line, "derivative()", "takes the field name as a string")
        name = str(_literal(node.args[0]))
        track = self._track(branch, name, node)
        if track.mapped is not None:
            raise self.refuse(
                node.line,
                "derivative()",
                "a derivative of an aggregate: rollup computes rates from raw points",
            )
        if track.derivative is not None:
            raise self.refuse(node.line, "derivative()", "a derivative of a derivative")
        if track.scale != 1.0:
            raise self.refuse(node.line, "derivative()", "a derivative of a scaled value: scale after it")
        unit = self._duration(node, "unit") or NS_PER_SECOND
        if node.prop("nonNegative") is None:
            raise self.refuse(node.line, "derivative()", SIGNED_DERIVATIVE.format(hint="with .nonNegative()"))
        output = self._string_prop(node, "as") or name
        branch.tracks[output] = _Track(track.field, node.line, Derivative(unit, "drop"))
        if branch.group_by == []:
            branch.differences.append(
                "without groupBy Kapacitor takes one derivative over every series merged, rollup one per "
                "series (the same numbers only if there is one series)"
            )
        elif branch.group_by is not None:
            branch.differences.append(
                f"Kapacitor takes the derivative per group ({', '.join(branch.group_by)}), rollup per series "
                "(the same numbers only if those tags identify one series)"
            )

    def _eval(self, node: Node, branch: _Branch) -> None:
        names_prop = node.prop("as")
        names = [str(_literal(a)) for a in names_prop.args] if names_prop is not None else []
        if node.prop("tags") is not None:
            raise self.refuse(
                node.line, "eval().tags()", "turns values into tags: a job's tags are the group's"
            )
        if len(names) != len(node.args):
            raise self.refuse(node.line, "eval()", "give one name per expression with .as(…)")
        results: dict[str, _Track] = {}
        for expression, name in zip(node.args, names, strict=True):
            if not isinstance(expression, Lambda):
                raise self.refuse(node.line, "eval()", "takes lambda expressions")
            reference, factor = self._scale_of(expression.expr, node)
            track = self._track(branch, reference, node)
            if track.mapped is not None and track.mapped.aggregates == ("count",):
                raise self.refuse(
                    node.line, "eval()", "scales a count: rollup scales rates and values, not counts"
                )
            results[name] = _Track(
                track.field,
                track.line,
                track.derivative,
                track.scale * factor,
                track.mapped,
                track.from_query,
            )
        if node.prop("keep") is None:
            branch.tracks = {}
            branch.wildcard = False
        branch.tracks.update(results)

    def _scale_of(self, expr: Expr, node: Node) -> tuple[str, float]:
        """``"x" * 8.0``, ``8.0 * "x"``, ``"x" / 1000.0``, ``float("x") * 8`` → ``x`` and the factor."""
        if isinstance(expr, FieldRef):
            return expr.name, 1.0
        if isinstance(expr, Call) and expr.name == "float" and len(expr.args) == 1:
            return self._scale_of(expr.args[0], node)
        if isinstance(expr, BinaryOp) and expr.op in ("*", "/"):
            right = _number(expr.right)
            left = _number(expr.left)
            if right is not None and right > 0:
                name, factor = self._scale_of(expr.left, node)
                return name, factor * right if expr.op == "*" else factor / right
            if expr.op == "*" and left is not None and left > 0:
                name, factor = self._scale_of(expr.right, node)
                return name, factor * left
        raise self.refuse(
            node.line,
            "eval()",
            "only a field multiplied or divided by a positive constant (a scale) can be expressed",
        )

    def _aggregate(self, node: Node, branch: _Branch) -> None:
        if not branch.windowed:
            raise self.refuse(node.line, node.label(), "an aggregate of a stream needs a window() before it")
        if not node.args or not _is(node.args[0], "string"):
            raise self.refuse(node.line, node.label(), "takes the field name as a string")
        name = str(_literal(node.args[0]))
        percentile = None
        if node.kind == "percentile":
            if len(node.args) != 2 or _number(node.args[1]) is None:
                raise self.refuse(node.line, "percentile()", "takes a field and a number")
            percentile = _number(node.args[1])
        track = self._track(branch, name, node)
        if track.mapped is not None:
            raise self.refuse(node.line, node.label(), "an aggregate of an aggregate")
        mapped = self._map(node.kind, percentile, node.line)
        if mapped.difference:
            branch.differences.append(mapped.difference)
        if node.prop("usePointTimes") is not None:
            branch.differences.append(
                f"{node.label()}.usePointTimes() stamps the selected point's time; the job stamps the window"
            )
        output = self._string_prop(node, "as") or node.kind
        branch.tracks = {output: _Track(track.field, node.line, track.derivative, track.scale, mapped)}
        branch.wildcard = False

    def _track(self, branch: _Branch, name: str, node: Node) -> _Track:
        track = branch.tracks.get(name)
        if track is not None:
            return track
        if branch.wildcard:
            return _Track(name, node.line)
        known = ", ".join(branch.tracks) or "none"
        raise self.refuse(node.line, node.label(), f"no field {name!r} here (fields: {known})")

    def _map(self, function: str, percentile: float | None, line: int) -> Mapped:
        try:
            return map_aggregate(function, "kapacitor", percentile)
        except UnsupportedFunctionError as exc:
            raise self.refuse(line, f"{function}()", str(exc)) from None

    # -- outputs ---------------------------------------------------------------------------------

    def _destination(self, node: Node, branch: _Branch) -> Destination:
        raw = [name for name, track in branch.tracks.items() if track.mapped is None]
        if raw or not branch.tracks:
            what = f"values that are not aggregated ({', '.join(raw)})" if raw else "the points as they are"
            raise self.refuse(
                node.line, node.label(), f"writes {what}: a job writes one aggregate per group and window"
            )
        if node.kind == "httpPost":
            url = str(_literal(node.args[0])) if node.args and _is(node.args[0], "string") else None
            return Destination(
                kind="elasticsearch",
                measurement=branch.measurement,
                url=url,
            )
        tag = node.prop("tag")
        if tag is not None:
            raise self.refuse(tag.line, "influxDBOut().tag()", "a static tag: a job's tags are the group's")
        database = self._string_prop(node, "database")
        if database is None:
            raise self.refuse(node.line, "influxDBOut()", "name the database: .database('…')")
        policy = self._string_prop(node, "retentionPolicy")
        measurement = self._string_prop(node, "measurement") or branch.measurement
        return Destination("influxdb", measurement, database=database, retention_policy=policy)

    def _group(self) -> list[Plan]:
        grouping = Grouping()
        for written in self.written:
            branch = written.branch
            key = (
                id(branch.source),
                branch.every,
                branch.offset,
                branch.stamp,
                branch.first_interval_lost,
                tuple(branch.group_by) if branch.group_by is not None else None,
                repr(branch.conditions),
                written.destination,
            )
            fields = [self._field_plan(track, name) for name, track in branch.tracks.items()]
            grouping.add(key, fields, branch.differences, partial(self._plan, written))
        for plan in grouping.plans:
            plan.differences.extend(self.ignored)
        return grouping.plans

    def _plan(self, written: _Written) -> Plan:
        branch = written.branch
        try:
            where = where_from(AllOf(tuple(branch.conditions)) if branch.conditions else None)
        except InexpressibleError as exc:
            raise self.refuse(branch.source.line, branch.source.label(), str(exc)) from None
        return Plan(
            language="kapacitor",
            name=self.name,
            file=self.file,
            line=branch.source.line,
            database=branch.database,
            retention_policy=branch.retention_policy,
            measurement=branch.measurement,
            every=window_size(branch.every),
            group_by=None if branch.group_by is None else list(branch.group_by),
            fields=[],
            stamp=branch.stamp,
            first_interval_lost=branch.first_interval_lost,
            destination=written.destination,
            where=where,
            offset_ns=branch.offset,
            offset_is_delay=True,
            delay_ns=branch.delay,
        )

    @staticmethod
    def _field_plan(track: _Track, name: str) -> FieldPlan:
        assert track.mapped is not None
        outputs = [Output(a, "" if track.mapped.extra else name) for a in track.mapped.aggregates]
        return FieldPlan(track.field, track.line, track.derivative, outputs, track.scale)

    # -- values ----------------------------------------------------------------------------------

    def _lambda_condition(self, args: tuple[Expr, ...], line: int) -> Condition:
        if len(args) != 1 or not isinstance(args[0], Lambda):
            raise self.refuse(line, "where()", "takes one lambda expression")
        condition = self._condition(args[0].expr, line)
        try:
            where_from(condition)  # refused here, where its line is known
        except InexpressibleError as exc:
            raise self.refuse(line, "where()", str(exc)) from None
        return condition

    def _condition(self, expr: Expr, line: int) -> Condition:
        if isinstance(expr, BinaryOp) and expr.op in ("AND", "OR"):
            items = (self._condition(expr.left, line), self._condition(expr.right, line))
            return AllOf(items) if expr.op == "AND" else AnyOf(items)
        if isinstance(expr, BinaryOp) and expr.op in _TAG_OPS and isinstance(expr.left, FieldRef):
            right = expr.right
            wanted = "regex" if expr.op in ("=~", "!~") else "string"
            if isinstance(right, Lit) and right.kind == wanted:
                return TagTest(expr.left.name, _TAG_OPS[expr.op], str(right.value))
        if isinstance(expr, UnaryOp) and expr.op == "!":
            raise self.refuse(line, "where()", "a negated condition: write it with != or !~")
        raise self.refuse(
            line,
            "where()",
            'only conditions on tags ("tag" == \'value\', "tag" =~ /regex/, AND, OR) can be expressed; '
            "a condition on a field value cannot",
        )

    def _duration(self, node: Node, name: str) -> int | None:
        prop = node.prop(name)
        if prop is None:
            return None
        if len(prop.args) != 1 or not _is(prop.args[0], "duration"):
            raise self.refuse(prop.line, f"{name}()", "takes a duration such as 1d")
        value = int(_literal(prop.args[0]))
        if value < 0 or (value == 0 and name != "offset"):
            raise self.refuse(prop.line, f"{name}()", "must be longer than zero")
        return value

    def _string_prop(self, node: Node, name: str) -> str | None:
        prop = node.prop(name)
        if prop is None:
            return None
        if len(prop.args) != 1 or not _is(prop.args[0], "string"):
            raise self.refuse(prop.line, f"{name}()", "takes a string")
        return str(_literal(prop.args[0]))


def _fork(branch: _Branch) -> _Branch:
    """A copy for one child of a node with several (tracks are replaced, never changed, so a
    shallow copy of each collection is enough; the source node stays shared)."""
    return replace(
        branch,
        group_by=None if branch.group_by is None else list(branch.group_by),
        conditions=list(branch.conditions),
        tracks=dict(branch.tracks),
        differences=list(branch.differences),
    )


def _is(expr: Expr, kind: str) -> bool:
    return isinstance(expr, Lit) and expr.kind == kind


def _literal(expr: Expr) -> str | int | float | bool:
    assert isinstance(expr, Lit)
    return expr.value


def _number(expr: Expr) -> float | None:
    if isinstance(expr, Lit) and expr.kind == "number":
        return float(expr.value)
    return None


def _text(ns: int) -> str:
    return window_size(ns).text
