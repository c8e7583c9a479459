"""``rollup serve``: the scheduler that triggers passes, its HTTP endpoint (health, readiness,
Prometheus metrics) and its signal handling. What is done is remembered in the ledger only."""
