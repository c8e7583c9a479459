"""Reading ahead: source iterators run in threads and hand their items over through a bounded queue.

While the caller rolls up one batch, the threads receive and parse the next ones (the server keeps
producing instead of waiting for us). The queue is bounded, so at most ``depth`` items wait at any
time whatever the size of the result: memory stays flat. With several iterators (one query per
subset of the series, see :class:`~rollup.sources.influxdb.InfluxQLSource`), their items come out
interleaved, each iterator's in its own order.

The first error of any iterator is raised to the caller (after the items it had already handed
over); the others are then stopped. A caller that stops early (closes the generator, or raises)
stops the threads too: each one closes its iterator (releasing its response) in its own thread as
soon as it wakes up, at the latest when its next item arrives.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

_POLL = 0.1  # seconds between checks of the stop flag while a thread waits for room in the queue
_JOIN = 2.0  # seconds to wait for each thread once the caller is done (a stopped thread ends itself)


class _Done:
    """Put by a thread when its iterator is exhausted (or failed: ``error``)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def read_ahead(iterators: Sequence[Iterator[T]], depth: int, name: str = "rollup-read") -> Iterator[T]:
    """The items of ``iterators``, each read in a thread of its own, at most ``depth`` waiting."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if not iterators:
        return
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work(iterator: Iterator[T]) -> None:
        error: BaseException | None = None
        try:
            for item in iterator:
                if not put(item):
                    break
        except BaseException as exc:  # handed to the caller, raised there
            error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        put(_Done(error))

    threads = [
        threading.Thread(target=work, args=(iterator,), name=f"{name}-{i}", daemon=True)
        for i, iterator in enumerate(iterators)
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = handoff.get()
            if isinstance(item, _Done):
                running -= 1
                if item.error is not None:
                    raise item.error
                continue
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        for thread in threads:
            thread.join(_JOIN)
