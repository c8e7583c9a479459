"""rollup: batch rollups of time-series counters from an InfluxDB buffer to long-term storage."""
