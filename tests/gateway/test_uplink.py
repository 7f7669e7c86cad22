"""Store-and-forward against a real mosquitto and protocol-true Modbus TCP simulators:
the broker goes away and comes back, and every value the gateway read arrives,
in order per meter; the birth message, Last Will and health messages follow the contract."""
from __future__ import annotations

import asyncio
from collections import defaultdict

from gwtest import gateway_config, meter_entries, sim_meters, start_modbus_tcp, wait_until

from askue.devservices.ports import free_port
from askue.gateway.config import GatewayConfig
from askue.gateway.health import ProcessProbe, collect, prometheus_text
from askue.gateway.service import Gateway


def _key(v) -> tuple:
    return (v.meter_id, v.obis, v.received_at)


def check_complete_and_ordered(values, read_total: int, sims) -> None:
    """Every value read arrived (duplicates allowed), nothing else arrived, order per meter kept."""
    first: dict[tuple, object] = {}
    order: dict[str, list] = defaultdict(list)
    for v in values:
        if _key(v) not in first:
            first[_key(v)] = v
            order[v.meter_id].append(v.received_at)
    assert len(first) == read_total, f"{read_total} values read, {len(first)} distinct values arrived"
    for mid, times in order.items():
        assert times == sorted(times), f"values of meter {mid} arrived out of order"
    served = {(m.id, obis, round(value, 6)) for m in sims.values() for (_k, obis, _t, value) in m.served}
    for v in first.values():
        assert (v.meter_id, v.obis, round(v.value, 6)) in served, f"{v} was never served by the simulator"


async def test_broker_restart_loses_nothing_and_keeps_order(tmp_path, fresh_broker, collector_factory):
    sims = sim_meters(5)
    server, port = await start_modbus_tcp(sims)
    cfg = GatewayConfig.model_validate(gateway_config(
        tmp_path, "gw-restart", fresh_broker.port,
        buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port, "max_concurrent": 2,
                "timeout_s": 1.0}],
        meters=meter_entries(sims, "tcp1", {"register": 1, "instant": 1, "interval": None, "events": None}),
        broker={"batch_values": 20}))
    col = collector_factory(fresh_broker.host, fresh_broker.port, "gw-restart")
    gw = Gateway(cfg)
    await gw.start()
    try:
        await wait_until(lambda: len(col.values()) > 50, 20, "first values")
        states = col.states()
        assert states and states[0].online, "retained birth message"

        fresh_broker.stop()
        read_before = sum(w.stats.values for w in gw.workers.values())
        await wait_until(lambda: sum(w.stats.values for w in gw.workers.values()) > read_before + 100, 30,
                         "polling to go on while the broker is down")
        assert gw.store.depth > 0, "values read during the outage wait in the store"
        assert not gw.publisher.connected.is_set()

        fresh_broker.start()
        await wait_until(lambda: gw.publisher.connected.is_set(), 20, "reconnect")
        read_after = sum(w.stats.values for w in gw.workers.values())
        await wait_until(lambda: sum(w.stats.values for w in gw.workers.values()) > read_after + 50, 20,
                         "polling after the outage")
        await wait_until(lambda: bool(col.health()), 10, "a periodic health message")
    finally:
        await gw.stop()  # clean shutdown flushes the store
        server.close()
    read_total = sum(w.stats.values for w in gw.workers.values())
    await wait_until(lambda: len({_key(v) for v in col.values()}) >= read_total, 20, "the backlog to arrive")
    check_complete_and_ordered(col.values(), read_total, sims)
    seqs = [m.seq for m in col.data()]
    assert len(set(seqs)) >= 2 and max(seqs) >= len(set(seqs)) - 1
    assert col.states()[-1].online is False, "clean shutdown marks the gateway offline (retained)"
    health = col.health()
    assert health and health[-1].gateway_id == "gw-restart" and "tcp1" in health[-1].buses
    statuses = [s for m in col.data() for s in m.meters]
    assert {s.meter_id for s in statuses} == {m.id for m in sims.values()}
    assert all(s.ok and s.serial for s in statuses)
    drifts = [s.clock_drift_s for s in statuses if s.clock_drift_s is not None]
    assert len(drifts) >= 5 and all(abs(d) < 5 for d in drifts), "clock drift reported per meter"


