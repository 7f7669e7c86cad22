"""Property: a clean, monotonic series (steady consumption, rollovers at the digit
capacity, clocks in time, no holes) raises nothing, whatever hypothesis draws."""
from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vee_helpers import A_PLUS, PROFILE, T0

from askue.headend.vee import engine
from askue.headend.vee.model import MeterFacts, MeterValue
from askue.headend.vee.rules.common import Ctx
from askue.headend.vee.thresholds import ThresholdConfig


@st.composite
def clean_series(draw):
    digits = draw(st.sampled_from([None, 5, 6, 8]))
    cap = 10 ** digits if digits else None
    base = draw(st.floats(min_value=0.01, max_value=2.0))
    days = draw(st.integers(min_value=1, max_value=20))
    start = draw(st.floats(min_value=0.0, max_value=(cap or 10**6) - 1))
    shares = draw(st.lists(st.floats(min_value=0.5, max_value=1.5), min_size=48, max_size=48))
    delays = draw(st.lists(st.integers(min_value=0, max_value=120), min_size=24, max_size=24))
    resource = draw(st.sampled_from(["electricity", "cold_water", "heat"]))
    meter = MeterFacts("m1", resource=resource, digits=digits)
    reg_obis = {"electricity": A_PLUS, "cold_water": "8.0.1.0.0.255", "heat": "6.0.1.0.0.255"}[resource]
    prof_obis = {"electricity": PROFILE, "cold_water": "8.0.1.29.0.255", "heat": "6.0.1.29.0.255"}[resource]
    values: list[MeterValue] = []
    cum = start
    for i in range(days * 48):
        t = T0 + timedelta(minutes=30 * (i + 1))
        q = round(base * shares[i % 48], 3)
        cum += q
        values.append(MeterValue("m1", prof_obis, "interval", t, q, received_at=t + timedelta(minutes=3), period_s=1800))
        if i % 2 == 1:  # hourly register read, including local midnights
            shown = round(cum % cap if cap else cum, 3)
            rx = t + timedelta(seconds=delays[(i // 2) % 24])
            values.append(MeterValue("m1", reg_obis, "register", t, shown, received_at=rx))
            if resource == "electricity":
                values.append(MeterValue("m1", "1.0.32.7.0.255", "instant", t, 230.0 + shares[i % 48] * 10 - 10,
                                    received_at=rx))
    values.insert(0, MeterValue("m1", reg_obis, "register", T0, round(start % cap if cap else start, 3), received_at=T0))
    return meter, values


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clean_series())
def test_clean_monotonic_series_raises_nothing(data):
    meter, values = data
    last = max(v.received_at for v in values)
    ctx = Ctx(now=last + timedelta(hours=1), thresholds=ThresholdConfig().for_meter(meter))
    res = engine.check_series(meter, values, ctx).extend(engine.check_meter_state(meter, last, ctx))
    assert res.findings == []
    assert {m.reason for m in res.marks} <= {"rollover"}


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.floats(min_value=0.0, max_value=0.999),
       st.floats(min_value=0.0, max_value=0.099))
def test_any_wrap_within_the_rollover_share_is_consumption(digits, pos, step_share):
    cap = 10.0 ** digits
    prev = cap * (1 - pos * 0.1)  # in the top tenth of the range
    cur = (prev + step_share * cap) % cap
    meter = MeterFacts("m1", digits=digits)
    vals = [MeterValue("m1", A_PLUS, "register", T0, prev), MeterValue("m1", A_PLUS, "register", T0 + timedelta(hours=1), cur)]
    assert engine.check_series(meter, vals, Ctx(now=T0 + timedelta(hours=2)), ["reverse_reading"]).findings == []
