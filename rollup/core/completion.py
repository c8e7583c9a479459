"""Which groups can no longer receive a series, from the order in which the source hands them over.

InfluxQL's ``GROUP BY *`` returns series sorted by their values of every tag key of the
measurement, keys in sorted order, a missing tag counting as "" (a source declares such an order
with :class:`~rollup.core.batch.SeriesOrder`). Call *leading* the first of those keys as long as
each is one of the job's group tags (without ``group_by``, every tag is). Series with the same
values of the leading tags then come one after the other, a *block*, and all series of a group lie
in one block: the one of the group's own values of those tags. So once a stream moves on from a
block, every group of that block is finished. Per interface (``agent_host``, ``ifName``) a block
is an interface, per ``agent_host`` a device; grouped by a tag that sorts after a tag outside the
groups, nothing leads, and no group is finished before the end of the read.

With several streams, a block must lie in one of them: they must be split on a leading tag. When
that does not hold, or a batch comes without a declared order, with another order than before, or
with a tag its order does not name, no further group is finished early.

Whatever a source declares, a result is never wrong: a series of a group already finished raises
:class:`SeriesOrderError`, and reading again without finishing groups early is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rollup.core.batch import Batch, SeriesKey, SeriesOrder

_NONE = np.zeros(0, dtype=np.int64)


class SeriesOrderError(Exception):
    """A series came for a group already finished: the source's order is not the one it declared."""


@dataclass(slots=True)
class _Stream:
    order: SeriesOrder
    leading: tuple[str, ...]
    known: frozenset[str]
    current: int = -1
    """The block the stream is in (-1: none yet)."""


class Completion:
    """Follows the series of a read, batch by batch, and tells which groups are finished."""

    def __init__(self, group_by: tuple[str, ...] | None, enabled: bool = True):
        self._group_tags = None if group_by is None else frozenset(group_by)
        self._enabled = enabled
        self._streams: dict[int, _Stream] = {}
        self._blocks: dict[tuple[int, tuple[str, ...]], int] = {}  # open blocks by stream and values
        self._open_names: dict[int, tuple[int, tuple[str, ...]]] = {}  # the key of each open block
        self._block_groups: list[list[int] | None] = []  # None once the block ended
        self._series_block = np.zeros(0, dtype=np.int64)
        self._group_block = np.zeros(0, dtype=np.int64)
        self._finished = np.zeros(0, dtype=bool)
        self.finished_groups = 0

    def observe(self, batch: Batch, series: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """The groups (ascending) whose last series came before ``batch`` in its stream.

        ``series`` and ``groups`` are the series and group ids of the batch's runs, in order."""
        if len(groups):
            self._grow_groups(int(groups.max()) + 1)
            if self.finished_groups and self._finished[groups].any():
                raise SeriesOrderError(self._late(batch, groups))
        if not self._enabled or not len(series):
            return _NONE
        stream = self._stream_of(batch)
        if stream is None:
            return self._disable()
        blocks = self._blocks_of(batch, series, stream)
        if blocks is None or not self._register(groups, blocks):
            return self._disable()
        visited = blocks[np.flatnonzero(np.concatenate([[True], blocks[1:] != blocks[:-1]]))].tolist()
        if stream.current >= 0 and visited[0] != stream.current:
            visited.insert(0, stream.current)
        stream.current = visited[-1]
        finished = [g for block in visited[:-1] for g in self._block_groups[block] or ()]
        for block in visited[:-1]:  # ended: should its values come again, it is a new block
            self._block_groups[block] = None
            name = self._open_names.pop(block, None)
            if name is not None:
                del self._blocks[name]
        if not finished:
            return _NONE
        done = np.unique(np.asarray(finished, dtype=np.int64))
        self._finished[done] = True
        self.finished_groups += len(done)
        return done

    # -- internals --------------------------------------------------------------------------------

    def _disable(self) -> np.ndarray:
        self._enabled = False
        return _NONE

    def _stream_of(self, batch: Batch) -> _Stream | None:
        """The stream of ``batch``, or None if its order does not let groups be finished early."""
        order = batch.order
        if order is None:
            return None
        stream = self._streams.get(batch.stream)
        if stream is not None:
            return stream if stream.order == order else None
        leading: list[str] = []
        for key in order.tag_keys:
            if self._group_tags is not None and key not in self._group_tags:
                break
            leading.append(key)
        if not leading or (order.split_on is not None and order.split_on not in leading):
            return None
        stream = _Stream(order, tuple(leading), frozenset(order.tag_keys))
        self._streams[batch.stream] = stream
        return stream

    def _blocks_of(self, batch: Batch, series: np.ndarray, stream: _Stream) -> np.ndarray | None:
        """The block of each run, or None if a series carries a tag that the order does not name."""
        top = int(series.max()) + 1
        if top > len(self._series_block):
            grown = np.full(max(top, 2 * len(self._series_block), 64), -1, dtype=np.int64)
            grown[: len(self._series_block)] = self._series_block
            self._series_block = grown
        blocks: np.ndarray = self._series_block[series]
        for i in np.flatnonzero(blocks < 0).tolist():
            block = self._block_of(batch.keys[i], batch.stream, stream)
            if block is None:
                return None
            self._series_block[series[i]] = blocks[i] = block
        return blocks

    def _block_of(self, key: SeriesKey, number: int, stream: _Stream) -> int | None:
        if not all(tag in stream.known for tag, _ in key):
            return None
        tags = dict(key)
        name = (number, tuple(tags.get(tag, "") for tag in stream.leading))
        block = self._blocks.get(name)
        if block is None:
            block = self._blocks[name] = len(self._block_groups)
            self._open_names[block] = name
            self._block_groups.append([])
        return block

    def _register(self, groups: np.ndarray, blocks: np.ndarray) -> bool:
        """Note the block of each group seen for the first time; False if a group shows up in
        another block than before (the order is not what was declared)."""
        known = self._group_block[groups]
        new = known < 0
        if (known[~new] != blocks[~new]).any():
            return False
        if new.any():
            pairs = dict(zip(groups[new].tolist(), blocks[new].tolist(), strict=True))
            for group, block in pairs.items():
                self._group_block[group] = block
                members = self._block_groups[block]
                if members is None:  # a series of an ended block: its groups are finished (refused)
                    return False
                members.append(group)
            again = self._group_block[groups[new]]
            if (again != blocks[new]).any():  # one new group in two blocks of this batch
                return False
        return True

    def _grow_groups(self, size: int) -> None:
        if size > len(self._finished):
            capacity = max(size, 2 * len(self._finished), 64)
            finished = np.zeros(capacity, dtype=bool)
            finished[: len(self._finished)] = self._finished
            block = np.full(capacity, -1, dtype=np.int64)
            block[: len(self._group_block)] = self._group_block
            self._finished, self._group_block = finished, block

    def _late(self, batch: Batch, groups: np.ndarray) -> str:
        late = int(np.flatnonzero(self._finished[groups])[0])
        tags = ",".join(f"{k}={v}" for k, v in batch.keys[late])
        return (
            f"series {tags or '(no tags)'} came after its group was finished: the source did not "
            "hand series over in the order it declared"
        )
