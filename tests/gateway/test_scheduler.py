"""Scheduler bookkeeping: priorities, due times, one job per meter at a time."""
from __future__ import annotations

from askue.gateway.scheduler import PRIO_COMMAND, PRIORITY, Job, Scheduler, next_due, stagger


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_priority_then_due_time():
    clock = Clock()
    s = Scheduler(clock)
    s.add(Job("m1", "instant", PRIORITY["instant"], due=clock.t - 5))
    s.add(Job("m2", "interval", PRIORITY["interval"], due=clock.t - 1))
    s.add(Job("m3", "register", PRIORITY["register"], due=clock.t - 2))
    s.add(Job("m4", "register", PRIORITY["register"], due=clock.t - 3))
    s.add(Job("m5", "read_clock", PRIO_COMMAND, due=clock.t))
    order = []
    while (j := s.take()) is not None:
        order.append(j.meter_id)
        s.release(j.meter_id)
    assert order == ["m5", "m4", "m3", "m2", "m1"], "commands > registers (oldest first) > profiles > instant"


def test_future_jobs_wait_and_busy_meters_are_skipped():
    clock = Clock()
    s = Scheduler(clock)
    s.add(Job("m1", "register", 1, due=clock.t + 10))
    assert s.take() is None and s.seconds_to_next() == 10
    clock.t += 10
    s.add(Job("m1", "read_clock", PRIO_COMMAND, due=clock.t))
    s.add(Job("m2", "instant", 3, due=clock.t))
    first = s.take()
    assert (first.meter_id, first.kind) == ("m1", "read_clock")
    second = s.take()
    assert second.meter_id == "m2", "m1 is busy: its register poll waits, another meter goes"
    assert s.take() is None
    s.release("m1")
    third = s.take()
    assert (third.meter_id, third.kind) == ("m1", "register")


def test_remove_meter_and_drain():
    s = Scheduler(Clock())
    for m in ("a", "b", "a"):
        s.add(Job(m, "register", 1))
    assert len(s.remove_meter("a")) == 2 and len(s) == 1
    assert [j.meter_id for j in s.drain()] == ["b"] and len(s) == 0


def test_next_due_is_aligned_and_staggered():
    t = 1_700_000_123.4
    due = next_due(t, 900, "m1")
    base = (t // 900 + 1) * 900
    assert base <= due < base + 60 and due == base + stagger("m1", 900)
    assert stagger("m1", 900) == stagger("m1", 900) and 0 <= stagger("m2", 1) <= 0.2
    assert next_due(t, 1800, "m1", settle=30) >= (t // 1800 + 1) * 1800 + 30
