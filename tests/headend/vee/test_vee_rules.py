"""One test group per rule, on its boundary cases."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from vee_helpers import A_PLUS, PROFILE, T0, ctx, iv, kinds, reg  # noqa: F401

from askue.headend.vee import engine
from askue.headend.vee.model import MeterFacts, MeterValue
from askue.headend.vee.rules import (
    clock_drift,
    frozen_value,
    interval_gap,
    no_contact,
    reverse_reading,
    spike,
    sum_mismatch,
    tamper,
    verification,
    voltage,
    zero_consumption,
)
from askue.headend.vee.rules.common import MSK
from askue.headend.vee.thresholds import ThresholdConfig


# ---- reverse_reading -------------------------------------------------------------------
def test_rollover_on_five_digits_is_consumption_not_reverse():
    m = MeterFacts("m1", digits=5)
    res = reverse_reading.check(m, [reg(99998.1, T0), reg(2.3, T0 + timedelta(hours=1))], ctx())
    assert res.findings == []
    assert [mk.reason for mk in res.marks] == ["rollover"]


def test_same_drop_without_known_digits_is_reverse():
    m = MeterFacts("m1", digits=None)
    res = reverse_reading.check(m, [reg(99998.1, T0), reg(2.3, T0 + timedelta(hours=1))], ctx())
    assert kinds(res) == ["reverse_reading"]
    assert res.findings[0].evidence["previous"] == 99998.1


def test_reverse_near_capacity_is_not_rollover():
    m = MeterFacts("m1", digits=5)
    res = reverse_reading.check(m, [reg(99990.0, T0), reg(99940.0, T0 + timedelta(hours=1))], ctx())
    assert kinds(res) == ["reverse_reading"]
    assert res.findings[0].evidence["drop"] == pytest.approx(50.0)


def test_rollover_share_boundary_exact():
    m = MeterFacts("m1", digits=2)  # capacity 100, share 0.1 → forward step up to 10 is a rollover
    at_limit = reverse_reading.check(m, [reg(95.0, T0), reg(5.0, T0 + timedelta(hours=1))], ctx())
    beyond = reverse_reading.check(m, [reg(95.0, T0), reg(5.01, T0 + timedelta(hours=1))], ctx())
    assert at_limit.findings == [] and kinds(beyond) == ["reverse_reading"]


def test_drop_within_tolerance_is_jitter():
    m = MeterFacts("m1")
    vals = [reg(100.0, T0), reg(99.99, T0 + timedelta(hours=1))]
    assert reverse_reading.check(m, vals, ctx(reverse_tolerance=0.01)).findings == []
    assert kinds(reverse_reading.check(m, vals, ctx(reverse_tolerance=0.0))) == ["reverse_reading"]


def test_exchange_under_same_id_starts_new_baseline():
    reset = T0 + timedelta(minutes=30)
    m = MeterFacts("m1", baseline_resets=(reset,))
    res = reverse_reading.check(m, [reg(5000.0, T0), reg(1.0, T0 + timedelta(hours=1)),
                                     reg(1.5, T0 + timedelta(hours=2))], ctx())
    assert res.findings == [] and [mk.reason for mk in res.marks] == ["meter_exchange"]


def test_values_before_installation_are_not_a_baseline():
    m = MeterFacts("new", installed_at=T0 + timedelta(hours=1))
    vals = [reg(5000.0, T0, meter="new"), reg(1.0, T0 + timedelta(hours=2), meter="new")]
    assert reverse_reading.check(m, vals, ctx()).findings == []


def test_single_glitch_reverse_raises_once_and_recovery_is_clean():
    m = MeterFacts("m1")
    vals = [reg(100.0, T0), reg(50.0, T0 + timedelta(hours=1)), reg(101.0, T0 + timedelta(hours=2))]
    assert kinds(reverse_reading.check(m, vals, ctx())) == ["reverse_reading"]


def test_persistent_step_down_raises_once():
    m = MeterFacts("m1")
    vals = [reg(100.0, T0)] + [reg(50.0 + i, T0 + timedelta(hours=1 + i)) for i in range(5)]
    assert kinds(reverse_reading.check(m, vals, ctx())) == ["reverse_reading"]


def test_history_only_values_are_not_judged():
    m = MeterFacts("m1")
    vals = [reg(100.0, T0, new=False), reg(50.0, T0 + timedelta(hours=1), new=False)]
    assert reverse_reading.check(m, vals, ctx()).findings == []


# ---- spike / over_limit -----------------------------------------------------------------
def _daily(values_per_day: list[float], start: float = 1000.0) -> list[MeterValue]:
    out, v = [reg(start, T0)], start
    for i, q in enumerate(values_per_day):
        v += q
        out.append(reg(v, T0 + timedelta(days=i + 1)))
    return out


def test_spike_exactly_five_times_median_is_not_a_spike():
    m = MeterFacts("m1")
    vals = _daily([10.0] * 14 + [50.0])
    assert spike.check(m, vals, ctx()).findings == []
    vals = _daily([10.0] * 14 + [50.01])
    res = spike.check(m, vals, ctx())
    assert kinds(res) == ["spike"] and res.findings[0].evidence["median"] == 10.0


def test_spike_below_floor_is_ignored_and_short_history_is_not_judged():
    m = MeterFacts("m1")
    assert spike.check(m, _daily([0.1] * 14 + [4.0]), ctx()).findings == []  # 40× but under 5 kWh
    assert spike.check(m, _daily([10.0] * 6 + [100.0]), ctx()).findings == []  # 6 days < 7
    assert kinds(spike.check(m, _daily([10.0] * 7 + [100.0]), ctx())) == ["spike"]


def test_over_limit_day_and_interval():
    m = MeterFacts("m1")
    assert kinds(spike.check(m, _daily([10.0, 20.0]), ctx(daily_limit=15.0))) == ["over_limit"]
    assert spike.check(m, _daily([10.0, 15.0]), ctx(daily_limit=15.0)).findings == []
    ivs = [iv(0.5, T0 + timedelta(minutes=30 * i)) for i in range(1, 4)]
    assert kinds(spike.check(m, ivs, ctx(interval_limit=0.4))) == ["over_limit"] * 3


def test_interval_far_above_neighbours():
    m = MeterFacts("m1")
    vals = [iv(0.3, T0 + timedelta(minutes=30 * i)) for i in range(1, 10)]
    vals[4] = iv(3.5, vals[4].ts)
    res = spike.check(m, vals, ctx())
    assert kinds(res) == ["spike"] and res.findings[0].ts == vals[4].ts
    vals[4] = iv(3.0, vals[4].ts)  # exactly 10× the median
    assert spike.check(m, vals, ctx()).findings == []


# ---- zero_consumption --------------------------------------------------------------------
def test_zero_consumption_seven_days_boundary():
    m = MeterFacts("m1")
    base = [reg(100.0, T0), reg(110.0, T0 + timedelta(days=1))]
    flat6 = base + [reg(110.0, T0 + timedelta(days=1 + d)) for d in range(1, 7)]
    flat7 = base + [reg(110.0, T0 + timedelta(days=1 + d)) for d in range(1, 8)]
    assert zero_consumption.check(m, flat6, ctx()).findings == []
    res = zero_consumption.check(m, flat7, ctx())
    assert kinds(res) == ["zero_consumption"] and res.findings[0].evidence["days"] == 7.0


def test_zero_consumption_needs_earlier_consumption_and_clears_on_movement():
    m = MeterFacts("m1")
    never = [reg(0.0, T0 + timedelta(days=d)) for d in range(10)]
    assert zero_consumption.check(m, never, ctx()).findings == []
    moved = [reg(100.0, T0)] + [reg(110.0, T0 + timedelta(days=d)) for d in range(1, 10)] + \
        [reg(111.0, T0 + timedelta(days=10))]
    res = zero_consumption.check(m, moved, ctx())
    assert res.findings == [] and res.clears and res.clears[0].key == "zero_consumption:m1:"


def test_zero_consumption_not_for_decommissioned():
    m = MeterFacts("m1", decommissioned=True)
    vals = [reg(100.0, T0)] + [reg(110.0, T0 + timedelta(days=d)) for d in range(1, 10)]
    assert zero_consumption.check(m, vals, ctx()).findings == []


# ---- interval_gap ----------------------------------------------------------------------
def test_gap_counts_missing_intervals_and_ignores_contiguous():
    m = MeterFacts("m1")
    ts = [T0 + timedelta(minutes=30 * i) for i in (1, 2, 3, 6, 7)]
    res = interval_gap.check(m, [iv(0.2, t) for t in ts], ctx())
    assert kinds(res) == ["interval_gap"]
    assert res.findings[0].evidence["missing"] == 2
    assert res.findings[0].evidence["first_missing"] == T0 + timedelta(minutes=120)
    contiguous = [iv(0.2, T0 + timedelta(minutes=30 * i)) for i in range(1, 6)]
    assert interval_gap.check(m, contiguous, ctx()).findings == []


def test_duplicate_and_wrong_size_are_value_reasons_not_events():
    m = MeterFacts("m1")
    vals = [iv(0.2, T0 + timedelta(minutes=30 * i)) for i in range(1, 5)]
    vals.append(iv(0.9, vals[1].ts))  # same end, other value
    vals.append(iv(0.4, T0 + timedelta(minutes=150), period=3600))  # 1 h among 30 min
    vals.append(iv(0.1, T0 + timedelta(minutes=185)))  # off the grid
    res = interval_gap.check(m, vals, ctx())
    reasons = sorted(mk.reason for mk in res.marks)
    assert reasons == ["duplicate", "wrong_period", "wrong_period"]
    assert all(not f.event for f in res.findings if f.kind != "interval_gap")
    exact_replay = [iv(0.2, T0 + timedelta(minutes=30)), iv(0.2, T0 + timedelta(minutes=30))]
    assert interval_gap.check(m, exact_replay, ctx()).marks == []


# ---- sum_mismatch -------------------------------------------------------------------------
def _day_of_intervals(q: float) -> list[MeterValue]:
    return [iv(q / 48, T0 + timedelta(minutes=30 * i)) for i in range(1, 49)]


def test_sum_mismatch_tolerance_boundary():
    m = MeterFacts("m1")
    nxt = T0 + timedelta(days=1)
    ok = [reg(1000.0, T0), reg(1010.21, nxt)] + _day_of_intervals(10.0)  # 2 % + 0.01 = 0.21 exactly
    bad = [reg(1000.0, T0), reg(1010.22, nxt)] + _day_of_intervals(10.0)
    assert sum_mismatch.check(m, ok, ctx()).findings == []
    res = sum_mismatch.check(m, bad, ctx())
    assert kinds(res) == ["sum_mismatch"] and res.findings[0].evidence["register_delta"] == pytest.approx(10.22)


def test_sum_mismatch_skips_incomplete_days_and_rollover_counts():
    m = MeterFacts("m1", digits=4)
    nxt = T0 + timedelta(days=1)
    partial = [reg(1000.0, T0), reg(1020.0, nxt)] + _day_of_intervals(10.0)[:-1]
    assert sum_mismatch.check(m, partial, ctx()).findings == []
    rolled = [reg(9995.0, T0), reg(5.0, nxt)] + _day_of_intervals(10.0)
    assert sum_mismatch.check(m, rolled, ctx()).findings == []


# ---- clock_drift -------------------------------------------------------------------------
def test_clock_drift_120s_boundary_and_one_event_per_episode():
    m = MeterFacts("m1")
    at_limit = [reg(1.0, T0, rx=T0 + timedelta(seconds=120))]
    assert clock_drift.check(m, at_limit, ctx()).findings == []
    drifting = [reg(1.0 + i, T0 + timedelta(hours=i), rx=T0 + timedelta(hours=i, seconds=121)) for i in range(3)]
    res = clock_drift.check(m, drifting, ctx())
    assert kinds(res) == ["clock_drift"] and len(res.marks) == 3
    assert res.findings[0].evidence["drift_s"] == -121.0


def test_intervals_are_not_judged_for_clock_drift():
    m = MeterFacts("m1")
    late = MeterValue("m1", PROFILE, "interval", T0, 0.3, received_at=T0 + timedelta(hours=5), period_s=1800)
    assert clock_drift.check(m, [late], ctx()).findings == []


# ---- frozen_value ----------------------------------------------------------------------
def test_frozen_value_same_value_same_meter_time_later_receive():
    m = MeterFacts("m1")
    a = reg(10.0, T0, rx=T0)
    again = reg(10.0, T0, rx=T0 + timedelta(minutes=30))
    assert kinds(frozen_value.check(m, [a, again], ctx())) == ["frozen_value"]
    assert frozen_value.check(m, [a, reg(10.0, T0, rx=T0)], ctx()).findings == []  # replay
    assert frozen_value.check(m, [a, reg(10.5, T0 + timedelta(minutes=30))], ctx()).findings == []


# ---- tamper ------------------------------------------------------------------------------
def test_tamper_codes_from_the_two_journals():
    m = MeterFacts("m1")
    ext = MeterValue("m1", "0.0.99.98.4.255", "event", T0, 1.0)
    end = MeterValue("m1", "0.0.99.98.4.255", "event", T0 + timedelta(minutes=10), 2.0)
    acc = MeterValue("m1", "0.0.99.98.6.255", "event", T0, 3.0)
    power = MeterValue("m1", "0.0.99.98.1.255", "event", T0, 1.0)
    res = tamper.check(m, [ext, end, acc, power], ctx())
    assert sorted((f.obis, f.evidence["code"]) for f in res.findings) == [
        ("0.0.99.98.4.255", 1), ("0.0.99.98.6.255", 3)]
    assert all(f.severity == "critical" for f in res.findings)
    only = tamper.check(m, [ext], ctx(tamper_codes={"0.0.99.98.4.255": (5,)}))
    assert only.findings == []


# ---- voltage -----------------------------------------------------------------------------
def test_voltage_ten_percent_boundaries_and_phase_loss():
    m = MeterFacts("m1", nominal_voltage=230.0)

    def u(x: float, i: int, obis: str = "1.0.32.7.0.255") -> MeterValue:
        return MeterValue("m1", obis, "instant", T0 + timedelta(minutes=i), x)

    assert voltage.check(m, [u(207.0, 0), u(253.0, 1)], ctx()).findings == []
    res = voltage.check(m, [u(206.9, 0), u(253.1, 1), u(100.0, 2, "1.0.52.7.0.255")], ctx())
    assert kinds(res) == ["voltage", "voltage", "phase_loss"]
    assert res.findings[2].evidence["phase"] == 2
    episode = voltage.check(m, [u(200.0, i) for i in range(5)], ctx())
    assert kinds(episode) == ["voltage"] and len(episode.marks) == 5


# ---- no_contact ---------------------------------------------------------------------------
@pytest.mark.parametrize("silence,bucket", [
    (timedelta(minutes=30), "30min"), (timedelta(minutes=31), "2h"), (timedelta(hours=2), "2h"),
    (timedelta(days=1), "1d"), (timedelta(days=2), "2d"), (timedelta(days=7), "1w"),
    (timedelta(days=14), "2w"), (timedelta(days=14, seconds=1), "more")])
def test_no_contact_buckets(silence, bucket):
    assert no_contact.bucket(silence)[0] == bucket


def test_no_contact_after_24h_only_and_not_for_retired():
    m = MeterFacts("m1")
    now = T0 + timedelta(days=3)
    assert no_contact.check_contact(m, now - timedelta(hours=24), ctx(now)).findings == []
    res = no_contact.check_contact(m, now - timedelta(hours=24, seconds=1), ctx(now))
    assert kinds(res) == ["no_contact"] and res.findings[0].evidence["bucket"] == "2d"
    assert res.findings[0].evidence["last_session"] == now - timedelta(hours=24, seconds=1)
    for retired in (MeterFacts("m1", decommissioned=True), MeterFacts("m1", replaced_by="m2")):
        assert no_contact.check_contact(retired, now - timedelta(days=30), ctx(now)).findings == []


# ---- verification -------------------------------------------------------------------------
def test_verification_due_and_overdue_boundaries():
    now = datetime(2026, 11, 20, 12, tzinfo=MSK)
    due_today = MeterFacts("m1", verification_due=date(2026, 11, 20))
    assert kinds(verification.check_verification(due_today, ctx(now))) == ["verification_due"]
    overdue = MeterFacts("m1", verification_due=date(2026, 11, 19))
    assert kinds(verification.check_verification(overdue, ctx(now))) == ["verification_overdue"]
    in30 = MeterFacts("m1", verification_due=date(2026, 12, 20))
    in31 = MeterFacts("m1", verification_due=date(2026, 12, 21))
    assert kinds(verification.check_verification(in30, ctx(now))) == ["verification_due"]
    assert verification.check_verification(in31, ctx(now)).findings == []


# ---- house_imbalance -----------------------------------------------------------------------
def test_house_imbalance_tolerance():
    period = (T0, T0 + timedelta(days=1))
    bal = MeterFacts("odpu", house="h1", is_balance=True)
    flats = [MeterFacts(f"f{i}", house="h1") for i in range(3)]
    meters = {m.code: m for m in [bal, *flats]}

    def values(q_bal: float, q_flat: float) -> dict[str, list[MeterValue]]:
        out = {"odpu": [reg(0.0, T0, meter="odpu"), reg(q_bal, period[1], meter="odpu")]}
        for f in flats:
            out[f.code] = [reg(0.0, T0, meter=f.code), reg(q_flat, period[1], meter=f.code)]
        return out

    cfg = ThresholdConfig()
    assert engine.check_houses(meters, values(100.0, 30.0), period, cfg, period[1]).findings == []  # 10 %
    res = engine.check_houses(meters, values(100.0, 29.9), period, cfg, period[1])
    assert kinds(res) == ["house_imbalance"] and res.findings[0].evidence["imbalance_pct"] == pytest.approx(10.3)


# ---- thresholds ------------------------------------------------------------------------
def test_thresholds_resolve_resource_model_organisation():
    cfg = ThresholdConfig.from_mapping({
        "defaults": {"clock_drift_s": 60},
        "resources": {"cold_water": {"zero_days": 14}},
        "models": {"CE308": {"clock_drift_s": 30}},
        "organisations": {"UK1": {"spike_factor": 3, "resources": {"cold_water": {"zero_days": 3}}}},
    })
    assert cfg.for_meter(MeterFacts("a")).clock_drift_s == 60
    assert cfg.for_meter(MeterFacts("a", resource="cold_water")).zero_days == 14
    assert cfg.for_meter(MeterFacts("a", resource="cold_water")).spike_floor == 0.5
    assert cfg.for_meter(MeterFacts("a", model="CE308")).clock_drift_s == 30
    w = cfg.for_meter(MeterFacts("a", resource="cold_water", organisation="UK1"))
    assert (w.zero_days, w.spike_factor) == (3, 3.0)


def test_threshold_errors_name_the_place():
    from askue.headend.vee.thresholds import ThresholdError

    with pytest.raises(ThresholdError, match="model=X: unknown threshold 'spkie_factor'"):
        ThresholdConfig.from_mapping({"models": {"X": {"spkie_factor": 2}}})
    with pytest.raises(ThresholdError, match="must be a number"):
        ThresholdConfig.from_mapping({"defaults": {"spike_factor": "five"}})


def test_utc_and_local_times_mix():
    m = MeterFacts("m1", digits=5)
    vals = [reg(99998.1, T0.astimezone(UTC)), reg(2.3, T0 + timedelta(hours=1))]
    assert reverse_reading.check(m, vals, ctx()).findings == []


def test_drop_with_new_serial_reported_is_an_exchange():
    m = MeterFacts("m1", serial="111", identity_changed=True)
    res = reverse_reading.check(m, [reg(5000.0, T0), reg(1.0, T0 + timedelta(hours=1))], ctx())
    assert res.findings == [] and [mk.reason for mk in res.marks] == ["meter_exchange"]
