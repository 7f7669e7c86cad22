"""A Меркурий line cut right after the meter answered its registers, before the gateway's
clock check of the same poll: the registers already read are kept (the poll itself counts as
failed and is retried later), not dropped with the failed clock read."""
from __future__ import annotations

import msgspec
from gwtest import gateway_config, wait_until

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.mercury.driver import MercuryDriver
from askue.drivers.mercury.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer
from askue.drivers.sim.meter import SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.gateway.store import Store


async def test_registers_read_before_a_line_cut_are_kept(tmp_path, monkeypatch):
    meter = SimMeter(id="mr1", serial="40000021", password="111111", address=21, model="Меркурий 234")
    read_registers = MercuryDriver.read_registers

    async def then_cut(self: MercuryDriver):
        out = await read_registers(self)
        meter.faults.silent = True  # the pair is cut: the clock check that follows gets no answer
        return out

    monkeypatch.setattr(MercuryDriver, "read_registers", then_cut)
    tty = tmp_path / "ttyMERC"
    pty = await PtyServer(make_session_factory({21: meter}, transport="serial"), tty).start()
    raw = gateway_config(
        tmp_path, "gw-merc", free_port(),  # no broker: the store keeps everything
        buses=[{"id": "rs485", "type": "serial", "device": str(tty), "baudrate": 9600, "timeout_s": 0.3}],
        meters=[{"id": "mr1", "bus": "rs485", "driver": "mercury", "address": 21, "serial": "40000021",
                 "password": "111111", "model": "Меркурий 234", "retries": 0, "backoff_max_s": 60,
                 "clock_check_s": 3600,
                 "schedules": {"register": 60, "instant": None, "events": None, "interval": None}}],
        metrics={"port": None}, gateway={"shutdown_flush_s": 0})
    gw = Gateway(GatewayConfig.model_validate(raw))
    await gw.start()
    state = gw.workers["rs485"].meters["mr1"]
    try:
        await wait_until(lambda: state.failures >= 1, 30, "the poll to fail on the clock check")
    finally:
        await gw.stop()
        await pty.stop()
    assert "MeterTimeout" in (state.last_error or "")

    served = {(obis, t, v) for kind, obis, t, v in meter.served if kind == "register" and t is not None}
    assert len(served) >= 8  # A+, A-, R+, R- in total and per tariff
    store = Store(tmp_path / "gw-merc.db")
    dec = msgspec.json.Decoder(Value)
    kept = {(v.obis, v.meter_time, v.value) for v in (dec.decode(b) for b in store.all_bodies())}
    store.close()
    assert served <= kept, f"read from the meter, not kept: {sorted(served - kept)[:5]}"
