"""Estimation: linear for short gaps, like days for long ones, «по среднему» billing reads."""
from __future__ import annotations

from datetime import timedelta

import pytest
from vee_helpers import T0, iv, reg

from askue.headend.vee import estimate
from askue.headend.vee.model import MeterFacts
from askue.headend.vee.rules.common import MSK
from askue.headend.vee.thresholds import Thresholds


def test_gap_of_two_hours_is_linear_and_flagged_e():
    # intervals at 00:30 and 03:00: 04 slots missing = exactly 2 h
    series = [iv(1.0, T0 + timedelta(minutes=30)), iv(2.0, T0 + timedelta(minutes=180))]
    est = estimate.fill_gaps(series, Thresholds())
    assert [e.ts for e in est] == [T0 + timedelta(minutes=m) for m in (60, 90, 120, 150)]
    assert [e.value for e in est] == pytest.approx([1.2, 1.4, 1.6, 1.8])
    assert {(e.quality, e.method) for e in est} == {("E", "linear")}
    assert est[0].reasons == ["estimated", "method:linear"]


def test_longer_gap_uses_like_days_of_the_same_kind():
    day = timedelta(days=1)
    target_day = T0 + 9 * day  # 2026-11-10, a Tuesday
    history = []
    for d in range(1, 9):
        for m in range(30, 24 * 60 + 1, 30):
            t = target_day - d * day + timedelta(minutes=m)
            history.append(iv(0.1 * (1 + (t.astimezone(MSK).weekday() >= 5)), t))
    series = [iv(0.1, target_day + timedelta(minutes=30)), iv(0.1, target_day + timedelta(hours=6))]
    est = estimate.fill_gaps(series, Thresholds(), MSK, history)
    assert len(est) == 10 and {e.method for e in est} == {"like_days"}
    assert all(e.value == pytest.approx(0.1) for e in est)  # weekend values (0.2) not used


def test_longer_gap_without_history_is_left_open():
    series = [iv(0.1, T0 + timedelta(minutes=30)), iv(0.1, T0 + timedelta(hours=6))]
    assert estimate.fill_gaps(series, Thresholds()) == []


def test_billing_read_by_average():
    m = MeterFacts("m1")
    vals = [reg(1000.0 + 2.0 * d, T0 + timedelta(days=d)) for d in range(11)]  # 2 per day
    at = T0 + timedelta(days=15)
    e = estimate.billing_read(m, vals, at, Thresholds())
    assert e is not None and (e.quality, e.method) == ("S", "average")
    assert e.value == pytest.approx(1020.0 + 2.0 * 5)


def test_billing_read_needs_enough_history_and_wraps_at_capacity():
    m = MeterFacts("m1")
    short = [reg(1000.0 + d, T0 + timedelta(days=d)) for d in range(5)]
    assert estimate.billing_read(m, short, T0 + timedelta(days=10), Thresholds()) is None
    m5 = MeterFacts("m1", digits=4)
    vals = [reg(9980.0 + 2.0 * d, T0 + timedelta(days=d)) for d in range(8)]
    e = estimate.billing_read(m5, vals, T0 + timedelta(days=17), Thresholds())
    assert e is not None and e.value == pytest.approx((9994.0 + 20.0) % 10000)
