"""The three parsers on the details people's scripts are made of, and on text cut anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollup.jobs.spec import TagCondition
from rollup.migrate import ImportedJob, Options, import_inputs
from rollup.migrate.cq import translate_file as translate_cq
from rollup.migrate.importer import Input
from rollup.migrate.plan import Language
from rollup.migrate.where import AllOf, AnyOf, InexpressibleError, TagTest, where_from
from tests.unit.test_migrate_corpus import CORPUS, EXACT_JOBS


def _one(language: Language, text: str) -> ImportedJob:
    result = import_inputs(language, [Input("script", text, "task")], Options(exact=True))
    assert result.refusals == [], result.refusals
    [job] = result.jobs
    return job


def test_tickscript_divides_after_a_value_and_reads_a_regex_after_an_operator() -> None:
    job = _one(
        "kapacitor",
        """
        stream
            |from().database('db').measurement('net').where(lambda: "iface" =~ /^eth\\/[0-9]+$/)
            |window().period(1h).every(1h).align()
            |mean('bytes')
            |eval(lambda: "mean" / 1000.0).as('kbytes')
            |influxDBOut().database('out')
        """,
    )
    assert job.spec.source.where["iface"] == TagCondition(regex="^eth/[0-9]+$")
    assert job.spec.fields["bytes"].scale == pytest.approx(0.001)


def test_tickscript_lines_count_across_triple_quoted_strings_and_comments() -> None:
    script = """// a comment
var data = batch
    |query('''
        SELECT "v"
        FROM "db"."rp"."m"
    ''')
        .period(1h)
        .every(1h)
// another one
data
    |stateDuration(lambda: "v" > 1)
"""
    result = import_inputs("kapacitor", [Input("s.tick", script, "s")], Options())
    assert [str(r) for r in result.refusals] == [
        "s.tick:11: stateDuration(): measures states; not an aggregate a job computes"
    ]


def test_influxql_reads_the_default_retention_policy_and_quoted_names() -> None:
    [plan] = translate_cq(
        'CREATE CONTINUOUS QUERY "the \\"q\\"" ON "db" BEGIN SELECT max("v") AS "v_max" INTO "r".."t 1h" '
        'FROM "db".."my m" GROUP BY time(1h) END',
        "q.iql",
    )
    assert (plan.name, plan.database, plan.retention_policy, plan.measurement) == (
        'the "q"',
        "db",
        None,
        "my m",
    )
    destination = plan.destination
    assert (destination.database, destination.retention_policy, destination.measurement) == (
        "r",
        None,
        "t 1h",
    )
    assert plan.group_by == []


@pytest.mark.parametrize(
    ("statement", "template"),
    [
        (
            "CREATE CONTINUOUS QUERY q ON db BEGIN SELECT mean(v) INTO o FROM m GROUP BY time(1h), * END",
            "SELECT mean(v)  FROM m WHERE {time} GROUP BY time(1h), *",
        ),
        (
            "CREATE CONTINUOUS QUERY q ON db BEGIN SELECT mean(v) INTO db.rp.o FROM m "
            "WHERE a = 'x' OR a = 'y' GROUP BY time(1h), a, b fill(none) tz('Europe/Zurich') END",
            "SELECT mean(v)  FROM m WHERE {time} AND (a = 'x' OR a = 'y') GROUP BY time(1h), a, b fill(none) "
            "tz('Europe/Zurich')",
        ),
    ],
)
def test_the_check_runs_the_cq_select_without_into_within_the_time_range(
    statement: str, template: str
) -> None:
    [plan] = translate_cq(statement, "q.iql")
    assert plan.check is not None
    assert plan.check.template == template
    assert plan.check.per_window is False


def test_flux_reads_bracket_columns_negated_task_durations_and_calendar_months() -> None:
    job = _one(
        "flux",
        """
        option task = {name: "monthly", every: 1mo}
        from(bucket: "db")
            |> range(start: -task.every)
            |> filter(fn: (r) => r["_measurement"] == "m" and r["_field"] == "v" and r["host"] == "h1")
            |> aggregateWindow(every: 1mo, fn: max)
            |> to(bucket: "out", org: "o")
        """,
    )
    assert job.spec.window.every.text == "1mo"
    assert job.spec.source.where == {"host": "h1"}


def test_where_combines_equalities_exclusions_and_regexes_as_a_job_can_hold_them() -> None:
    condition = AllOf(
        (
            AnyOf((TagTest("host", "==", "a"), TagTest("host", "==", "b"))),
            TagTest("if", "!=", "lo"),
            TagTest("if", "!=", "null0"),
            AnyOf((TagTest("dc", "=~", "^z"), TagTest("dc", "=~", "^g"))),
        )
    )
    assert where_from(condition) == {
        "host": ["a", "b"],
        "if": {"not": ["lo", "null0"]},
        "dc": {"regex": "(?:^z)|(?:^g)"},
    }


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        (AnyOf((TagTest("a", "==", "x"), TagTest("b", "==", "y"))), "an OR across tags"),
        (AllOf((TagTest("a", "==", "x"), TagTest("a", "=~", "y"))), "two conditions on tag 'a'"),
        (TagTest("a", "!~", "^x"), "no negated regex"),
        (AnyOf((TagTest("a", "==", "x"), TagTest("a", "=~", "y"))), "an OR of other tests"),
    ],
)
def test_where_refuses_what_a_job_cannot_hold(condition: AllOf | AnyOf | TagTest, reason: str) -> None:
    with pytest.raises(InexpressibleError, match=reason):
        where_from(condition)


@pytest.mark.parametrize("name", sorted(EXACT_JOBS))
def test_a_script_cut_anywhere_is_refused_or_translated_never_a_crash(name: str) -> None:
    path = CORPUS / name
    text = path.read_text()
    language: Language = path.parent.name  # type: ignore[assignment]
    for end in range(0, len(text), 3):
        result = import_inputs(language, [Input(str(path), text[:end], "task")], Options())
        assert len(result.refusals) + len(result.jobs) >= 1, text[:end]
        for refusal in result.refusals:
            assert refusal.file == str(path)
            assert refusal.reason


def test_statements_from_a_path_that_does_not_exist_are_refused(tmp_path: Path) -> None:
    from rollup.migrate import statement_arguments

    inputs, refusals = statement_arguments([str(tmp_path / "missing.iql")])
    assert inputs == []
    assert [r.reason for r in refusals] == ["neither a file nor a CREATE CONTINUOUS QUERY statement"]
