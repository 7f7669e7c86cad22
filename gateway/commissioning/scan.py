"""Find the meters on a bus.

- By address, through the drivers' own session opening (`Driver.connect()`): Modbus unit ids
  (with the model's register map: its serial register), M-Bus primary addresses (SND_NKE +
  REQ_UD2), Меркурий network addresses (test, open channel, serial), IEC 62056-21 device
  addresses (sign-on with each serial/address of a list). The universal address 0 of
  Меркурий is tried first: it answers cleanly only when one meter is on the line.
- M-Bus by secondary address: the EN 13757-3 wildcard search (drivers/mbus/selection.py),
  narrowing digit by digit where several slaves answer at once.

Each address that answers is a Found; answers that arrive damaged are counted, because a bus
that only garbles is set to the wrong baud rate or parity.
"""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import AuthError, DriverError, FrameError, MeterTimeout, ProtocolError
from askue.drivers.mbus import frames as mbus
from askue.drivers.mbus import selection
from askue.drivers.modbus.frames import ModbusExceptionError
from askue.drivers.transport import Transport
from askue.gateway.commissioning.bus import Bus, BusUnavailable, open_bus
from askue.gateway.commissioning.diagnosis import Diagnosis, Exit, diagnose, garbled_hint
from askue.gateway.commissioning.probe import arrived_since
from askue.gateway.commissioning.progress import Progress

MERCURY_UNIVERSAL = 0
GATEWAY_NOBODY = (0x0A, 0x0B)  # Modbus exceptions: gateway path unavailable, target failed to respond


@dataclass
class Found:
    address: int | str
    serial: str | None = None
    model: str | None = None
    note: str | None = None  # answers, but: password refused / not this model / shared address…
    secondary: str | None = None  # M-Bus secondary address
    identified: bool = True  # False: something answers here, its identity is unknown


@dataclass
class ScanResult:
    bus: Bus
    driver: str
    found: list[Found] = field(default_factory=list)
    garbled: list[tuple[int | str, str]] = field(default_factory=list)  # address, what arrived
    tried: int = 0
    elapsed_s: float = 0.0
    failure: Diagnosis | None = None

    @property
    def exit_code(self) -> Exit:
        if self.failure:
            return self.failure.code
        if self.found:
            return Exit.OK
        return Exit.GARBLED if self.garbled else Exit.NO_ANSWER

    def summary(self) -> str:
        if self.failure:
            return self.failure.message
        n = len(self.found)
        if n:
            extra = (f"; {len(self.garbled)} addresses answered damaged ({garbled_hint(self.bus)})"
                     if self.garbled else "")
            return f"{n} meter(s) found on {self.bus.describe()} in {self.elapsed_s:.1f} s{extra}"
        if self.garbled:
            return (f"no meter found on {self.bus.describe()}, but {len(self.garbled)} address(es) answered "
                    f"with damaged frames: {garbled_hint(self.bus)}")
        return (f"no meter answers on {self.bus.describe()} ({self.tried} addresses tried): check the meters' "
                "power, the A/B wiring, the port and the address range")

    def meter_configs(self, bus_id: str, password: str | None, model: str | None,
                      options: dict[str, Any]) -> list[tuple[dict[str, Any], str | None, bool]]:
        """`meters:` entries for the gateway config, one per identified meter, each with a
        note for the engineer (None when there is nothing to say) and whether it can be used as
        it is (False: printed commented out)."""
        shared = Counter(f.address for f in self.found if f.identified)
        out = []
        for f in self.found:
            if not f.identified:
                continue
            entry: dict[str, Any] = {"id": _meter_id(self.driver, f), "bus": bus_id, "driver": self.driver,
                                     "address": f.address}
            if f.serial:
                entry["serial"] = f.serial
            if model:
                entry["model"] = model
            if password is not None:
                entry["password"] = password
            if self.driver == "mbus":
                entry["resource"] = _mbus_resource(f.model or "")
            if options:
                entry["options"] = dict(options)
            note, enabled = f.note, True
            if shared[f.address] > 1:
                enabled = False  # the gateway refuses two meters on one address
                note = (f"primary address {f.address} is shared by {shared[f.address]} meters: give each its own "
                        "primary address, then uncomment")
            out.append((entry, note, enabled))
        return out


def _meter_id(driver: str, f: Found) -> str:
    short = {"mercury": "merc", "iec62056_21": "iec", "modbus": "mb", "mbus": "mbus", "dlms": "dlms"}[driver]
    key = "".join(c for c in (f.serial or str(f.address)) if c.isalnum() or c in "-_.") or str(f.address)
    return f"{short}-{key}"[:64]


def _mbus_resource(model: str) -> str:
    m = model.lower()
    if "heat" in m:
        return "heat"
    if "warm" in m or "hot" in m:
        return "hot_water"
    return "cold_water"


async def scan_addresses(bus: Bus, driver: str, addresses: Iterable[int | str], *, password: str | None = None,
                         model: str | None = None, options: dict[str, Any] | None = None,
                         progress: Callable[[int, str], Progress] | None = None) -> ScanResult:
    """Open a session with each address in turn (the driver's connect()); close it again."""
    addrs = list(addresses)
    res = ScanResult(bus, driver)
    t0 = time.monotonic()
    try:
        transport = await open_bus(bus)
    except BusUnavailable as e:
        res.failure = diagnose(e, bus, f"{driver} scan")
        return res
    bar = progress(len(addrs), "addresses") if progress else None
    try:
        for addr in addrs:
            spec = MeterSpec(id=f"scan-{addr}", driver=driver, address=addr, password=password, model=model,
                             options={"timeout": bus.timeout_s, **(options or {})})
            try:
                drv = get_driver(driver)(transport, spec)
            except DriverError as e:
                res.failure = Diagnosis(Exit.USAGE, f"{driver} scan, address {addr!r}: {e}")
                break
            res.tried += 1
            await _try_one(drv, transport, addr, res)
            if bar:
                bar.step(len(res.found))
    finally:
        if bar:
            bar.close()
        await transport.close()
        res.elapsed_s = round(time.monotonic() - t0, 3)
    return res


