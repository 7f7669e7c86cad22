"""Modbus RTU / TCP driver: reads the fields of a register map over a bus Transport.

Meter options (MeterSpec.options):
  framing       "tcp" (MBAP) or "rtu" (CRC-16); default: tcp on a TcpTransport, else rtu
  timeout       seconds to wait for the first byte of an answer (default 1.0)
  frame_timeout seconds to wait for the rest once it started (default 0.5): a frame
                that stops half-way is reported as damaged, not as a silent meter
  max_gap, max_registers  override the map's coalescing limits
  clock_tz      time zone of the meter clock, e.g. "+03:00" (overrides the map)
MeterSpec.address is the unit id; MeterSpec.model names the map in configs/models/.
"""
from __future__ import annotations

import logging
from datetime import datetime

from askue.drivers.base import (
    Capability,
    Driver,
    Kind,
    MeterIdentity,
    MeterSpec,
    Reading,
    register_driver,
)
from askue.drivers.errors import DriverError, FrameError, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.modbus import codec, frames
from askue.drivers.modbus.coalesce import Block, plan
from askue.drivers.modbus.register_map import MapError, MapField, RegisterMap, cached_map, load_map
from askue.drivers.transport import TcpTransport, Transport

log = logging.getLogger("askue.drivers.modbus")


class ConfigError(DriverError):
    """The meter's configuration cannot work (unknown model, bad option)."""

    retry = False


