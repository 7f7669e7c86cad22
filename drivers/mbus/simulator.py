"""M-Bus slave simulator: cold/hot water and heat meters behind primary addresses 0..250.

Answers SND_NKE with ACK and REQ_UD2 with an RSP_UD long frame (CI 0x72) holding: fabrication
number, date/time (type F, local time), volume, volume flow and, for hot water, the flow
temperature; heat meters add energy (MJ), power, flow/return temperatures and their
difference. Damaged requests, unknown addresses and the 0xFF broadcast get no answer;
0xFE gets one when a single meter is on the line.

The heat meter's hydraulics are derived from its energy (SimMeter models one quantity per
meter): temperatures come from options flow_temp/return_temp (defaults 70/45 °C) and the
volume is energy / (dT x 4.186 MJ/(m3 K)). Every value served is recorded under the OBIS code
the driver maps it to (drivers/mbus/obis.py).

Link layer as a slave keeps it: REQ_UD2 with the same FCB as the previous one repeats the
previous answer (the master lost it); SND_NKE clears that memory.

The shapes of real meters' telegrams are options of a SimMeter (meter.options):
- records_per_telegram: N records a telegram, chained by DIF 0x1F (more records follow);
- strict_fcb: after SND_NKE a REQ_UD2 with FCB = 0 gets no answer (EN 60870-5-2 wants FCB = 1);
- text_records: fabrication number and a plain-text-VIF customer id as variable-length (LVAR)
  text records (Landis+Gyr G350, Itron Cyble);
- unknown_vif: a record with the undefined VIF 0x7B (Sensus PolluTherm), which the driver skips;
- energy_vif (heat): mj (VIF 0x0E, default), kwh_accumulation (VIFE 0x3B heat / 0x3C cooling,
  Sensus PolluStat), mwh (FB 00, 0.1 MWh) or gj (FB 08, 0.1 GJ) (Engelmann SensoStar 2C);
- time_invalid: the date/time record has its invalid bit set (clock not set); the values served
  are recorded without a meter time.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from askue.drivers.errors import FrameError
from askue.drivers.mbus import encode as e
from askue.drivers.mbus import frames as f
from askue.drivers.sim.line import Reply, SessionFactory
from askue.drivers.sim.meter import SimMeter

MEDIUM_BY_RESOURCE = {"cold_water": 0x16, "hot_water": 0x06, "heat": 0x04}
_WATER_HEAT_GJ_PER_M3K = 0.004186


def numeric_serial(serial: str) -> str:
    """An 8-digit identification number; a replaced meter (SimMeter suffix) gets the next one."""
    digits = "".join(c for c in serial if c.isdigit())[-8:] or "0"
    n = int(digits)
    if digits != serial:
        n = (n + 1) % 10**8
    return f"{n:08d}"


class MBusSession:
    def __init__(self, meters: Mapping[int, SimMeter]):
        self.meters = dict(meters)
        self.access: dict[int, int] = {}
        self.links: dict[int, _Link] = {}
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        out: list[Reply] = []
        while self.buf:
            try:
                n = f.frame_length(bytes(self.buf[:4]))
            except FrameError:
                del self.buf[0]  # resynchronise on the next start character
                continue
            if n is None or len(self.buf) < n:
                break
            frame = bytes(self.buf[:n])
            del self.buf[:n]
            try:
                fr = f.parse_frame(frame)
            except FrameError:
                continue  # a slave does not answer a damaged frame
            reply = self._handle(fr)
            if reply is not None:
                out.append(reply)
        return out

    def _handle(self, fr: f.Frame) -> Reply | None:
        if fr.kind != "short":
            return None  # SND_UD (long frames from the master) is not simulated
        if fr.a == f.BROADCAST_REPLY:
            if len(self.meters) != 1:
                return None
            addr = next(iter(self.meters))
        elif fr.a in self.meters:
            addr = fr.a
        else:
            return None
        meter = self.meters[addr]
        if fr.c == f.C_SND_NKE:
            # The reset clears the FCB memory and any readout in progress.
            self.links[addr] = _Link(after_reset=True)
            return Reply(meter, bytes([f.ACK]))
        if fr.c & ~f.FCB == f.C_REQ_UD2:
            fcb = bool(fr.c & f.FCB)
            link = self.links.setdefault(addr, _Link())
            if link.after_reset and not fcb and meter.options.get("strict_fcb"):
                # EN 60870-5-2: after a reset the next frame carries FCB = 1; a strict slave
                # takes FCB = 0 for a repetition of an answer it never gave, and stays silent.
                return None
            link.after_reset = False
            if link.last_fcb == fcb and link.last_frame is not None:
                frame = link.last_frame  # same FCB: the master did not get our answer, repeat it
            else:
                if not link.pending:
                    link.pending = self._readout(addr, meter)
                frame, served = link.pending.pop(0)
                for obis, kind, value, stamp in served:
                    meter.record(kind, obis, stamp, value)
                link.last_frame = frame
            link.last_fcb = fcb
            return Reply(meter, frame, checksum_at=len(frame) - 2)
        return None

    def _readout(self, addr: int, meter: SimMeter) -> list[tuple[bytes, list[tuple]]]:
        """One snapshot of the meter as telegrams: all records in one, or options
        records_per_telegram records each with DIF 0x1F (more follow) on all but the last."""
        t = meter.now()
        mt = meter.clock(t)
        local = mt.astimezone(meter.local_tz).replace(tzinfo=None, second=0, microsecond=0)
        opts = meter.options
        invalid_time = bool(opts.get("time_invalid"))
        # The type F record has minute resolution: values are stamped with what the meter sends,
        # and with nothing when the meter marks its clock invalid.
        stamp = None if invalid_time else local.replace(tzinfo=meter.local_tz)
        serial = numeric_serial(meter.current_serial(t))
        register = meter.registers(t)[0]
        rate = meter.instant(t)["1.0.1.7.0.255"]  # resource units per hour
        recs: list[tuple[bytes, tuple[str, str, float] | None]] = []
        if opts.get("text_records"):
            # Identification as variable-length text, as a Landis+Gyr G350 and an Itron Cyble send it.
            recs.append((e.text_record(e.FABRICATION, f"ASK{serial}"), None))
            recs.append((e.text_record(e.plain_text_vib("cust. ID"), f"LS{serial[-6:]}"), None))
        else:
            recs.append((e.bcd_record(e.FABRICATION, serial), None))
        recs.append((e.datetime_record(local, invalid=invalid_time), None))

        def add(record: bytes, obis: str, kind: str, value: float) -> None:
            recs.append((record, (obis, kind, value)))

        if meter.resource in ("cold_water", "hot_water"):
            media = 8 if meter.resource == "cold_water" else 9
            litres, lph = round(register * 1000), round(rate * 1000)
            add(e.int_record(e.VOLUME_L, litres), f"{media}.0.1.0.0.255", "register", litres / 1000)
            if opts.get("unknown_vif"):
                recs.append((e.bcd_record(e.UNDEFINED_7B, 302), None))  # as a Sensus PolluTherm sends it
            add(e.int_record(e.FLOW_LH, lph), f"{media}.0.2.0.0.255", "instant", lph / 1000)
            if media == 9:
                temp = round(float(opts.get("flow_temp", 60.0)) * 100)
                add(e.int_record(e.FLOW_TEMP, temp, 2), "9.0.3.0.0.255", "instant", temp / 100)
        else:
            t_flow = round(float(opts.get("flow_temp", 70.0)) * 100)
            t_ret = round(float(opts.get("return_temp", 45.0)) * 100)
            dt = max(t_flow - t_ret, 1)
            litres = round(register / (dt / 100 * _WATER_HEAT_GJ_PER_M3K) * 1000)
            watts = round(rate * 1e9 / 3600)
            lph = round(rate / (dt / 100 * _WATER_HEAT_GJ_PER_M3K) * 1000)
            for rec, gj in _energy_records(register, str(opts.get("energy_vif", "mj"))):
                if gj is None:
                    recs.append((rec, None))
                else:
                    add(rec, "6.0.1.0.0.255", "register", gj)
            add(e.int_record(e.VOLUME_L, litres), "6.0.2.0.0.255", "register", litres / 1000)
            if opts.get("unknown_vif"):
                recs.append((e.bcd_record(e.UNDEFINED_7B, 302), None))
            add(e.int_record(e.POWER_W, watts), "6.0.8.0.0.255", "instant", watts / 1000)
            add(e.int_record(e.FLOW_LH, lph), "6.0.9.0.0.255", "instant", lph / 1000)
            add(e.int_record(e.FLOW_TEMP, t_flow, 2), "6.0.10.0.0.255", "instant", t_flow / 100)
            add(e.int_record(e.RETURN_TEMP, t_ret, 2), "6.0.11.0.0.255", "instant", t_ret / 100)
            add(e.int_record(e.TEMP_DIFF, t_flow - t_ret, 2), "6.0.12.0.0.255", "instant", (t_flow - t_ret) / 100)
        per = int(opts.get("records_per_telegram", 0)) or len(recs)
        parts = [recs[i:i + per] for i in range(0, len(recs), per)]
        frames = []
        for n, part in enumerate(parts):
            served = [(*item, stamp) for _, item in part if item is not None]
            self.access[addr] = (self.access.get(addr, -1) + 1) & 0xFF
            header = f.Header(serial, str(opts.get("manufacturer", "ASK")), int(opts.get("version", 1)),
                              MEDIUM_BY_RESOURCE[meter.resource], self.access[addr], 0)
            data = b"".join(r for r, _ in part) + (bytes([e.DIF_MORE_RECORDS]) if n < len(parts) - 1 else b"")
            frames.append((f.long_frame(f.C_RSP_UD, addr, f.CI_RSP_UD_LONG, f.encode_header(header) + data), served))
        return frames


ENERGY_VIFS = ("mj", "kwh_accumulation", "mwh", "gj")


def _energy_records(gj: float, how: str) -> list[tuple[bytes, float | None]]:
    """The heat register (GJ) as the meter's records, with the value each one serves (None for
    a record that is not the register). mj: VIF 0x0E; kwh_accumulation: kWh with VIFE 0x3B
    (heat) next to a 0x3C cooling register, as a Sensus PolluStat sends them; mwh / gj: the
    first extension table's 0.1 MWh (FB 00) and 0.1 GJ (FB 08), as an Engelmann SensoStar 2C."""
    if how == "mj":
        mj = round(gj * 1000)
        return [(e.int_record(e.ENERGY_MJ, mj), mj / 1000)]
    if how == "kwh_accumulation":
        kwh = round(gj / 0.0036)
        return [(e.int_record(e.ENERGY_KWH_POSITIVE, kwh), round(kwh * 0.0036, 9)),
                (e.int_record(e.ENERGY_KWH_NEGATIVE, 0), None)]
    if how == "mwh":
        tenth_mwh = round(gj / 0.36)
        return [(e.int_record(e.ENERGY_01_MWH, tenth_mwh), round(tenth_mwh * 0.36, 9))]
    if how == "gj":
        tenth_gj = round(gj * 10)
        return [(e.int_record(e.ENERGY_01_GJ, tenth_gj), tenth_gj / 10)]
    raise ValueError(f"options.energy_vif must be one of {', '.join(ENERGY_VIFS)}, got {how!r}")


