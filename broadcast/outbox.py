"""What a slow viewer has not been sent yet. Pure: no sockets, no clock of its own.

A viewer whose transport takes every write never has an outbox entry: frames go straight to
the socket from the broadcast loop. Only a viewer whose send would wait gets frames parked
here, in order; a conflatable frame (``key`` set, e.g. the stock of one drop) replaces the
parked frame with the same key in place, so the viewer converges to the latest counters and
never to a stale one, and the queue of a stalled viewer does not grow with stock ticks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import count
from typing import Generic, Protocol, TypeVar

_ids = count()


class Parkable(Protocol):
    @property
    def payload(self) -> bytes: ...

    @property
    def key(self) -> str | None: ...


M = TypeVar("M", bound=Parkable)


@dataclass
class Outbox(Generic[M]):
    """Parked frames of one viewer. ``limit`` bounds the bytes parked: past it the viewer is
    over its bound and the hub closes it (it resumes from its last ``seq``)."""

    limit: int
    _frames: OrderedDict[object, M] = field(default_factory=OrderedDict)
    _size: int = 0
    replaced: int = 0

    def park(self, frame: M) -> bool:
        """Queue ``frame`` (replacing a parked one with the same key); returns False once the
        outbox is over its limit."""
        key = frame.key
        slot: object = ("k", key) if key is not None else next(_ids)
        previous = self._frames.get(slot)
        if previous is not None:
            self._size -= len(previous.payload)
            self._frames[slot] = frame  # keeps its place: a stock update does not jump the queue
            self.replaced += 1
        else:
            self._frames[slot] = frame
        self._size += len(frame.payload)
        return self._size <= self.limit

    def take(self) -> M | None:
        """The oldest parked frame, or None."""
        if not self._frames:
            return None
        _, frame = self._frames.popitem(last=False)
        self._size -= len(frame.payload)
        return frame

    def put_back(self, frame: M) -> None:
        """Return a frame that could not be written after all to the head of the queue."""
        key = frame.key
        slot: object = ("k", key) if key is not None else next(_ids)
        if slot in self._frames:  # a newer frame with that key arrived meanwhile: it wins
            return
        self._frames[slot] = frame
        self._frames.move_to_end(slot, last=False)
        self._size += len(frame.payload)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._frames)

    def __bool__(self) -> bool:
        return bool(self._frames)