@register_driver("modbus")
class ModbusDriver(Driver):
    capabilities = frozenset({Capability.REGISTERS, Capability.INSTANT, Capability.CLOCK})

    def __init__(self, transport: Transport, meter: MeterSpec, register_map: RegisterMap | None = None):
        super().__init__(transport, meter)
        opts = meter.options or {}
        try:
            if register_map is not None:
                self.map = register_map
            elif opts.get("map_file"):
                self.map = load_map(opts["map_file"])
            elif meter.model:
                self.map = cached_map(meter.model)
            else:
                raise ConfigError(f"meter {meter.id}: set model (a register map in configs/models/)")
        except MapError as e:
            raise ConfigError(f"meter {meter.id}: {e}") from None
        framing = opts.get("framing") or ("tcp" if isinstance(transport, TcpTransport) else "rtu")
        if framing not in ("tcp", "rtu"):
            raise ConfigError(f"meter {meter.id}: framing {framing!r}; use 'tcp' or 'rtu'")
        self.framing: frames.Framing = framing
        try:
            self.unit = int(meter.address)
        except (TypeError, ValueError):
            raise ConfigError(f"meter {meter.id}: address {meter.address!r} is not a Modbus unit id") from None
        low, top = (0, 255) if framing == "tcp" else (1, 247)
        if not low <= self.unit <= top:
            raise ConfigError(f"meter {meter.id}: unit id {self.unit} out of range for {framing} ({low}..{top})")
        self.timeout = float(opts.get("timeout", 1.0))
        self.frame_timeout = float(opts.get("frame_timeout", 0.5))
        self.max_gap = int(opts.get("max_gap", self.map.max_gap))
        self.max_registers = min(int(opts.get("max_registers", self.map.max_registers)), 125)
        try:
            self.tz = self.map.clock_tz(opts)
        except ValueError as e:
            raise ConfigError(f"meter {meter.id}: clock_tz: {e}") from None
        # What this meter's map can do (the class lists what the driver can do at most):
        # the gateway must not ask an SDM630, which has no clock, for its clock.
        caps = {Capability.REGISTERS: self.map.by_kind("register"), Capability.INSTANT: self.map.by_kind("instant"),
                Capability.CLOCK: self.map.clock}
        self.capabilities = frozenset(c for c, has in caps.items() if has)  # type: ignore[misc]
        self._tid = 0
        self.invalid: list[str] = []  # fields the last read skipped as invalid (NaN)
        self.requests = 0  # requests sent, for tests and statistics

    # ---- public interface ---------------------------------------------------------------
    async def connect(self) -> MeterIdentity:
        await self.transport.ensure_open()
        serial = await self.read_serial() if self.map.serial else (self.meter.serial or "")
        if self.map.serial:
            self.check_identity(serial)
        return MeterIdentity(serial=serial, model=self.map.model)

    async def read_serial(self) -> str:
        s = self.map.serial
        if s is None:
            raise Unsupported(f"{self.map.model}: the map has no serial number register")
        regs = await self._read_spans([(s.address, s.count)])
        words = [regs[s.address + i] for i in range(s.count)]
        if s.type == "string":
            raw = codec.words_to_bytes(words, self.map.byte_order, "big")
            return raw.replace(b"\x00", b"").decode("ascii", "replace").strip()
        return str(codec.decode_raw(s.type, words, self.map.byte_order, self.map.word_order))

    async def read_registers(self) -> list[Reading]:
        return await self._read_fields(self.map.by_kind("register"), Kind.REGISTER)

    async def read_instant(self) -> list[Reading]:
        return await self._read_fields(self.map.by_kind("instant"), Kind.INSTANT)

    async def read_clock(self) -> datetime:
        c = self.map.clock
        if c is None:
            raise Unsupported(f"{self.map.model}: the map has no clock register")
        regs = await self._read_spans([(c.address, c.count)])
        return self._decode_clock(regs)

    # ---- internals -----------------------------------------------------------------------
    async def _read_fields(self, fields: list[MapField], kind: Kind) -> list[Reading]:
        if not fields:
            raise Unsupported(f"{self.map.model}: the map has no {kind.value} fields")
        c = self.map.clock
        spans = [(f.address, f.count) for f in fields]
        if c:
            spans.append((c.address, c.count))  # the meter's own timestamp, same session
        regs = await self._read_spans(spans)
        meter_time = self._decode_clock(regs) if c else None
        out, invalid = [], []
        for f in fields:
            words = [regs[f.address + i] for i in range(f.count)]
            try:
                value = codec.decode_value(f.type, words, self.map.byte_order, self.map.word_order, f.scale)
            except ValueError as e:
                # A meter marks a value it cannot measure (missing sensor) with NaN: drop that
                # one channel, keep the others.
                invalid.append(f"{f.name} ({f.obis}) at {f.address}: {e}")
                continue
            out.append(Reading(f.obis, kind, value, f.unit, meter_time))
        self.invalid = invalid
        if invalid:
            if not out:
                raise ProtocolError(f"unit {self.unit}: no valid value: {'; '.join(invalid)}")
            log.warning("meter %s unit %s: skipped invalid values: %s", self.meter.id, self.unit, "; ".join(invalid))
        return out

    def _decode_clock(self, regs: dict[int, int]) -> datetime:
        c = self.map.clock
        assert c is not None
        words = [regs[c.address + i] for i in range(c.count)]
        try:
            return codec.decode_clock(c.format, words, self.map.byte_order, self.map.word_order, self.tz)
        except (ValueError, OverflowError, OSError) as e:
            raise ProtocolError(f"unit {self.unit}: clock registers {words} at {c.address} "
                                f"are not a valid {c.format} date/time: {e}") from None

    async def _read_spans(self, spans: list[tuple[int, int]]) -> dict[int, int]:
        regs: dict[int, int] = {}
        blocks = plan(spans, self.max_gap, self.max_registers)
        c = self.map.clock
        if c:
            # the clock first: the values that follow are stamped with the time read just before them
            blocks.sort(key=lambda b: not b.covers(c.address, c.count))
        for block in blocks:
            values = await self.read_block(self.map.function, block)
            regs.update(zip(range(block.start, block.end), values, strict=True))
        return regs

    async def read_block(self, function: int, block: Block) -> list[int]:
        """One request/response exchange. Raises MeterTimeout, FrameError or ModbusExceptionError."""
        pdu = frames.read_pdu(function, block.start, block.count)
        self._tid = (self._tid + 1) & 0xFFFF
        request = frames.build_request(self.framing, self.unit, pdu, self._tid)
        what = f" reading {block.count} registers at {block.start}"
        self.transport.discard_input()  # late answers and noise from earlier exchanges
        await self.transport.write(request)
        self.requests += 1
        try:
            if self.framing == "rtu":
                return await self._rtu_response(function, block.count)
            return await self._tcp_response(function, block.count)
        except frames.ModbusExceptionError as e:
            raise frames.ModbusExceptionError(e.function, e.code, self.unit, what) from None
        except FrameError as e:
            if self.framing == "tcp":
                await self.transport.close()  # a TCP stream out of step cannot be resynchronised
            raise FrameError(f"unit {self.unit}{what}: {e}") from None
        except MeterTimeout as e:
            raise MeterTimeout(f"unit {self.unit}{what}: {e}") from None

    async def _rest(self, n: int, got: int) -> bytes:
        """The remainder of a frame that already started; silence here means a broken frame."""
        try:
            return await self.transport.read_exactly(n, self.frame_timeout)
        except MeterTimeout as e:
            raise FrameError(f"truncated frame: {got} bytes, then {e}") from None

    async def _rtu_response(self, function: int, count: int) -> bytes:
        first = await self.transport.read_exactly(1, self.timeout)
        head = first + await self._rest(frames.RTU_HEAD - 1, 1)
        total = frames.rtu_length(head)
        frame = head + await self._rest(total - len(head), len(head))
        return frames.parse_rtu_response(frame, self.unit, function, count)

    async def _tcp_response(self, function: int, count: int) -> list[int]:
        loop_guard = 0
        while True:
            first = await self.transport.read_exactly(1, self.timeout)
            head = first + await self._rest(frames.MBAP_HEAD - 1, 1)
            tid, rest, _unit = frames.parse_mbap(head)
            adu = head + await self._rest(rest, len(head))
            if tid != self._tid and loop_guard < 4:
                # an answer to an earlier request that timed out: skip it, ours may follow
                loop_guard += 1
                continue
            return frames.parse_tcp_response(adu, self._tid, self.unit, function, count)
