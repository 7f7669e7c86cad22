"""Gap ledger and backfill against the Меркурий simulator on a pty bus: after a three-day
gateway outage, and after the meter stayed silent for three days while the gateway ran, the
missing periods are read from the meter's profile memory — none lost, none stored twice. The
day-start energy comes back through the archive ledger as far as the meter keeps it (today
and yesterday), and the transformer ratios reach the meter status.

The meter and the gateway share a virtual wall clock, so days of outage take no time;
polling itself runs on the real clock.
"""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
from gwtest import VirtualClock, gateway_config, wait_until

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.mercury.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer
from askue.drivers.sim.meter import MSK, SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.gateway.store import Store

A_PLUS = "1.0.1.29.0.255"


def stored(path) -> list[Value]:
    s = Store(path)
    dec = msgspec.json.Decoder(Value)
    out = [dec.decode(body) for body in s.all_bodies()]
    s.close()
    return out


async def test_three_day_outages_are_backfilled_from_the_profile_memory(tmp_path):
    clock = VirtualClock(datetime(2026, 11, 10, 12, 7, 30, tzinfo=UTC))
    meter = SimMeter(id="mr1", serial="40000021", password="111111", address=21, now=clock, history_days=12,
                     model="Меркурий 234", options={"ct_ratio": 80, "vt_ratio": 1})
    tty = tmp_path / "ttyMERC"
    pty = await PtyServer(make_session_factory({21: meter}, transport="serial"), tty).start()
    raw = gateway_config(
        tmp_path, "gw-merc", free_port(),  # no broker: the store keeps everything
        buses=[{"id": "rs485", "type": "serial", "device": str(tty), "baudrate": 9600, "timeout_s": 1}],
        meters=[{"id": "mr1", "bus": "rs485", "driver": "mercury", "address": 21, "serial": "40000021",
                 "password": "111111", "model": "Меркурий 234", "profile_initial_days": 0.5,
                 "profile_chunk_intervals": 48, "retries": 0, "backoff_max_s": 1,
                 "schedules": {"register": 2, "instant": None, "events": None, "interval": 1}}],
        metrics={"port": None}, gateway={"shutdown_flush_s": 0})
    cfg = GatewayConfig.model_validate(raw)
    db = tmp_path / "gw-merc.db"
    first = clock.t - timedelta(days=0.5)

    def expected() -> dict[datetime, float]:
        return dict(meter.profile(first, clock.t + timedelta(seconds=1)))

    async def caught_up(gw: Gateway) -> None:
        await wait_until(lambda: gw.store.ledger("mr1", A_PLUS)[0] is not None and
                         gw.store.ledger("mr1", A_PLUS)[0] >= clock.t - timedelta(minutes=30), 90,
                         "the profile to be read up to now")
        await wait_until(lambda: gw.store.ledger("mr1", "day_start")[0] is not None and
                         gw.store.ledger("mr1", "day_start")[0] >= clock.t - timedelta(days=1), 30,
                         "today's start to be read")

    def check() -> dict[datetime, float]:
        values = stored(db)
        a_plus = [v for v in values if v.obis == A_PLUS]
        twice = [k for k, n in Counter(v.meter_time for v in a_plus).items() if n > 1]
        assert not twice, f"intervals stored twice: {twice[:5]}"
        got = {v.meter_time: v.value for v in a_plus}
        want = expected()
        assert list(sorted(got)) == list(want), f"missing {sorted(set(want) - set(got))[:5]}"
        assert all(abs(got[k] - want[k]) <= 0.0005 for k in want)  # counts of 1/(2 × 1000) kWh
        assert {v.period_s for v in a_plus} == {1800}
        return got

    try:
        gw = Gateway(cfg, now=clock)
        await gw.start()
        try:
            await caught_up(gw)
            status = gw.workers["rs485"].meters["mr1"].status()
            assert (status.ct_ratio, status.vt_ratio) == (80.0, 1.0)
        finally:
            await gw.stop()
        assert len(check()) == 24

        # The gateway is off for three days: on restart the ledger says where to resume.
        clock.t += timedelta(days=3)
        gw = Gateway(cfg, now=clock)
        await gw.start()
        try:
            await caught_up(gw)
        finally:
            await gw.stop()
        assert len(check()) == 24 + 3 * 48

        # The meter is silent for three days while the gateway runs; then answers again.
        gw = Gateway(cfg, now=clock)
        meter.faults.silent = True
        await gw.start()
        try:
            w = gw.workers["rs485"]
            await wait_until(lambda: w.meters["mr1"].failures >= 1, 30, "the silent meter to be noticed")
            clock.t += timedelta(days=3)
            meter.faults.silent = False
            await caught_up(gw)
        finally:
            await gw.stop()
        got = check()
        assert len(got) == 24 + 6 * 48
        assert all(t.minute in (0, 30) and t.second == 0 for t in got)
        # Every channel the meter keeps, each interval once.
        per_channel = Counter(v.obis for v in stored(db) if v.kind == "interval")
        assert per_channel == {f"1.0.{q}.29.0.255": len(got) for q in (1, 2, 3, 4)}
        # Day starts: the first read takes the latest; after each 3-day outage the meter still
        # has today's and yesterday's, the day before is gone from its memory.
        d0 = datetime(2026, 11, 10, tzinfo=MSK).astimezone(UTC)
        archived = Counter((v.archive, v.meter_time) for v in stored(db) if v.archive and v.obis == "1.0.1.8.0.255")
        assert set(archived.values()) == {1}
        assert sorted(t for a, t in archived if a == "day_start") == [d0 + timedelta(days=k) for k in (0, 2, 3, 5, 6)]
        assert [t for a, t in archived if a == "month_start"] == [datetime(2026, 11, 1, tzinfo=MSK).astimezone(UTC)]
    finally:
        await pty.stop()
