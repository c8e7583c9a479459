"""Plug-in aggregates in a plain module, found through the settings rather than an entry point:

    # config/rollup.toml
    plugins = ["traffic_stats"]      # with examples/plugins on PYTHONPATH

Two ways of writing the mean of a window, the built-in ``mean`` written again as a user would:

* ``plain_mean`` streams: it keeps a sum and a count per (group, window), and handles every
  (group, window) of a batch in one numpy call;
* ``window_mean`` gets every value of a (group, window) at once: the simplest to write, and its
  values are kept until the group is done (within the job's ``values_memory``).
"""

from __future__ import annotations

import numpy as np

from rollup.plugins import Chunks, Result, Results, State, StreamingAggregate, Values, WindowAggregate


class PlainMean(StreamingAggregate):
    name = "plain_mean"
    needs = ()  # values only

    def update(self, chunks: Chunks) -> State:
        # One sum and one count per chunk; chunk i is values[starts[i] : starts[i] + counts[i]].
        return np.add.reduceat(chunks.values, chunks.starts), chunks.counts.astype(np.float64)

    def merge(self, old: State, new: State) -> State:
        return old[0] + new[0], old[1] + new[1]

    def result(self, state: State) -> Results:
        total, count = state
        return total / count


class WindowMean(WindowAggregate):
    name = "window_mean"
    needs = ()

    def compute(self, window: Values) -> Result:
        return float(np.mean(window.values))
