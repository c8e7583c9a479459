"""Writers of aggregates. Every sink is idempotent: writing the same rows twice stores them once."""
