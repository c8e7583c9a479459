"""``rollup import``: Kapacitor TICKscripts, InfluxDB 1.x continuous queries and InfluxDB 2 Flux
tasks translated into job files and the sink profiles they need (docs/migrating.md).

How the modules fit::

    tickscript.py  influxql.py  flux.py     parse each language (lexer.py: shared tokens)
          │             │          │
    kapacitor.py     cq.py     fluxtask.py  what it computes, as plans (plan.py; where.py for
          └─────────────┼──────────┘        tag conditions, functions.py for aggregates)
                     emit.py                plans → job TOML (--exact or recommended) + sink profiles,
                        │                   every job validated by rollup.jobs.loader.load_job
                   importer.py              inputs → ImportResult (jobs, sinks, refusals)
          output.py  live.py  check.py      files on disk; a live InfluxDB's CQs; --check

Anything that cannot be translated is a :class:`Refusal` naming the file, the line, the node and
why — never a job that silently computes something else.
"""

from rollup.migrate.check import CheckReport, Difference, check_jobs
from rollup.migrate.emit import ImportedJob, Options, SinkProfile
from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.importer import ImportResult, Input, import_inputs, read_files, statement_arguments
from rollup.migrate.live import continuous_queries
from rollup.migrate.output import Written, render, write_files

__all__ = [
    "CheckReport",
    "Difference",
    "ImportResult",
    "ImportedJob",
    "Input",
    "Options",
    "Refusal",
    "RefusalError",
    "SinkProfile",
    "Written",
    "check_jobs",
    "continuous_queries",
    "import_inputs",
    "read_files",
    "render",
    "statement_arguments",
    "write_files",
]
