"""Tag conditions, however the original wrote them, as a job's ``source.where``.

InfluxQL ``WHERE``, TICKscript ``where(lambda: …)`` and Flux ``filter(fn: (r) => …)`` are first
reduced to :class:`TagTest` leaves under :class:`AllOf` / :class:`AnyOf`; :func:`where_from`
accepts what a job's ``where`` can hold — one condition per tag, ANDed: a value, a list of values
(ORed equalities), a regex, or values excluded (ANDed inequalities) — and says why anything else
cannot be expressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rollup.migrate.plan import WhereValue

Operator = Literal["==", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class TagTest:
    tag: str
    op: Operator
    value: str
    """A literal value, or an RE2 pattern for ``=~`` / ``!~``."""


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


Condition = TagTest | AllOf | AnyOf


class InexpressibleError(ValueError):
    """The condition has no equivalent ``where``; the message says why."""


def where_from(condition: Condition | None) -> dict[str, WhereValue]:
    if condition is None:
        return {}
    found: dict[str, WhereValue] = {}
    for item in _conjuncts(condition):
        tag, value = _one_tag(item)
        if tag in found:
            found[tag] = _merge(tag, found[tag], value)
        else:
            found[tag] = value
    return found


def _conjuncts(condition: Condition) -> list[Condition]:
    if isinstance(condition, AllOf):
        return [leaf for item in condition.items for leaf in _conjuncts(item)]
    return [condition]


def _one_tag(item: Condition) -> tuple[str, WhereValue]:
    if isinstance(item, TagTest):
        return item.tag, _single(item)
    if isinstance(item, AnyOf):
        tests = _disjuncts(item)
        tags = {test.tag for test in tests}
        if len(tags) > 1:
            raise InexpressibleError(
                f"an OR across tags ({', '.join(sorted(tags))}): a job's where ANDs one condition per tag"
            )
        if all(test.op == "==" for test in tests):
            return tests[0].tag, list(dict.fromkeys(test.value for test in tests))
        if all(test.op == "=~" for test in tests):
            return tests[0].tag, {"regex": "|".join(f"(?:{test.value})" for test in tests)}
        raise InexpressibleError(
            f"tag {tests[0].tag!r}: an OR of other tests than equalities (or than regexes) has no "
            "equivalent where"
        )
    raise InexpressibleError("an AND inside an OR: a job's where ANDs one condition per tag")


def _disjuncts(condition: Condition) -> list[TagTest]:
    if isinstance(condition, AnyOf):
        return [leaf for item in condition.items for leaf in _disjuncts(item)]
    if isinstance(condition, TagTest):
        return [condition]
    raise InexpressibleError("an AND inside an OR: a job's where ANDs one condition per tag")


def _single(test: TagTest) -> WhereValue:
    if test.op == "==":
        return test.value
    if test.op == "!=":
        return {"not": test.value}
    if test.op == "=~":
        return {"regex": test.value}
    raise InexpressibleError(
        f"tag {test.tag!r} !~ /{test.value}/: a job's where has no negated regex "
        "(list the excluded values with != instead)"
    )


def _merge(tag: str, first: WhereValue, second: WhereValue) -> WhereValue:
    """``t != 'a' AND t != 'b'`` → ``{not = ["a", "b"]}``; any other pair on one tag is refused."""
    excluded = [_excluded(first), _excluded(second)]
    if excluded[0] is not None and excluded[1] is not None:
        return {"not": list(dict.fromkeys([*excluded[0], *excluded[1]]))}
    raise InexpressibleError(f"two conditions on tag {tag!r}: a job's where holds one condition per tag")


def _excluded(value: WhereValue) -> Sequence[str] | None:
    if isinstance(value, dict) and set(value) == {"not"}:
        excluded = value["not"]
        return [excluded] if isinstance(excluded, str) else excluded
    return None
