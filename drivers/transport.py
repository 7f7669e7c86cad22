"""Byte transports a bus owns: TCP (asyncio streams) and serial (pyserial-asyncio).

Protocol cores never do I/O; drivers move their frames through one of these,
so the same driver runs over TCP, a pty pair and a real RS-485 port.
"""
from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass

from askue.drivers.errors import MeterTimeout


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # N, E, O
    stopbits: float = 1


class Transport(ABC):
    """Half-duplex byte pipe. read_* raise MeterTimeout when nothing (enough) arrives."""

    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.bytes_out = 0
        self.bytes_in = 0

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @abstractmethod
    async def open(self) -> None:
        """Open the line; raise MeterTimeout when it cannot be opened."""

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._reader = self._writer = None

    async def ensure_open(self) -> None:
        if not self.is_open:
            await self.open()

    async def write(self, data: bytes) -> None:
        await self.ensure_open()
        assert self._writer is not None
        self._writer.write(data)
        self.bytes_out += len(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as e:
            await self.close()
            raise MeterTimeout(f"line closed while writing: {e}") from e

    async def read_exactly(self, n: int, timeout: float) -> bytes:
        await self.ensure_open()
        assert self._reader is not None
        try:
            # asyncio.timeout, not wait_for: no extra task per read (most of a poll's overhead).
            async with asyncio.timeout(timeout):
                data = await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as e:
            await self.close()
            raise MeterTimeout(f"line closed after {len(e.partial)} of {n} bytes") from e
        except TimeoutError:
            raise MeterTimeout(f"no answer within {timeout:.2f} s (wanted {n} bytes)") from None
        self.bytes_in += len(data)
        return data

    async def read_until(self, terminator: bytes, timeout: float, max_len: int = 4096) -> bytes:
        """Read up to and including `terminator`."""
        await self.ensure_open()
        assert self._reader is not None
        buf = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not buf.endswith(terminator):
            if len(buf) >= max_len:
                raise MeterTimeout(f"no {terminator!r} within {max_len} bytes")
            left = deadline - loop.time()
            if left <= 0:
                raise MeterTimeout(f"no {terminator!r} within {timeout:.2f} s ({len(buf)} bytes read)")
            try:
                async with asyncio.timeout(left):
                    chunk = await self._reader.read(1)
            except TimeoutError:
                raise MeterTimeout(f"no {terminator!r} within {timeout:.2f} s ({len(buf)} bytes read)") from None
            if not chunk:
                await self.close()
                raise MeterTimeout("line closed while reading")
            buf += chunk
        self.bytes_in += len(buf)
        return bytes(buf)

    async def read_available(self, timeout: float, max_len: int = 4096) -> bytes:
        """Whatever arrives within `timeout` after the first byte; b'' if nothing."""
        await self.ensure_open()
        assert self._reader is not None
        try:
            async with asyncio.timeout(timeout):
                data = await self._reader.read(max_len)
        except TimeoutError:
            return b""
        self.bytes_in += len(data)
        return data

    def discard_input(self) -> None:
        """Drop bytes left over from a previous exchange (late answers, line noise)."""
        if self._reader is not None:
            buf = getattr(self._reader, "_buffer", None)
            if buf is not None:
                buf.clear()

    async def set_serial(self, settings: SerialSettings) -> None:
        """Change line settings mid-session (IEC 62056-21 baud switch). TCP ignores it."""
        return None


class TcpTransport(Transport):
    def __init__(self, host: str, port: int, connect_timeout: float = 3.0):
        super().__init__()
        self.host, self.port, self.connect_timeout = host, port, connect_timeout

    def __repr__(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def open(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
        except (TimeoutError, OSError) as e:
            raise MeterTimeout(f"cannot connect to {self.host}:{self.port}: {e or 'timeout'}") from e


class SerialTransport(Transport):
    def __init__(self, device: str, settings: SerialSettings | None = None):
        super().__init__()
        self.device = device
        self.settings = settings or SerialSettings()

    def __repr__(self) -> str:
        s = self.settings
        return f"serial://{self.device}?{s.baudrate}-{s.bytesize}{s.parity}{s.stopbits:g}"

    async def open(self) -> None:
        import serial_asyncio

        s = self.settings
        try:
            self._reader, self._writer = await serial_asyncio.open_serial_connection(
                url=self.device, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity, stopbits=s.stopbits
            )
        except Exception as e:  # serial.SerialException, termios.error, OSError
            raise MeterTimeout(f"cannot open {self.device}: {e}") from e

    async def set_serial(self, settings: SerialSettings) -> None:
        self.settings = settings
        if self._writer is None:
            return
        ser = self._writer.transport.serial  # type: ignore[attr-defined]
        try:
            ser.baudrate, ser.bytesize, ser.parity, ser.stopbits = (
                settings.baudrate, settings.bytesize, settings.parity, settings.stopbits,
            )
        except Exception as e:
            # A pty accepts only 8N1; a real port may refuse odd settings too.
            raise MeterTimeout(f"{self.device}: cannot apply {settings}: {e}") from e
