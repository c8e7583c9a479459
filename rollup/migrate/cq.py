"""InfluxDB 1.x continuous queries → plans.

What a CQ computes: every ``GROUP BY time(interval[, offset])`` window (in ``tz(…)`` or UTC) it
runs the SELECT over that window only — a derivative in a subquery starts afresh at each window
and loses its first interval — and writes one point per group stamped at the window start into
the INTO measurement. ``RESAMPLE FOR`` recomputes the last windows; ``RESAMPLE EVERY`` shorter than
the interval writes the current, unfinished window early and again later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from rollup.core.durations import NS_PER_SECOND
from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.functions import (
    SIGNED_DERIVATIVE,
    Mapped,
    UnsupportedFunctionError,
    alignment_difference,
    map_aggregate,
)
from rollup.migrate.influxql import (
    Binary,
    Call,
    ContinuousQuery,
    Expr,
    Literal,
    MeasurementRef,
    Ref,
    Select,
    condition_of,
    parse_statements,
)
from rollup.migrate.plan import (
    CheckQuery,
    Derivative,
    Destination,
    FieldPlan,
    Output,
    Plan,
    WhereValue,
    merge_field,
    split_readings,
    window_size,
)
from rollup.migrate.where import AllOf, Condition, InexpressibleError, where_from


def translate_file(text: str, file: str) -> list[Plan]:
    """The plans of every continuous query of ``text``; the first problem is refused."""
    statements = parse_statements(text, file)
    if not statements:
        raise RefusalError(Refusal(file, 0, "", "no CREATE CONTINUOUS QUERY statement in it"))
    return [plan for cq in statements for plan in translate(cq, file, text)]


def translate(cq: ContinuousQuery, file: str, text: str) -> list[Plan]:
    """One plan, or several when the CQ reads a field two ways (``mean(x) * 8, max(x)``): a job
    reads each field one way, so each way is a job of its own, all writing to the same points."""
    plan = _Translator(cq, file, text).plan()
    groups = split_readings(plan.fields)
    return [replace(plan, fields=fields, differences=list(plan.differences)) for fields in groups]


@dataclass(frozen=True, slots=True)
class _Column:
    """A column of the subquery: a raw field, or a derivative of one."""

    field: str
    derivative: Derivative | None
    scale: float


class _Translator:
    def __init__(self, cq: ContinuousQuery, file: str, text: str):
        self.cq = cq
        self.file = file
        self.text = text
        self.differences: list[str] = []

    def refuse(self, line: int, node: str, reason: str) -> RefusalError:
        return RefusalError(Refusal(self.file, line, node, reason))

    def plan(self) -> Plan:
        cq, select = self.cq, self.cq.select
        if select.into is None:
            raise self.refuse(select.line, "SELECT", "a continuous query must SELECT … INTO a measurement")
        if select.into.backreference or select.into.name is None:
            raise self.refuse(
                select.into.line,
                "INTO :MEASUREMENT",
                "one job reads one measurement: write one CQ per measurement",
            )
        if select.group_time is None:
            raise self.refuse(select.line, "GROUP BY", "a continuous query needs GROUP BY time(…)")
        for clause, line in select.extras:
            raise self.refuse(line, clause, "has no meaning for a rollup")
        every, offset = select.group_time
        inner, source = self._source(select)
        condition = self._conditions(select, inner)
        fields = self._fields(select, inner)
        plan = Plan(
            language="cq",
            name=cq.name,
            file=self.file,
            line=cq.line,
            database=source.database or cq.database,
            retention_policy=source.retention_policy,
            measurement=source.name or "",
            every=window_size(every),
            offset_ns=offset % every,
            timezone=select.timezone or "UTC",
            group_by=None if select.group_tags is None else list(select.group_tags),
            fields=fields,
            stamp="start",
            first_interval_lost=True,
            destination=Destination(
                kind="influxdb",
                measurement=select.into.name,
                database=select.into.database or cq.database,
                retention_policy=select.into.retention_policy,
            ),
            where=self._where(condition, self._where_line(select)),
            recompute=self._recompute(every),
            check=CheckQuery(cq.database, self._check_template(select), per_window=inner is not None),
        )
        self._notes(plan, select)
        plan.differences.extend(self.differences)
        return plan

    # -- FROM ------------------------------------------------------------------------------------

    def _source(self, select: Select) -> tuple[dict[str, _Column] | None, MeasurementRef]:
        if isinstance(select.source, MeasurementRef):
            return None, self._measurement(select.source)
        inner = select.source
        if inner.into is not None:
            raise self.refuse(inner.line, "INTO", "a subquery cannot write INTO")
        if inner.group_time is not None:
            raise self.refuse(
                inner.line,
                "GROUP BY time",
                "a subquery aggregated per time bucket: rollup computes rates from raw points only",
            )
        if not isinstance(inner.source, MeasurementRef):
            raise self.refuse(inner.line, "FROM", "subqueries nested more than one level deep")
        for clause, line in inner.extras:
            raise self.refuse(line, clause, "has no meaning for a rollup")
        if inner.group_tags == []:
            self.differences.append(
                "the subquery has no GROUP BY: InfluxQL takes one derivative over every series merged, "
                "rollup one per series (the same numbers only if there is one series)"
            )
        elif inner.group_tags is not None:
            tags = ", ".join(inner.group_tags)
            self.differences.append(
                f"the subquery groups by {tags}: InfluxQL takes the derivative per such group, rollup "
                "per series (the same numbers only if those tags identify one series)"
            )
        columns: dict[str, _Column] = {}
        for item in inner.fields:
            name, column = self._inner_column(item.expr, item.alias, item.line)
            columns[_unique(name, columns)] = column
        return columns, self._measurement(inner.source)

    def _measurement(self, ref: MeasurementRef) -> MeasurementRef:
        if ref.regex is not None:
            raise self.refuse(ref.line, "FROM /regex/", "one job reads one measurement: name it")
        return ref

    def _inner_column(self, expr: Expr, alias: str | None, line: int) -> tuple[str, _Column]:
        core, scale = self._scaled(expr, line)
        if isinstance(core, Ref):
            return alias or core.name, _Column(core.name, None, scale)
        if isinstance(core, Call) and core.name in ("non_negative_derivative", "derivative"):
            if not core.args or not isinstance(core.args[0], Ref):
                raise self.refuse(line, f"{core.name}()", "takes the derivative of a raw field here")
            unit = 1 * NS_PER_SECOND
            if len(core.args) > 1:
                if not isinstance(core.args[1], Literal) or core.args[1].kind != "duration":
                    raise self.refuse(line, f"{core.name}()", "the unit must be a duration")
                unit = int(core.args[1].value)
            if core.name == "derivative":
                hint = SIGNED_DERIVATIVE.format(hint="non_negative_derivative(…)")
                raise self.refuse(line, "derivative()", hint)
            return alias or core.name, _Column(core.args[0].name, Derivative(unit, "drop"), scale)
        what = core.name + "()" if isinstance(core, Call) else "this expression"
        raise self.refuse(
            line, what, "a subquery may only select raw fields and (non_negative_)derivative(field, unit)"
        )

    # -- SELECT ----------------------------------------------------------------------------------

    def _fields(self, select: Select, inner: dict[str, _Column] | None) -> list[FieldPlan]:
        plans: list[FieldPlan] = []
        names: dict[str, int] = {}
        for item in select.fields:
            core, scale = self._scaled(item.expr, item.line)
            if not isinstance(core, Call):
                raise self.refuse(
                    item.line, "SELECT", "a continuous query selects aggregates, e.g. mean(field)"
                )
            column = self._column(core, inner, item.line)
            mapped = self._aggregate(core, item.line)
            name = _unique(item.alias or core.name, names)
            names[name] = item.line
            outputs = [Output(aggregate, name if not mapped.extra else "") for aggregate in mapped.aggregates]
            if mapped.difference:
                self.differences.append(mapped.difference)
            merge_field(
                plans, FieldPlan(column.field, item.line, column.derivative, outputs, column.scale * scale)
            )
        return plans

    def _column(self, call: Call, inner: dict[str, _Column] | None, line: int) -> _Column:
        if not call.args:
            raise self.refuse(line, f"{call.name}()", "needs a field")
        argument = call.args[0]
        if isinstance(argument, Literal) and argument.kind == "star":
            raise self.refuse(line, f"{call.name}(*)", "name the fields: a job lists the fields it reads")
        if isinstance(argument, Literal) and argument.kind == "regex":
            raise self.refuse(line, f"{call.name}(/…/)", "name the fields: a job lists the fields it reads")
        if isinstance(argument, Call):
            raise self.refuse(
                line,
                f"{call.name}({argument.name}(…))",
                "an aggregate of an aggregate per time bucket: rollup computes rates from raw points; "
                "put non_negative_derivative(field) in a subquery instead",
            )
        if not isinstance(argument, Ref):
            raise self.refuse(line, f"{call.name}()", "takes a field")
        if inner is None:
            return _Column(argument.name, None, 1.0)
        if argument.name not in inner:
            known = ", ".join(inner) or "none"
            raise self.refuse(
                line, f"{call.name}({argument.name})", f"not a column of the subquery ({known})"
            )
        return inner[argument.name]

    def _aggregate(self, call: Call, line: int) -> Mapped:
        if call.name in ("non_negative_derivative", "derivative"):
            raise self.refuse(
                line,
                f"{call.name}()",
                "a derivative of per-bucket aggregates: rollup computes rates from raw points; put "
                "non_negative_derivative(field) in a subquery and aggregate it outside",
            )
        percentile = None
        if call.name == "percentile":
            if len(call.args) != 2 or not isinstance(call.args[1], Literal) or call.args[1].kind != "number":
                raise self.refuse(line, "percentile()", "takes a field and a number")
            percentile = float(call.args[1].value)
        elif len(call.args) > 1:
            raise self.refuse(line, f"{call.name}()", "takes one field here")
        try:
            return map_aggregate(call.name, "cq", percentile)
        except UnsupportedFunctionError as exc:
            raise self.refuse(line, f"{call.name}()", str(exc)) from None

    def _scaled(self, expr: Expr, line: int) -> tuple[Expr, float]:
        """``f(x) * 8``, ``8 * f(x)``, ``f(x) / 1000`` → ``f(x)`` and the factor."""
        if isinstance(expr, Binary) and expr.op in ("*", "/"):
            number = _number(expr.right)
            if number is not None:
                core, factor = self._scaled(expr.left, line)
                factor = factor * number if expr.op == "*" else factor / number if number else math.nan
            elif expr.op == "*" and _number(expr.left) is not None:
                core, factor = self._scaled(expr.right, line)
                factor *= _number(expr.left) or 0.0
            else:
                raise self.refuse(line, "SELECT", "only a product with a constant (a scale) is supported")
            if not factor > 0:
                raise self.refuse(line, "SELECT", "a scale must be a positive number")
            return core, factor
        if isinstance(expr, Binary):
            raise self.refuse(
                line, f"operator {expr.op}", "only a product with a constant (a scale) is supported"
            )
        return expr, 1.0

    # -- WHERE, GROUP BY, RESAMPLE ---------------------------------------------------------------

    def _conditions(self, select: Select, inner: dict[str, _Column] | None) -> Condition | None:
        parts = []
        if select.where is not None:
            parts.append(condition_of(select.where, self.file))
        if inner is not None and isinstance(select.source, Select) and select.source.where is not None:
            parts.append(condition_of(select.source.where, self.file))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _where(self, condition: Condition | None, line: int) -> dict[str, WhereValue]:
        try:
            return where_from(condition)
        except InexpressibleError as exc:
            raise self.refuse(line, "WHERE", str(exc)) from None

    @staticmethod
    def _where_line(select: Select) -> int:
        for where in (select.where, select.source.where if isinstance(select.source, Select) else None):
            if where is not None:
                return where.line
        return select.line

    def _recompute(self, every: int) -> int:
        windows = math.ceil((self.cq.resample_for or every) / every)
        return max(windows - 1, 0)

    def _notes(self, plan: Plan, select: Select) -> None:
        every = select.group_time[0] if select.group_time else 0
        resample_every = self.cq.resample_every
        if resample_every is not None and resample_every < every:
            plan.differences.append(
                "RESAMPLE EVERY is shorter than the interval: the CQ writes each window before it ends "
                "and again later; rollup writes a window once it has closed (plus `recompute`)"
            )
        if select.fill not in (None, "none", "null"):
            plan.differences.append(
                f"fill({select.fill}): rollup writes nothing for a group without points in a window"
            )
        alignment = alignment_difference(every, "cq")
        if alignment:
            plan.differences.append(alignment)

    def _check_template(self, select: Select) -> str:
        """The SELECT without INTO, with ``{time}`` where the time condition goes."""
        assert select.into_span is not None
        assert select.group_start is not None
        text = self.text
        start, end = select.into_span
        parts = [text[select.start : start], text[end : select.group_start]]
        if select.where_span is not None:
            where_start, where_end = select.where_span
            keyword_end = where_start + len("WHERE")
            before = text[select.start : start] + text[end:where_start]
            condition = text[keyword_end:where_end]
            parts = [before, "WHERE {time} AND (", condition.strip(), ") "]
        else:
            parts.append("WHERE {time} ")
        return "".join(parts) + text[select.group_start : select.end]


def _number(expr: Expr) -> float | None:
    if isinstance(expr, Literal) and expr.kind == "number":
        return float(expr.value)
    return None


def _unique(name: str, taken: dict[str, _Column] | dict[str, int]) -> str:
    """InfluxDB's naming of a repeated column: ``mean``, ``mean_1``, ``mean_2`` …"""
    if name not in taken:
        return name
    number = 1
    while f"{name}_{number}" in taken:
        number += 1
    return f"{name}_{number}"
