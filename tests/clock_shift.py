"""Shift the clock of every Python process of a test run: ``TEST_CLOCK_SHIFT=+400d``.

``scripts/test.sh --clock-shift +400d`` sets the variable and ``scripts/install-deps.sh
--for-tests`` installs this module in the virtualenv with a ``.pth`` file that imports it at
start-up, so pytest and every ``python -m rollup`` it starts (and the Python servers of the tests)
see the wall clock (``time.time``, ``datetime.now``, ``date.today`` …) moved by the shift, still
ticking. Monotonic clocks, sleeps and timed waits are left alone, and the servers that are not
Python (influxd, PostgreSQL) keep the real time: a test that assumes both clocks agree fails, as it
should. time-machine does the shifting: libfaketime fakes the monotonic clock too, and Python's
timed waits (``threading.Event.wait``) then block for the length of the shift.

Without the variable this module does nothing.
"""

from __future__ import annotations

import os
import re
import time

VARIABLE = "TEST_CLOCK_SHIFT"
_SHIFT = re.compile(r"([+-])(\d+)([dhms])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_shift(text: str) -> int:
    """``+400d``, ``-400d``, ``+36h`` … as signed seconds; ValueError otherwise."""
    match = _SHIFT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{VARIABLE}={text!r}: expected a sign, a number and d, h, m or s (e.g. +400d)")
    sign, number, unit = match.groups()
    return (1 if sign == "+" else -1) * int(number) * _SECONDS[unit]


def activate() -> None:
    text = os.environ.get(VARIABLE)
    if not text:
        return
    import time_machine  # a test dependency: only needed when the clock is shifted

    time_machine.travel(time.time() + parse_shift(text), tick=True).start()
    # time-machine's clock ticks from its first reading, not from start(): read it at once, so
    # that every process shows the real time plus the shift, not minus its own start-up time
    # (processes started at different moments would disagree by a fraction of a second).
    time.time()


activate()
