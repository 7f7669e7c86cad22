"""Month- and day-start values from the memory of IEC 62056-21 meters (Энергомера СЕ303 and
НЕВА МТ 3xx on one RS-485 line: a pty, 7E1 in software, baud switch), through the gateway's
ledger: after a three-day gateway outage across a month boundary the new month's start
arrives exactly as the meter fixed it, and no value is stored twice.

The meters and the gateway share a virtual wall clock, so days of outage take no time.
"""
from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone

import msgspec
from gwtest import gateway_config, wait_until

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.iec62056_21.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer
from askue.drivers.sim.meter import SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.gateway.store import Store

MSK = timezone(timedelta(hours=3))


class VirtualClock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def stored(path) -> list[Value]:
    s = Store(path)
    dec = msgspec.json.Decoder(Value)
    out = [dec.decode(b) for b in s.all_bodies()]
    s.close()
    return out


def at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=MSK)


async def test_month_start_after_a_three_day_outage_over_a_pty(tmp_path):
    clock = VirtualClock(datetime(2026, 1, 30, 12, 7, 30, tzinfo=UTC))
    ekt = SimMeter(id="ekt", serial="009114135", address="141628345", model="ce303", now=clock, history_days=70,
                   seed=1)
    neva = SimMeter(id="neva", serial="60089784", address="00000201", model="neva-mt3", password="00000000",
                    now=clock, history_days=70, seed=2)
    pty = await PtyServer(make_session_factory({"141628345": ekt, "00000201": neva}, transport="serial"),
                          tmp_path / "ttyIEC").start()
    opts = {"parity": "software"}
    raw = gateway_config(
        tmp_path, "gw-iec", free_port(),  # no broker: the store keeps everything
        buses=[{"id": "opto", "type": "serial", "device": str(tmp_path / "ttyIEC"), "baudrate": 300,
                "timeout_s": 1, "inter_frame_gap_s": 0.001}],
        meters=[{"id": m.id, "bus": "opto", "driver": "iec62056_21", "address": m.address, "serial": m.serial,
                 "password": pw, "options": opts, "retries": 0, "backoff_max_s": 1,
                 "schedules": {"register": 1, "instant": None, "events": None, "interval": None}}
                for m, pw in ((ekt, None), (neva, "00000000"))],
        metrics={"port": None}, gateway={"shutdown_flush_s": 0})
    cfg = GatewayConfig.model_validate(raw)
    db = tmp_path / "gw-iec.db"

    def archived(kind: str) -> dict[str, set[datetime]]:
        out: dict[str, set[datetime]] = {"ekt": set(), "neva": set()}
        for v in stored(db):
            if v.archive == kind:
                out[v.meter_id].add(v.meter_time)
        return out

    async def run_until(pred, what: str) -> None:
        gw = Gateway(cfg, now=clock)
        await gw.start()
        try:
            await wait_until(pred, 60, what)
            polls = {mid: st.polls for mid, st in gw.workers["opto"].meters.items()}
            await wait_until(lambda: all(st.polls >= polls[mid] + 2  # and then some polls more
                                         for mid, st in gw.workers["opto"].meters.items()), 60, "two more polls")
        finally:
            await gw.stop()

    # First start on 30 January: the latest month start (January's), НЕВА's start of today.
    first = {at(date(2026, 1, 1))}
    await run_until(lambda: all(v == first for v in archived("month_start").values()), "month starts")
    assert archived("day_start") == {"ekt": set(), "neva": {at(date(2026, 1, 30))}}

    # The gateway is off for three days; 1 February passes meanwhile.
    clock.t += timedelta(days=3)
    after = first | {at(date(2026, 2, 1))}
    await run_until(lambda: all(v == after for v in archived("month_start").values()), "February's start")
    await pty.stop()

    values = stored(db)
    kept = [(v.meter_id, v.obis, v.meter_time) for v in values if v.archive]
    assert not [k for k, n in Counter(kept).items() if n > 1], "an archive value was stored twice"
    # Every archive value is what the meter served for that boundary, per tariff.
    for m in (ekt, neva):
        boundaries = after | {at(date(2026, 1, 30)), at(date(2026, 2, 2))}
        served = {(obis, t): v for kind, obis, t, v in m.served if t in boundaries}
        mine = [v for v in values if v.meter_id == m.id and v.archive]
        assert mine and all(served[(v.obis, v.meter_time)] == v.value for v in mine)
        n_tariffs = {"ekt": 6, "neva": 5}[m.id]
        assert len([v for v in mine if v.archive == "month_start"]) == 2 * n_tariffs
        feb = {v.obis: v.value for v in mine if v.meter_time == at(date(2026, 2, 1))}
        regs = m.registers(at(date(2026, 2, 1)))
        assert feb["1.0.1.8.0.255"] == round(regs[0], 2 if m is neva else 4)  # as the meter fixed it at 00:00
    # НЕВА keeps only today's start: the days of the outage are not in its memory any more.
    assert archived("day_start")["neva"] == {at(date(2026, 1, 30)), at(date(2026, 2, 2))}
    # The live registers kept flowing beside them.
    assert {v.meter_id for v in values if v.kind == "register" and not v.archive} == {"ekt", "neva"}
