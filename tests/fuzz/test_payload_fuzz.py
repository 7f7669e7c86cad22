"""MQTT payloads from a broken or hostile gateway: mutated valid messages through the
head-end's real decode → classify path (10,000 cases) and through the real ingest
commit into PostgreSQL (300 cases). Every bad payload ends as a dead letter with a
reason and its exact bytes; every good one is stored exactly; nothing else changes.
"""
from __future__ import annotations

import asyncio
import math
import random
import re

import msgspec
import psycopg
import pytest
from hypothesis import given
from mutation import FUZZ, FUZZ_DB, mutate_bytes, mutate_tree, seeds
from psycopg_pool import AsyncConnectionPool

from askue.contract import DataMessage, Health, PayloadError, State, Topics, decode_data
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.ingest.consumer import Consumer, _classify
from askue.headend.storage.values import TABLES

pytestmark = pytest.mark.slow

TOPICS = Topics("askue")
OBIS_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")

DATA = {
    "v": 1, "gateway_id": "gw1", "seq": 7, "sent_at": "2026-03-01T00:10:00Z",
    "values": [
        {"meter_id": "m1", "obis": "1.0.1.8.0.255", "kind": "register", "value": 1234.5, "unit": "kWh",
         "received_at": "2026-03-01T00:00:05Z", "meter_time": "2026-03-01T00:00:00Z"},
        {"meter_id": "m1", "obis": "1.0.1.29.0.255", "kind": "interval", "value": 0.25, "unit": "kWh",
         "received_at": "2026-03-01T00:00:30Z", "meter_time": "2026-03-01T00:00:00+03:00", "period_s": 1800,
         "quality": "E", "reasons": ["estimated"]},
        {"meter_id": "w-2", "obis": "8.0.1.0.0.255", "kind": "instant", "value": -3.0, "unit": "m3",
         "received_at": "2026-03-01T00:01:00Z"},
        {"meter_id": "m1", "obis": "0.0.99.98.1.255", "kind": "event", "value": 17, "unit": "",
         "received_at": "2026-03-01T00:02:00Z", "meter_time": "2026-03-01T00:01:59Z"},
    ],
    "meters": [{"meter_id": "m1", "last_contact": "2026-03-01T00:00:05Z", "ok": True, "clock_drift_s": 1.5,
                "serial": "S-1"}],
}
STATE = {"v": 1, "gateway_id": "gw1", "online": True, "at": "2026-03-01T00:00:00Z", "version": "1.0",
         "started_at": "2026-03-01T00:00:00Z", "meters": 3}
HEALTH = {"v": 1, "gateway_id": "gw1", "at": "2026-03-01T00:00:00Z", "queue_depth": 3, "oldest_unsent_s": 1.0,
          "buses": {"rs485-1": {"polls": 10.0, "errors": 1.0}}}
SAMPLES = {"data": DATA, "state": STATE, "health": HEALTH}


TOPIC_SAMPLES = ["askue/v1/gw2/data", "askue/v1/gw1/cmd", "askue/v1/gw1/cmd/result", "askue/v1//data",
                 "askue/v2/gw1/data", "askue/v1/gw 1/data", "askue/v1/gw1/data/extra", "askue/v1/+/data", "",
                 "askue/v1/gw1", "askue/v1/' OR 1=1 --/data", "askue/v1/" + "g" * 65 + "/data"]


def make_case(seed: int) -> tuple[str, bytes]:
    """(topic, payload): a valid sample with 0..3 tree mutations and 0..2 byte mutations."""
    rng = random.Random(seed)
    kind = rng.choice(["data", "data", "data", "state", "health"])
    tree = SAMPLES[kind]
    if rng.random() < 0.85:
        tree = mutate_tree(tree, rng)
    payload = msgspec.json.encode(tree)
    if rng.random() < 0.3:
        payload = mutate_bytes(payload, rng, rng.randint(1, 2))
    r = rng.random()
    topic = f"askue/v1/gw1/{kind}" if r < 0.85 else rng.choice(TOPIC_SAMPLES)
    return topic, payload


