"""Reading ahead in threads: every item once, in each iterator's order, errors raised, threads stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rollup.errors import SourceError
from rollup.sources.prefetch import read_ahead


def numbers(start: int, count: int, delay: float = 0.0) -> Iterator[int]:
    for i in range(start, start + count):
        if delay:
            time.sleep(delay)
        yield i


def test_one_iterator_keeps_its_order() -> None:
    assert list(read_ahead([numbers(0, 100)], depth=3)) == list(range(100))


def test_several_iterators_give_every_item_once_each_in_its_order() -> None:
    items = list(read_ahead([numbers(0, 50, 0.001), numbers(100, 30), numbers(200, 0)], depth=2))
    assert sorted(items) == list(range(50)) + list(range(100, 130))
    assert [i for i in items if i < 100] == list(range(50))
    assert [i for i in items if i >= 100] == list(range(100, 130))


def test_an_error_comes_after_the_items_before_it_and_stops_the_others() -> None:
    stopped = threading.Event()

    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise SourceError("the stream broke off")

    def endless() -> Iterator[int]:
        try:
            while True:
                time.sleep(0.001)
                yield -1
        finally:
            stopped.set()

    received: list[int] = []
    reader = read_ahead([failing(), endless()], depth=1)
    with pytest.raises(SourceError, match="broke off"):
        received.extend(reader)
    assert [i for i in received if i > 0] == [1, 2]
    assert stopped.wait(5)


def test_a_reader_that_stops_early_stops_and_closes_the_iterators() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    reader = read_ahead([endless()], depth=4)
    assert [next(reader) for _ in range(10)] == list(range(10))
    reader.close()
    assert closed.wait(5)
    assert not [t for t in threading.enumerate() if t.name.startswith("rollup-read")]


def test_memory_is_bounded_by_the_depth() -> None:
    produced: list[int] = []

    def counting() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    reader = read_ahead([counting()], depth=5)
    next(reader)
    time.sleep(0.2)
    assert len(produced) <= 1 + 5 + 1  # the one taken, the queue, one waiting to be put
    reader.close()


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(read_ahead([numbers(0, 1)], depth=0))
