"""What a batch is: decoded messages waiting for one transaction, and what it inserted."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from askue.contract import DataMessage, Health, State

KIND_TABLE = {
    "register": "register_readings",
    "interval": "intervals",
    "instant": "instant_values",
    "event": "meter_events",
}


@dataclass(frozen=True, slots=True)
class InsertedRow:
    meter_id: int
    obis: str
    kind: str  # register | interval | instant | event
    ts: datetime
    received_at: datetime
    value: float
    period_s: int | None


@dataclass(frozen=True, slots=True)
class RepeatedRow:
    """A register/instant value delivered again with the same meter time but a later receive
    time (a new poll, not a QoS 1 duplicate): the natural key keeps the first, VEE judges the
    repeat (frozen_value: the meter's clock or register stopped)."""

    meter_id: int
    obis: str
    kind: str
    ts: datetime
    received_at: datetime
    value: float
    first_received_at: datetime
    first_value: float


@dataclass
class InsertedBatch:
    """Rows this batch newly inserted (duplicates of stored rows are not listed).

    Passed to every BATCH_HOOK inside the ingest transaction.
    """

    rows: list[InsertedRow] = field(default_factory=list)
    repeated: list[RepeatedRow] = field(default_factory=list)
    meter_ids: set[int] = field(default_factory=set)  # every meter the batch touched
    gateway_ids: set[str] = field(default_factory=set)

    def of(self, table_or_kind: str) -> list[InsertedRow]:
        kind = next((k for k, t in KIND_TABLE.items() if t == table_or_kind), table_or_kind)
        return [r for r in self.rows if r.kind == kind]

    @property
    def tables(self) -> dict[str, list[InsertedRow]]:
        return {t: self.of(k) for k, t in KIND_TABLE.items()}


@dataclass
class Pending:
    """Messages decoded but not yet committed; `acks` run only after the commit."""

    data: list[DataMessage] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    healths: list[Health] = field(default_factory=list)
    dead: list[tuple[str, str | None, bytes, str]] = field(default_factory=list)  # topic, gw, payload, reason
    seen: dict[str, datetime] = field(default_factory=dict)  # gateway -> last message time
    acks: list[Callable[[], None]] = field(default_factory=list)
    n_values: int = 0

    def extend(self, other: Pending) -> None:
        self.data += other.data
        self.states += other.states
        self.healths += other.healths
        self.dead += other.dead
        for gw, t in other.seen.items():
            if gw not in self.seen or t > self.seen[gw]:
                self.seen[gw] = t
        self.acks += other.acks
        self.n_values += other.n_values

    def __len__(self) -> int:
        return len(self.data) + len(self.states) + len(self.healths) + len(self.dead)
