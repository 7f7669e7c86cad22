"""What a batch is: decoded messages waiting for one transaction (what it stored is
`askue.headend.storage.values.InsertedBatch`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from askue.contract import DataMessage, Health, State


@dataclass
class Pending:
    """Messages decoded but not yet committed; `acks` run only after the commit."""

    data: list[DataMessage] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    healths: list[Health] = field(default_factory=list)
    dead: list[tuple[str, str | None, bytes, str]] = field(default_factory=list)  # topic, gw, payload, reason
    seen: dict[str, datetime] = field(default_factory=dict)  # gateway -> last message time
    acks: list[Callable[[], None]] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)  # QoS 1 packet ids, acknowledged in one write
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
        self.mids += other.mids
        self.n_values += other.n_values

    def __len__(self) -> int:
        return len(self.data) + len(self.states) + len(self.healths) + len(self.dead)