@dataclass
class _Link:
    """Per-slave link state: the last FCB seen, the last answer (for repeats) and the rest
    of a multi-telegram readout."""

    last_fcb: bool | None = None
    last_frame: bytes | None = None
    after_reset: bool = False
    pending: list[tuple[bytes, list[tuple]]] = field(default_factory=list)  # (frame, values it serves)


def make_session_factory(meters: Mapping[int | str, SimMeter], *,
                         transport: Literal["tcp", "serial"] = "serial") -> SessionFactory:
    """Sessions for M-Bus slaves keyed by primary address (0..250). M-Bus over TCP is the same
    byte stream through a transparent gateway, so both transports frame alike."""
    if transport not in ("tcp", "serial"):
        raise ValueError(f"transport must be 'tcp' or 'serial', got {transport!r}")
    table: dict[int, SimMeter] = {}
    for a, m in meters.items():
        addr = int(a)
        if not 0 <= addr <= f.MAX_PRIMARY:
            raise ValueError(f"M-Bus primary address must be 0..{f.MAX_PRIMARY}, got {a!r} for meter {m.id}")
        if m.resource not in MEDIUM_BY_RESOURCE:
            raise ValueError(f"M-Bus simulator serves {', '.join(MEDIUM_BY_RESOURCE)} meters, "
                             f"meter {m.id} is {m.resource!r}")
        if str(m.options.get("energy_vif", "mj")) not in ENERGY_VIFS:
            raise ValueError(f"meter {m.id}: options.energy_vif must be one of {', '.join(ENERGY_VIFS)}, "
                             f"got {m.options['energy_vif']!r}")
        table[addr] = m
    return lambda: MBusSession(table)
