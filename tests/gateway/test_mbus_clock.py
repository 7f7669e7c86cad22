"""An M-Bus heat meter that marks its clock invalid (type F IV bit, e.g. after a battery change)
next to one whose clock is fine, on one pty bus through the real gateway service: the invalid
meter's values are stored without a meter time and with the reason "meter_time_invalid", its
register schedule keeps running, and the other meter's clock is checked as usual."""
from __future__ import annotations

import msgspec
from gwtest import gateway_config, wait_until

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.mbus.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer
from askue.drivers.sim.meter import SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.gateway.store import Store


async def test_invalid_meter_time_keeps_values_and_schedule(tmp_path):
    sims = {
        1: SimMeter(id="heat-bad-clock", serial="70000001", resource="heat", address=1, mean_power=0.05,
                    options={"time_invalid": True, "energy_vif": "kwh_accumulation", "records_per_telegram": 4,
                             "strict_fcb": True}),
        2: SimMeter(id="heat-ok", serial="70000002", resource="heat", address=2, mean_power=0.05,
                    options={"energy_vif": "gj", "text_records": True, "unknown_vif": True}),
    }
    pty = await PtyServer(make_session_factory(sims, transport="serial"), tmp_path / "ttyMBUS").start()
    raw = gateway_config(
        tmp_path, "gw-mbus", free_port(),  # no broker: polling and storing must not care
        buses=[{"id": "mbus-1", "type": "serial", "device": str(tmp_path / "ttyMBUS"), "baudrate": 2400,
                "timeout_s": 0.5}],
        meters=[{"id": m.id, "bus": "mbus-1", "driver": "mbus", "address": a, "serial": m.serial,
                 "resource": "heat", "schedules": {"register": 1.0, "instant": None, "interval": None, "events": None},
                 "clock_check_s": 60, "retries": 0} for a, m in sims.items()],
        metrics={"port": None})
    gw = Gateway(GatewayConfig.model_validate(raw))
    await gw.start()
    w = gw.workers["mbus-1"]
    try:
        await wait_until(lambda: min(w.meters[m.id].polls for m in sims.values()) >= 3, 60, "three polls of each")
    finally:
        await gw.stop()
        await pty.stop()
    bad, ok = w.meters["heat-bad-clock"], w.meters["heat-ok"]
    assert "register" not in bad.unsupported and bad.last_error is None
    assert bad.clock_drift_s is None and ok.clock_drift_s is not None

    dec = msgspec.json.Decoder(Value)
    store = Store(tmp_path / "gw-mbus.db")
    values = [dec.decode(b) for b in store.all_bodies()]
    store.close()
    by_meter = {mid: [v for v in values if v.meter_id == mid] for mid in sims_ids(sims)}
    assert {v.obis for v in by_meter["heat-bad-clock"]} == {"6.0.1.0.0.255", "6.0.2.0.0.255"}
    assert all(v.meter_time is None and v.reasons == ["meter_time_invalid"] for v in by_meter["heat-bad-clock"])
    assert all(v.meter_time is not None and not v.reasons for v in by_meter["heat-ok"])
    served = {(o, v) for k, o, _t, v in sims[1].served if k == "register"}
    assert {(v.obis, v.value) for v in by_meter["heat-bad-clock"]} <= served


def sims_ids(sims: dict[int, SimMeter]) -> list[str]:
    return [m.id for m in sims.values()]
