"""The local store on a real SQLite file: acknowledge semantics, sequence numbers that
survive a restart, eviction by priority with counters, the profile ledger."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest

from askue.contract import decode_data
from askue.contract.payloads import MeterStatus, Value
from askue.gateway.publisher import build_data_payload
from askue.gateway.store import Store, StoreError

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def v(meter: str, kind: str, i: int, obis: str | None = None) -> Value:
    obis = obis or {"register": "1.0.1.8.0.255", "interval": "1.0.1.29.0.255", "instant": "1.0.32.7.0.255",
                    "event": "0.0.99.98.4.255"}[kind]
    return Value(meter_id=meter, obis=obis, kind=kind, value=float(i), unit="kWh", received_at=T0,
                 meter_time=T0 + timedelta(minutes=30 * i), period_s=1800 if kind == "interval" else None)


def test_values_leave_only_when_acknowledged(tmp_path):
    s = Store(tmp_path / "q.db", max_values=1000)
    s.put([v("m1", "register", i) for i in range(7)])
    b1 = s.get_batch(5)
    b2 = s.get_batch(5)
    assert (len(b1), len(b2)) == (5, 2) and b2.seq == b1.seq + 1
    assert s.get_batch(5) is None, "values in flight are not handed out twice"
    s.batch_done(b2)
    assert s.depth == 5
    s.close()
    # "kill -9": b1 was never acknowledged, so after reopening it is sent again, under a new seq
    s = Store(tmp_path / "q.db", max_values=1000)
    assert s.depth == 5
    again = s.get_batch(100)
    assert [x.value for x in again.values()] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert again.seq == b2.seq + 1, "sequence numbers keep rising across restarts"
    s.batch_done(again)
    assert s.depth == 0 and s.oldest_age_s() is None


def test_refused_batch_is_sent_again_with_its_sequence_number(tmp_path):
    s = Store(tmp_path / "q.db")
    s.put([v("m1", "register", i) for i in range(3)])
    b = s.get_batch(10)
    s.release(b)
    assert s.pending_unsent()
    b2 = s.get_batch(10)
    assert b2.seq == b.seq and b2.ids == b.ids


def test_eviction_order_instant_then_interval_then_registers_and_events(tmp_path):
    s = Store(tmp_path / "q.db", max_values=100)
    s.put([v("m1", "register", i) for i in range(30)] + [v("m1", "event", i) for i in range(10)])
    s.put([v("m1", "interval", i) for i in range(40)])
    s.put([v("m1", "instant", i) for i in range(20)])
    assert s.depth == 100 and s.evicted() == {}
    s.put([v("m2", "register", i) for i in range(15)])  # 15 over: instants go first
    assert s.evicted() == {"instant": 15}
    s.put([v("m2", "register", i) for i in range(15, 30)])  # 5 more instants, then the 10 oldest intervals
    assert s.evicted() == {"instant": 20, "interval": 10}
    assert not any(b'"instant"' in x for x in s.all_bodies())
    s.put([v("m3", "instant", i) for i in range(5)])  # new instants are the least important: they go
    assert s.evicted()["instant"] == 25
    s.put([v("m3", "register", i) for i in range(40)])  # intervals gone, then the oldest registers/events
    assert s.evicted() == {"instant": 25, "interval": 40, "register": 10}
    assert s.depth == 100
    left = list(s.all_bodies())
    assert all(b'"register"' in x or b'"event"' in x for x in left)
    assert sum(b'"event"' in x for x in left) == 10, "the events are younger than the evicted registers"
    s.close()
    # counters persist
    assert Store(tmp_path / "q.db", max_values=100).evicted()["interval"] == 40


def test_ledger_tracks_stored_and_acknowledged_profile(tmp_path):
    s = Store(tmp_path / "q.db")
    assert s.ledger("m1", "1.0.1.29.0.255") == (None, None)
    s.put([v("m1", "interval", i) for i in range(4)] + [v("m1", "event", 9)])
    stored, acked = s.ledger("m1", "1.0.1.29.0.255")
    assert stored == T0 + timedelta(minutes=90) and acked is None
    assert s.ledger_for_meter("m1")["events"] == T0 + timedelta(minutes=270)
    b = s.get_batch(2)
    s.batch_done(b)
    assert s.ledger("m1", "1.0.1.29.0.255")[1] == T0 + timedelta(minutes=30)
    # a meter in another time zone: compared as instants, not as text
    msk = T0.astimezone(timezone(timedelta(hours=3))) + timedelta(hours=5)
    s.put([Value(meter_id="m1", obis="1.0.1.29.0.255", kind="interval", value=1.0, unit="kWh",
                 received_at=T0, meter_time=msk, period_s=1800)])
    assert s.ledger("m1", "1.0.1.29.0.255")[0] == T0 + timedelta(hours=5)


def test_payload_built_from_stored_bodies_follows_the_contract(tmp_path):
    s = Store(tmp_path / "q.db")
    vals = [v("m1", "interval", 1), v("m2", "register", 2)]
    s.put(vals)
    b = s.get_batch(10)
    st = [MeterStatus(meter_id="m1", last_contact=T0, clock_drift_s=-1.5, serial="123")]
    msg = decode_data(build_data_payload("gw-1", b.seq, b.bodies, st))
    assert msg.values == vals and msg.meters == st and msg.seq == b.seq and msg.gateway_id == "gw-1"
    assert decode_data(build_data_payload("gw-1", 9, [], st)).values == []


def test_unusable_store_path_is_a_typed_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "file" / "q.db")
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="junk.db"):
        Store(tmp_path / "junk.db")


def test_wal_mode(tmp_path):
    Store(tmp_path / "q.db").close()
    with sqlite3.connect(tmp_path / "q.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
