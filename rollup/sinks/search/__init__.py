"""What the Elasticsearch and OpenSearch sinks share: everything but the client library.

* ``profile`` — the sink profile keys (URLs, authentication, TLS, index pattern, batching, retries);
* ``index_names`` — index names with a date suffix, the template's index pattern and priority;
* ``documents`` — one document per output row, with a deterministic ``_id``;
* ``template`` — the composable index template (mappings from the job's output schema);
* ``bulk`` — NDJSON batches by count and size, and reading the per-item results;
* ``client`` — the few calls a sink makes, with the two errors a client may raise;
* ``sink`` — the sink itself: template on first use, batches with retries, errors as SinkError.

``rollup.sinks.elasticsearch`` and ``rollup.sinks.opensearch`` only add the client.
"""
