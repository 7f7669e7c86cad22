from __future__ import annotations

from datetime import UTC, datetime

import pytest

from askue.contract import DataMessage, PayloadError, Topics, Value, decode_data, decode_data_fast, encode


def _msg(**over) -> DataMessage:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    v = Value(meter_id="m-1", obis="1.0.1.8.0.255", kind="register", value=123.456, unit="kWh",
              received_at=now, meter_time=now)
    return DataMessage(v=1, gateway_id="gw-1", seq=7, sent_at=now, values=[v], **over)


def test_round_trip_keeps_values_and_both_timestamps() -> None:
    msg = _msg()
    back = decode_data(encode(msg))
    assert back == msg
    assert back.values[0].meter_time == msg.values[0].meter_time


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"v":1,"gateway_id":"gw","seq":1,"sent_at":"2026-01-01T00:00:00Z","values":[{"meter_id":"m",'
         b'"obis":"1.8.0","kind":"register","value":1,"unit":"kWh","received_at":"2026-01-01T00:00:00Z"}]}',
         "$.values[0].obis"),
        (b'{"v":1,"gateway_id":"gw","seq":1,"sent_at":"2026-01-01T00:00:00","values":[]}', "$.sent_at"),
        (b'{"v":2,"gateway_id":"gw","seq":1,"sent_at":"2026-01-01T00:00:00Z","values":[]}', "schema version 2"),
        (b'{"v":1,"gateway_id":"gw","seq":1,"sent_at":"2026-01-01T00:00:00Z","values":[{"meter_id":"m",'
         b'"obis":"1.0.1.29.0.255","kind":"interval","value":1,"unit":"kWh","received_at":"2026-01-01T00:00:00Z"}]}',
         "period_s"),
    ],
)
def test_bad_payloads_say_where(payload: bytes, where: str) -> None:
    with pytest.raises(PayloadError, match=None) as e:
        decode_data(payload)
    assert where in str(e.value)


def test_topics() -> None:
    t = Topics("askue")
    assert t.data("gw-01") == "askue/v1/gw-01/data"
    assert t.parse("askue/v1/gw-01/cmd/result") == ("gw-01", "cmd/result")
    assert t.shared("ingest", "data") == "$share/ingest/askue/v1/+/data"
    with pytest.raises(ValueError):
        t.data("gw/../x")
    with pytest.raises(ValueError):
        t.parse("other/v1/gw/data")


def test_fast_data_decoder_accepts_and_refuses_exactly_what_the_contract_types_do() -> None:
    """decode_data_fast (ingest) checks the meter id / OBIS patterns once per distinct string:
    every string position, good or bad, must come out as decode_data says."""
    import msgspec

    from askue.contract import MeterStatus

    bad_ids = ["", "-m", "m 1", "m/1", "x" * 65, "м1", "m1\n"]
    bad_obis = ["1.8.0", "1.0.1.8.0", "1.0.1.8.0.2555", "a.0.1.8.0.255", "1.0.1.8.0.255 "]
    cases = [_msg(), _msg(meters=[MeterStatus(meter_id="m-2")])]
    for s in bad_ids:
        cases.append(_msg(meters=[MeterStatus(meter_id=s)]))
        c = _msg()
        c.gateway_id = s
        cases.append(c)
        c = _msg()
        c.values = [*c.values, Value(meter_id=s, obis="1.0.1.8.0.255", kind="register", value=1.0, unit="kWh",
                                     received_at=c.sent_at)]
        cases.append(c)
    for s in bad_obis:
        c = _msg()
        c.values = [*c.values, Value(meter_id="m-3", obis=s, kind="register", value=1.0, unit="kWh",
                                     received_at=c.sent_at)]
        cases.append(c)
    for c in cases:
        payload = encode(c)
        try:
            want = decode_data(payload)
        except PayloadError as e:
            with pytest.raises(PayloadError) as got:
                decode_data_fast(payload)
            assert str(got.value) == str(e)
        else:
            got_msg = decode_data_fast(payload)
            assert isinstance(got_msg, DataMessage) and encode(got_msg) == payload
            assert msgspec.to_builtins(got_msg) == msgspec.to_builtins(want)
