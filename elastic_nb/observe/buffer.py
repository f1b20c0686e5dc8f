"""A bounded, thread-safe stream of records, each numbered as it arrives.

The monitor's events and the cluster's scaling decisions are kept in one of these: a
long-running notebook must not grow them without bound, and readers that follow the stream
(live plots, subscribers) need a position that survives the oldest records being dropped.
A plain list index does not: after the first drop, index ``i`` names another record.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import islice
from typing import NamedTuple

from .._validation import check_int


class Batch(NamedTuple):
    """What :meth:`RingBuffer.since` hands a reader.

    Attributes
    ----------
    records : list
        The records still held from the reader's cursor on, oldest first.
    start : int
        Sequence number of ``records[0]`` (of the next record, when ``records`` is empty).
    cursor : int
        Where the reader goes on from: the sequence number of the next record to come.
    missed : int
        Records between the reader's cursor and ``start`` that were dropped before it read
        them (0 unless the reader fell behind by more than the buffer holds).
    """

    records: list
    start: int
    cursor: int
    missed: int


class RingBuffer:
    """The latest ``maxlen`` records appended, oldest first, each with a sequence number.

    Parameters
    ----------
    maxlen : int
        How many records are held; appending to a full buffer drops the oldest.
    records : iterable, optional
        Records to start with (the last ``maxlen`` of them are kept).

    State
    -----
    maxlen : int
        The bound.
    total : int
        Records ever appended. The next one gets sequence number ``total``; the oldest one
        held has :attr:`first` ``= total - len(self)``. Sequence numbers never repeat.

    Reading (``len``, iteration, indexing, ``==``) sees a consistent snapshot even while
    another thread appends. A reader that follows the stream keeps a cursor (a sequence
    number) and asks :meth:`since` for what came after it.
    """

    def __init__(self, maxlen: int, records=()):
        self.maxlen = check_int("maxlen", maxlen, minimum=1)
        self._records: deque = deque(maxlen=self.maxlen)
        self._lock = threading.Lock()
        self.total = 0
        self.extend(records)

    # ------------------------------------------------------------------ writing
    def append(self, record) -> int:
        """Add ``record`` (dropping the oldest if full); return its sequence number."""
        with self._lock:
            self._records.append(record)
            self.total += 1
            return self.total - 1

    def extend(self, records):
        for record in records:
            self.append(record)

    # ------------------------------------------------------------------ reading
    @property
    def first(self) -> int:
        """Sequence number of the oldest record held (``total`` when empty)."""
        with self._lock:
            return self.total - len(self._records)

    @property
    def dropped(self) -> int:
        """Records that left the buffer to make room."""
        return self.first

    def since(self, cursor: int) -> Batch:
        """The records from sequence number ``cursor`` on, and where to read on from.

        A cursor older than :attr:`first` gets what is still held and the count of records it
        missed; a cursor at or past :attr:`total` gets nothing. The cursor handed back is
        :attr:`total` at the time of the call. Costs the number of records returned.
        """
        cursor = check_int("cursor", cursor, minimum=0)
        with self._lock:
            first = self.total - len(self._records)
            start = max(cursor, first)
            wanted = max(0, self.total - start)
            records = list(islice(reversed(self._records), wanted))[::-1]
            start = min(start, self.total)
            return Batch(records, start, self.total, max(0, start - cursor))

    def find_last(self, predicate):
        """The newest record for which ``predicate(record)`` is true, or None."""
        with self._lock:
            for record in reversed(self._records):
                if predicate(record):
                    return record
        return None

    def snapshot(self) -> list:
        """The records held now, oldest first, as a list."""
        with self._lock:
            return list(self._records)

    def __len__(self):
        return len(self._records)

    def __iter__(self):
        return iter(self.snapshot())

    def __reversed__(self):
        return reversed(self.snapshot())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.snapshot()[index]
        with self._lock:
            return self._records[index]

    def __eq__(self, other):
        if isinstance(other, RingBuffer):
            return self.snapshot() == other.snapshot()
        if isinstance(other, list):
            return self.snapshot() == other
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"<RingBuffer {len(self)}/{self.maxlen} held, {self.total} appended>"