def _check_decoded(msg: DataMessage) -> None:
    # what the decoder lets through must be what the contract promises
    assert msg.v == 1 and msg.seq >= 0
    for v in msg.values:
        assert OBIS_RE.match(v.obis) and v.kind in TABLES
        assert math.isfinite(v.value)
        assert v.received_at.tzinfo is not None and (v.meter_time is None or v.meter_time.tzinfo is not None)
        assert v.kind != "interval" or (v.period_s is not None and 0 < v.period_s <= 86400)


@FUZZ
@given(seeds)
def test_decode_and_classify_never_crash(seed: int) -> None:
    topic, payload = make_case(seed)
    try:
        _check_decoded(decode_data(payload))
    except PayloadError as e:
        assert str(e).startswith("DataMessage: ")
    pending = Pending()
    _classify(TOPICS, topic, payload, pending)
    assert len(pending) == 1
    if pending.dead:
        t, _gw, p, reason = pending.dead[0]
        assert (t, p) == (topic, payload) and reason.strip()
    else:
        gw, kind = TOPICS.parse(topic)
        msg = (pending.data + pending.states + pending.healths)[0]
        assert msg.gateway_id == gw
        assert isinstance(msg, {"data": DataMessage, "state": State, "health": Health}[kind])
        if kind == "data":
            _check_decoded(msg)


# ---------------------------------------------------------------- through PostgreSQL

_VALUE_DUMP = " UNION ALL ".join(
    f"SELECT '{kind}', m.code, t.obis, t.ts, t.received_at, t.value, t.quality, t.reasons, t.gateway_id, t.seq "
    f"FROM {table} t JOIN meters m ON m.id = t.meter_id" for kind, table in TABLES.items())


async def _snapshot(conn: psycopg.AsyncConnection) -> dict[str, list]:
    out = {}
    for name, q in (("values", _VALUE_DUMP), ("meters", "SELECT code, status FROM meters"),
                    ("dead", "SELECT id, topic, gateway_id, payload, reason FROM dead_letters")):
        out[name] = sorted(await (await conn.execute(q)).fetchall(), key=repr)
    return out


def test_ingest_commit_stores_good_payloads_exactly_and_dead_letters_the_rest(pg_dsn: str) -> None:
    asyncio.run(_ingest_fuzz(pg_dsn))


async def _ingest_fuzz(dsn: str) -> None:
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False, configure=merge.prepare_connection)
    await pool.open(wait=True)
    consumer = Consumer(Settings(dsn=dsn), pool, merge.MergeContext())
    check = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    outcomes = {"stored": 0, "dead": 0, "status": 0, "unit_refused": 0}
    model: dict[tuple, tuple] = {}  # (meter, obis, ts) -> first stored (kind, value, quality, received_at)
    loop = asyncio.get_running_loop()

    @FUZZ_DB
    @given(seeds)
    def one(seed: int) -> None:
        asyncio.run_coroutine_threadsafe(_one(*make_case(seed)), loop).result(60)

    async def _one(topic: str, payload: bytes) -> None:
        before = await _snapshot(check)
        pending = Pending()
        _classify(TOPICS, topic, payload, pending)
        acked: list[bool] = []
        pending.acks.append(lambda: acked.append(True))
        await consumer._commit(pending)  # the real commit: batch, then one-by-one fallback, then ack
        assert acked == [True], "a message must be acknowledged once its transaction committed"
        after = await _snapshot(check)
        new_dead = [d for d in after["dead"] if d not in before["dead"]]
        # the head-end refuses units value by value (docs/units.md): such values are a dead letter
        # of their own, as a message holding just them, and the message's other values are stored
        refused = [] if len(new_dead) != 1 or not new_dead[0][4].startswith("unit refused") else \
            decode_data(bytes(new_dead[0][3])).values
        if pending.data and (not new_dead or refused):
            outcomes["stored"] += 1
            msg = pending.data[0]
            as_sent = [msgspec.json.encode(v) for v in msg.values]
            set_aside = [msgspec.json.encode(v) for v in refused]
            if refused:
                outcomes["unit_refused"] += 1
                assert all(x in as_sent for x in set_aside), "a dead letter holds only values the message had"
            for v, x in zip(msg.values, as_sent, strict=True):
                if x in set_aside:
                    continue
                ts = v.meter_time or v.received_at
                model.setdefault((v.meter_id, v.obis, ts), (v.kind, v.value, v.quality, v.received_at, msg.seq))
            stored = {(r[1], r[2], r[3]): (r[0], r[5], r[6], r[4], r[9]) for r in after["values"]}
            for key, want in model.items():
                assert stored.get(key) == want, f"stored {stored.get(key)} for {key}, expected {want}"
            assert len(stored) == len(model)
        elif pending.data or pending.dead:
            # refused: exactly one dead letter holding the exact bytes and a reason; no value changed
            outcomes["dead"] += 1
            assert len(new_dead) == 1, new_dead
            _id, d_topic, _gw, d_payload, reason = new_dead[0]
            assert reason.strip()
            if pending.dead and d_topic == topic:
                assert bytes(d_payload) == payload
            assert after["values"] == before["values"]
            assert after["meters"] == before["meters"]
        else:  # state or health: only the gateways row may change
            outcomes["status"] += 1
            assert after["values"] == before["values"] and after["dead"] == before["dead"]

    try:
        await asyncio.to_thread(one)
    finally:
        await check.close()
        await pool.close()
    # the mix must exercise every branch, or the test proves little
    assert min(v for k, v in outcomes.items() if k != "unit_refused") >= 20, outcomes
    assert outcomes["unit_refused"] >= 1, outcomes  # derandomized: the mix holds mutated units


