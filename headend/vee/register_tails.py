"""Each register channel's latest stored reading, remembered by the process that stored it.

The VEE batch hook needs, for every register channel of a batch, the stored reading just
before the first new one (reverse_reading compares against it). In steady state that is the
reading this process stored itself one poll ago, and the database lookup for it (one index
descent per channel, the largest single cost of an ingest batch) finds nothing to report.

A meter's memory is trusted only while it is provably current: each entry carries the mark of
the transaction that wrote it, and the database keeps, per meter, the mark of the transaction
that changed its register readings before the current one (`meter_register_writes`,
migration 0610).
Equal means nobody else wrote, corrected or deleted the meter's registers in between; anything
else (another worker, a typed reading, an exchange act, a rollback of the writing transaction)
and the meter is looked up in the database as before.

Memory stays small: a meter's channels are a shared tuple of OBIS codes (meters of one kind
share it) and an array of doubles; at most `capacity` meters are kept, the least recently
written dropped first.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime

# About 500 bytes a meter with twenty registers (measured): 100,000 meters take some 50 MB.
CAPACITY = 100_000


@dataclass(slots=True)
class Tail:
    """What a transaction (`mark`) left stored for one meter's register channels: for each
    channel in `layout`, its latest reading's value; every such reading is at or before `newest`."""

    mark: int
    newest: datetime
    layout: tuple[tuple[str, ...], dict[str, int]]
    values: array


@dataclass
class RegisterTails:
    capacity: int = CAPACITY
    _meters: dict[int, Tail] = field(default_factory=dict)
    _layouts: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, int]]] = field(default_factory=dict)
    _met: dict[int, None] = field(default_factory=dict)  # meters met before, remembered or not

    def current(self, meter_id: int, prev_mark: int | None) -> Tail | None:
        """The meter's memory if the transaction before the caller's is the one that wrote it."""
        t = self._meters.get(meter_id)
        return t if t is not None and prev_mark is not None and t.mark == prev_mark else None

    def remember(self, meter_id: int, mark: int, newest: datetime, obises: list[str], values: list[float]) -> None:
        """What the transaction marked `mark` leaves stored for the meter: the latest reading's
        value of each channel in `obises` (replaces what was remembered)."""
        self._meters.pop(meter_id, None)
        if not obises:
            return
        key = tuple(obises)  # as the batch listed them: meters of a kind list theirs alike
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) > self.capacity:  # odd channel sets from many meters: start over
                self._layouts.clear()
            layout = self._layouts[key] = (key, {o: i for i, o in enumerate(key)})
        self._meters[meter_id] = Tail(mark, newest, layout, array("d", values))
        while len(self._meters) > self.capacity:
            del self._meters[next(iter(self._meters))]

    def met(self, meter_id: int) -> bool:
        """Whether the meter was met before: a memory is built from the second time on (most
        meters met once, as in a midnight burst of first contacts, do not come again soon)."""
        return meter_id in self._met or meter_id in self._meters

    def meet(self, meter_id: int) -> None:
        self._met[meter_id] = None
        if len(self._met) > self.capacity:
            del self._met[next(iter(self._met))]

    def drop(self, meter_id: int) -> None:
        self._meters.pop(meter_id, None)

    def __len__(self) -> int:
        return len(self._meters)


# The process's memory: every writer in the process goes through the same hook.
TAILS = RegisterTails()