async def test_values_survive_a_restart_of_the_gateway_process_object(tmp_path, fresh_broker, collector_factory):
    """Values stored while the broker is unreachable are published by the next gateway
    started on the same store (here after a clean stop with no broker to flush to)."""
    sims = sim_meters(2)
    server, port = await start_modbus_tcp(sims)
    fresh_broker.stop()
    raw = gateway_config(
        tmp_path, "gw-store", fresh_broker.port,
        buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port}],
        meters=meter_entries(sims, "tcp1", {"register": 1, "interval": None, "events": None}),
        gateway={"shutdown_flush_s": 0})
    gw = Gateway(GatewayConfig.model_validate(raw))
    await gw.start()
    await wait_until(lambda: gw.store.depth >= 30, 20, "values stored offline")
    await gw.stop()
    read_first = sum(w.stats.values for w in gw.workers.values())
    server.close()

    fresh_broker.start()
    col = collector_factory(fresh_broker.host, fresh_broker.port, "gw-store")
    raw["meters"] = []  # the second run reads nothing new: what arrives is the stored backlog
    gw2 = Gateway(GatewayConfig.model_validate(raw))
    await gw2.start()
    try:
        await wait_until(lambda: gw2.store.depth == 0, 20, "the backlog to be acknowledged")
    finally:
        await gw2.stop()
    check_complete_and_ordered(col.values(), read_first, sims)
    await asyncio.sleep(0)


async def test_full_store_evicts_instant_values_first_while_the_uplink_is_down(tmp_path):
    """A long outage with a small store: instant values give way, billing registers stay."""
    sims = sim_meters(3)
    server, port = await start_modbus_tcp(sims)
    cfg = GatewayConfig.model_validate(gateway_config(
        tmp_path, "gw-full", free_port(),  # no broker at all
        buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port, "max_concurrent": 3}],
        meters=meter_entries(sims, "tcp1", {"register": 1, "instant": 1, "interval": None, "events": None}),
        store={"max_values": 200}))
    gw = Gateway(cfg)
    await gw.start()
    try:
        await wait_until(lambda: gw.store.evicted().get("instant", 0) >= 50, 30, "evictions")
        # Polling stopped, so the health figure and the store's count can be read at one moment
        # (the store commits from its own thread; a write may still land just after the stop).
        for w in gw.workers.values():
            await w.stop()
        await wait_until(lambda: collect(gw, ProcessProbe()).evicted == sum(gw.store.evicted().values()), 5,
                         "the health report's evicted count to match the store's")
        ev = gw.store.evicted()
        assert gw.store.depth <= 200
        assert "register" not in ev, f"registers evicted while instant values were stored: {ev}"
        assert 'askue_gateway_evicted_total{gateway="gw-full",kind="instant"}' in prometheus_text(gw, ProcessProbe())
    finally:
        await gw.stop()
        server.close()


async def test_values_nobody_subscribed_to_stay_in_the_store(tmp_path, fresh_broker, collector_factory):
    """MQTT 5 PUBACK "no matching subscribers" (0x10): the broker took the message but no
    head-end got it (mosquitto 2.0 after a restart, before the workers of a shared group
    subscribe again). The values stay in the store and arrive once somebody subscribes."""
    sims = sim_meters(3)
    server, port = await start_modbus_tcp(sims)
    cfg = GatewayConfig.model_validate(gateway_config(
        tmp_path, "gw-unrouted", fresh_broker.port,
        buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port, "max_concurrent": 2,
                "timeout_s": 1.0}],
        meters=meter_entries(sims, "tcp1", {"register": 1, "instant": 1, "interval": None, "events": None}),
        broker={"batch_values": 20}))
    gw = Gateway(cfg)
    await gw.start()
    try:
        await wait_until(lambda: gw.publisher.unrouted >= 2, 20, "data messages nobody subscribed to")
        assert gw.publisher.acked_values == 0 and gw.store.depth > 0, "nothing deleted that nobody got"
        assert "askue_gateway_mqtt_unrouted_total" in prometheus_text(gw, ProcessProbe())
        col = collector_factory(fresh_broker.host, fresh_broker.port, "gw-unrouted")
        read_then = sum(w.stats.values for w in gw.workers.values())
        await wait_until(lambda: len({_key(v) for v in col.values()}) >= read_then, 30,
                         "the kept values to arrive once a subscriber is there")
    finally:
        await gw.stop()
        server.close()
    read_total = sum(w.stats.values for w in gw.workers.values())
    await wait_until(lambda: len({_key(v) for v in col.values()}) >= read_total, 20, "the rest to arrive")
    check_complete_and_ordered(col.values(), read_total, sims)