# Payloads that decode but that PostgreSQL cannot hold as they are (NUL in text, jsonb
# limits, dates beyond the calendar's partitions): the commit must still end, ack the
# message and put it in dead letters or store it; the reader must never stall.
TRICKY = [
    ("state", dict(STATE, version="1.0\u0000evil")),
    ("health", dict(HEALTH, buses={"bus\u0000": {"polls": 1.0}})),
    ("data", dict(DATA, meters=[dict(DATA["meters"][0], serial="S\u00001", last_error="x\u0000")])),
    ("data", dict(DATA, values=[dict(DATA["values"][0], unit="kWh\u0000")])),
    ("data", dict(DATA, values=[dict(DATA["values"][0], reasons=["a\u0000"])])),
    ("data", dict(DATA, values=[dict(DATA["values"][0], meter_time="0001-01-01T00:00:00Z")])),
    ("data", dict(DATA, values=[dict(DATA["values"][0], meter_time="9999-12-31T23:59:59Z")])),
    ("data", dict(DATA, values=[dict(DATA["values"][0], meter_id="m" * 64)])),
]


@pytest.mark.parametrize("kind,tree", TRICKY, ids=[f"{k}{i}" for i, (k, _t) in enumerate(TRICKY)])
async def test_payloads_the_database_refuses_do_not_stall_ingest(pg_dsn: str, kind: str, tree: dict) -> None:
    pool = AsyncConnectionPool(pg_dsn, min_size=1, max_size=2, open=False, configure=merge.prepare_connection)
    await pool.open(wait=True)
    try:
        consumer = Consumer(Settings(dsn=pg_dsn), pool, merge.MergeContext())
        topic = f"askue/v1/gw1/{kind}"
        payload = msgspec.json.encode(tree)
        pending = Pending()
        _classify(TOPICS, topic, payload, pending)
        acked: list[bool] = []
        pending.acks.append(lambda: acked.append(True))
        await asyncio.wait_for(consumer._commit(pending), 60)
        assert acked == [True]
        # and the next clean message still goes in
        good = Pending()
        _classify(TOPICS, "askue/v1/gw1/data", msgspec.json.encode(DATA), good)
        await asyncio.wait_for(consumer._commit(good), 60)
        async with pool.connection() as conn:
            n = (await (await conn.execute("SELECT count(*) FROM register_readings")).fetchone())[0]
        assert n >= 1
    finally:
        await pool.close()
