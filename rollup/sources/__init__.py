"""Readers of raw points: each turns a query for ``[start, end)`` into a stream of core batches."""
