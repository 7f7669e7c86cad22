"""The bus a commissioning command talks over: serial port or TCP endpoint from the command
line, opened with a clear answer when it cannot be (no such port, no permission, another
process holds it, nothing listens on the TCP port)."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from askue.drivers.errors import MeterTimeout
from askue.drivers.transport import SerialSettings, SerialTransport, TcpTransport, Transport

# Line settings each protocol is usually found with; the engineer overrides any of them.
DEFAULT_LINE = {
    "modbus": SerialSettings(9600, 8, "N", 1),
    "dlms": SerialSettings(9600, 8, "N", 1),
    "mercury": SerialSettings(9600, 8, "N", 1),
    "mbus": SerialSettings(2400, 8, "E", 1),
    "iec62056_21": SerialSettings(300, 7, "E", 1),
}


class BusUnavailable(Exception):
    """The port or endpoint cannot be used; str() says what, where and how to fix it."""


class BusBusy(BusUnavailable):
    """Another process holds the serial port (usually the gateway service)."""

    def __init__(self, device: str, holders: list[tuple[int, str]]):
        who = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in holders)
        hint = ("stop the gateway service first (systemctl stop askue-gateway) and start it again afterwards"
                if any("askue" in cmd for _pid, cmd in holders) else "stop that process first")
        super().__init__(f"serial port {device} is in use by {who}: {hint}")
        self.device, self.holders = device, holders


@dataclass(frozen=True)
class Bus:
    device: str | None = None  # serial port
    settings: SerialSettings | None = None
    host: str | None = None  # TCP endpoint
    port: int | None = None
    timeout_s: float = 1.0

    @property
    def is_serial(self) -> bool:
        return self.device is not None

    def describe(self) -> str:
        if self.device is not None:
            s = self.settings or SerialSettings()
            return f"{self.device} {s.baudrate} {s.bytesize}{s.parity}{s.stopbits:g}"
        return f"tcp://{self.host}:{self.port}"

    def config(self, bus_id: str) -> dict:
        """This bus as a gateway config `buses:` entry (gateway/config.py)."""
        if self.device is not None:
            s = self.settings or SerialSettings()
            return {"id": bus_id, "type": "serial", "device": self.device, "baudrate": s.baudrate,
                    "bytesize": s.bytesize, "parity": s.parity, "stopbits": int(s.stopbits)}
        return {"id": bus_id, "type": "tcp", "host": self.host, "port": self.port}


def add_bus_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bus (one of --port or --tcp)")
    where = g.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="DEVICE", help="serial port, e.g. /dev/ttyUSB0 (prefer /dev/serial/by-id/…)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="TCP endpoint: a meter's modem or an RS-485/TCP converter")
    g.add_argument("--baud", type=int, help="baud rate (default: the protocol's usual rate)")
    g.add_argument("--bytesize", type=int, choices=(7, 8), help="data bits")
    g.add_argument("--parity", choices=("N", "E", "O"), help="parity: N none, E even, O odd")
    g.add_argument("--stopbits", type=int, choices=(1, 2), help="stop bits")
    g.add_argument("--timeout", type=float, default=None, help="seconds to wait for each answer (default 1, M-Bus 2)")


def bus_from_args(args: argparse.Namespace, driver: str) -> Bus:
    timeout = args.timeout if args.timeout is not None else (2.0 if driver == "mbus" else 1.0)
    if timeout <= 0:
        raise ValueError("--timeout must be positive")
    if args.tcp:
        host, sep, port = args.tcp.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"--tcp {args.tcp!r}: write HOST:PORT, e.g. 192.0.2.10:4001")
        return Bus(host=host, port=int(port), timeout_s=timeout)
    d = DEFAULT_LINE.get(driver, SerialSettings())
    settings = SerialSettings(args.baud or d.baudrate, args.bytesize or d.bytesize, args.parity or d.parity,
                              args.stopbits or d.stopbits)
    return Bus(device=args.port, settings=settings, timeout_s=timeout)


def port_holders(device: str) -> list[tuple[int, str]]:
    """Other processes with `device` open (what `lsof DEVICE` shows): (pid, command line).
    Reads /proc; processes of other users are visible to root only. On a pseudo-terminal the
    process holding its master side (a simulator, socat, a serial-over-IP daemon) is the far
    end of the line, not a competitor, and is left out."""
    real = os.path.realpath(device)
    try:
        target = os.stat(real)
    except OSError:
        return []
    pty_index = int(real.rsplit("/", 1)[1]) if real.startswith("/dev/pts/") and real[9:].isdigit() else None
    me = os.getpid()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        holds = far_end = False
        for fd in fds:
            try:
                st = os.stat(fd)
                link = os.readlink(fd) if pty_index is not None else ""
            except OSError:
                continue
            if (st.st_ino, st.st_rdev) == (target.st_ino, target.st_rdev) and st.st_dev == target.st_dev:
                holds = True
            elif link == "/dev/ptmx" and _pty_index(entry, fd.name) == pty_index:
                far_end = True
        if holds and not far_end:
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                cmd = "?"
            out.append((int(entry.name), cmd or "?"))
    return out


def _pty_index(proc: Path, fd: str) -> int | None:
    try:
        for line in (proc / "fdinfo" / fd).read_text().splitlines():
            if line.startswith("tty-index:"):
                return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


async def open_bus(bus: Bus) -> Transport:
    """An open transport on the bus, or BusUnavailable saying why not."""
    if bus.device is not None:
        if not os.path.exists(bus.device):
            raise BusUnavailable(f"serial port {bus.device} does not exist: check the cable/adapter and the "
                                 "name (ls /dev/serial/by-id/)")
        holders = port_holders(bus.device)
        if holders:
            raise BusBusy(bus.device, holders)
        if not os.access(bus.device, os.R_OK | os.W_OK):
            raise BusUnavailable(f"serial port {bus.device}: permission denied; run as root or add the user to "
                                 "the dialout group")
        transport: Transport = SerialTransport(bus.device, bus.settings)
    else:
        assert bus.host is not None and bus.port is not None
        transport = TcpTransport(bus.host, bus.port, connect_timeout=max(bus.timeout_s, 2.0))
    try:
        await transport.open()
    except MeterTimeout as e:
        where = bus.describe()
        hint = ("check that the port settings are possible on this adapter" if bus.device
                else "check the address, that the converter is powered and on the network, and its TCP port")
        raise BusUnavailable(f"cannot open {where}: {e}; {hint}") from None
    return transport
