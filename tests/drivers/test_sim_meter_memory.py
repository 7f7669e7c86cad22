"""The protocol-independent memory faults of SimMeter, which every protocol simulator serves:
a clock that keeps its history and can lose its time, journals that overflow, a profile
ring that overwrites its oldest periods, supply cuts and an opened case."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from askue.drivers.sim.meter import MSK, Faults, SimMeter

NOW = datetime(2026, 11, 18, 10, 7, 30, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def test_a_clock_step_does_not_rewrite_the_past():
    clock = Clock(NOW)
    m = SimMeter(id="a", serial="1", now=clock)
    before = m.clock(NOW - timedelta(hours=1))
    m.set_clock(NOW + timedelta(minutes=3), correction=True)
    assert m.clock(NOW - timedelta(hours=1)) == before  # a period stamped then keeps its time
    assert m.clock() == NOW + timedelta(minutes=3)
    entry = m.journal[-1]
    assert (entry.journal_obis, entry.code, entry.before) == ("0.0.99.98.3.255", 68, NOW)


def test_a_reset_clock_restarts_from_2000_and_forgets_earlier_steps():
    clock = Clock(NOW)
    reset = NOW - timedelta(hours=2)
    m = SimMeter(id="b", serial="2", now=clock, faults=Faults(clock_reset_at=reset))
    assert m.clock(reset - timedelta(seconds=1)) == reset - timedelta(seconds=1)
    assert m.clock(reset + timedelta(hours=1)) == datetime(2000, 1, 1, 1, 0, tzinfo=MSK)
    events = m.events()
    assert [(e.journal_obis, e.code) for e in events][-1] == ("0.0.99.98.7.255", 5)  # clock error
    m.set_clock(NOW)
    assert m.clock() == NOW


def test_journals_keep_their_newest_entries():
    clock = Clock(NOW)
    m = SimMeter(id="c", serial="3", now=clock, journal_capacity=4,
                 faults=Faults(power_cuts_at=NOW - timedelta(hours=1), power_cuts=3, power_cut_s=30,
                               power_cut_every_s=60, cover_open_at=NOW - timedelta(minutes=20), cover_open_s=60))
    power = [e for e in m.events() if e.journal_obis == "0.0.99.98.2.255"]
    assert len(power) == 4 and [e.code for e in power] == [1, 2, 1, 2]  # power-on at epoch and 2 cuts gone
    assert power[-1].at == NOW - timedelta(hours=1) + timedelta(seconds=150)
    cover = [e for e in m.events() if e.journal_obis == "0.0.99.98.4.255"]
    assert [(e.code, e.at, e.ended) for e in cover] == [
        (4, NOW - timedelta(minutes=20), NOW - timedelta(minutes=19))]
    assert not m.powered(NOW - timedelta(hours=1) + timedelta(seconds=10))
    assert m.powered(NOW - timedelta(hours=1) + timedelta(seconds=40))


def test_a_profile_ring_overwrites_its_oldest_periods():
    clock = Clock(NOW)
    m = SimMeter(id="d", serial="4", now=clock, history_days=3, profile_capacity=10)
    rows = m.profile(NOW - timedelta(days=3), NOW)
    assert len(rows) == 10 and rows[-1][0] == NOW.replace(minute=0, second=0)
    assert rows[0][0] == rows[-1][0] - timedelta(minutes=30 * 9)