async def _try_one(drv: Any, transport: Transport, addr: int | str, res: ScanResult) -> None:
    mark = transport.bytes_in
    try:
        ident = await drv.connect()
    except AuthError as e:
        res.found.append(Found(addr, note=f"answers, but the password was refused ({e})", identified=True))
    except FrameError as e:
        res.garbled.append((addr, str(e)))
    except MeterTimeout as e:
        if await arrived_since(transport, mark):
            res.garbled.append((addr, f"bytes without a valid answer ({e})"))
    except ProtocolError as e:
        if isinstance(e, ModbusExceptionError) and e.code in GATEWAY_NOBODY:
            pass  # a Modbus TCP gateway saying nobody answers behind it
        else:
            res.found.append(Found(addr, note=f"answers, but: {e}", identified=False))
    else:
        res.found.append(Found(addr, ident.serial, ident.model))
        with contextlib.suppress(DriverError, OSError):
            await drv.close()
    transport.discard_input()


async def scan_mercury(bus: Bus, addresses: Iterable[int], *, password: str | None = None,
                       options: dict[str, Any] | None = None, universal: bool = True,
                       progress: Callable[[int, str], Progress] | None = None) -> ScanResult:
    """Меркурий: the universal address 0 first (one clean answer = the only meter on the line;
    a damaged one = several answered at once), then each network address."""
    addrs = [a for a in addresses if a != MERCURY_UNIVERSAL]
    if not universal:
        return await scan_addresses(bus, "mercury", addrs, password=password, options=options, progress=progress)
    first = await scan_addresses(bus, "mercury", [MERCURY_UNIVERSAL], password=password, options=options)
    if first.failure:
        return first
    rest = await scan_addresses(bus, "mercury", addrs, password=password, options=options, progress=progress)
    for f in first.found:
        # Address 0 reaches whichever meter listens: not an address to configure.
        f.identified = False
        f.note = ("answers the universal address 0" + (f" (serial {f.serial})" if f.serial else "")
                  + ": use it only while this meter is the only one on the line")
    rest.found = first.found + rest.found
    rest.garbled = [(a, "several meters answered the universal address 0 at once: " + w) for a, w in first.garbled] \
        + rest.garbled
    rest.tried += first.tried
    rest.elapsed_s = round(rest.elapsed_s + first.elapsed_s, 3)
    return rest


async def scan_mbus_secondary(bus: Bus, *, progress: Callable[[int | None, str], Progress] | None = None,
                              prefix: str = "") -> ScanResult:
    """Every M-Bus slave by its secondary address (wildcard search over the identification number)."""
    res = ScanResult(bus, "mbus")
    t0 = time.monotonic()
    try:
        transport = await open_bus(bus)
    except BusUnavailable as e:
        res.failure = diagnose(e, bus, "M-Bus secondary search")
        return res
    bar = progress(None, "masks tried") if progress else None
    stats = selection.SearchStats()
    headers: dict[str, mbus.Telegram] = {}

    async def probe(mask: str) -> selection.Probe:
        transport.discard_input()
        await transport.write(selection.select_frame(mask))
        answer = await transport.read_available(bus.timeout_s)
        if answer:
            answer += await _more(transport, bus)
        if bar:
            bar.step(len(headers))
        res.tried += 1
        return selection.classify(answer)

    async def identify() -> str | None:
        transport.discard_input()
        await transport.write(mbus.short_frame(mbus.C_REQ_UD2, selection.ADDRESS_NETWORK_LAYER))
        try:
            head = await transport.read_exactly(1, bus.timeout_s)
            if head[0] == mbus.START_LONG:
                head += await transport.read_exactly(3, bus.timeout_s)
            n = mbus.frame_length(head)
            frame = head + (await transport.read_exactly(n - len(head), bus.timeout_s + n * 11 / 2400)
                            if n and n > len(head) else b"")
            tel = mbus.decode_rsp_ud(frame)
        except (DriverError, ValueError):
            return None  # several selected slaves answered at once: the search narrows the mask
        address = selection.secondary_address(tel.header)
        headers[address] = tel
        return address

    try:
        addresses = await selection.search(probe, identify, stats=stats, prefix=prefix)
    except DriverError as e:
        res.failure = diagnose(e, bus, "M-Bus secondary search")
        addresses = []
    finally:
        if bar:
            bar.close()
        await transport.close()
    for address in addresses:
        tel = headers[address]
        h = tel.header
        res.found.append(Found(tel.address, h.ident, f"{h.manufacturer} v{h.version} ({h.medium_name})",
                               secondary=address))
    if not res.found and stats.collisions:
        res.garbled.append(("secondary search", f"{stats.collisions} masks drew damaged or colliding answers "
                                                "and no slave could be read alone"))
    res.elapsed_s = round(time.monotonic() - t0, 3)
    return res


async def _more(transport: Transport, bus: Bus) -> bytes:
    """Bytes still arriving right after the first ones (a second slave's answer)."""
    return await transport.read_available(min(0.05 + 11 * 4 / 2400, bus.timeout_s))
