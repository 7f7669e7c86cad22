"""An RS-485 line with real byte timing, between a pty and a sans-I/O meter simulator.

A pty delivers bytes as fast as the kernel copies them and ignores the baud rate,
so the timing is applied here, in a plain blocking loop (select/time.sleep have
microsecond resolution; an asyncio loop would round its timers to milliseconds):

- every byte takes one character time on the line: bits_per_char / baudrate
  (10 bits for 8N1: start + 8 data + stop; 11 for 8E1 or 8N2);
- the master's request occupies the line from the moment it arrives for
  len(request) character times;
- the meter answers only after the request's last byte plus a silence of
  `turnaround_chars` characters (Modbus RTU t3.5: the slave's end-of-frame
  detection) plus its processing time; the answer's bytes then reach the master
  one character time apart;
- half duplex: bytes from the master while the meter is transmitting are a
  collision (the answer is cut off and the request lost); bytes from the master
  before the request's end-of-frame silence has passed merge into one frame,
  which `frame_ok` (Modbus RTU: the CRC over the whole frame) rejects as garbled
  (no answer). All are counted.

Accounting: each answered exchange adds its ideal line time, the least time the
exchange can take on this line: (request + answer bytes) x character time + the
meter's end-of-frame silence + its processing time + the silence the master must
keep after the answer before the next request (t3.5 again). Efficiency =
ideal time of the exchanges done / wall time.
"""
from __future__ import annotations

import os
import select
import time
import tty
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from askue.drivers.sim.line import SessionFactory


@dataclass(frozen=True, slots=True)
class LineSettings:
    baudrate: int = 9600
    bits_per_char: int = 10  # 8N1; 11 for 8E1/8O1/8N2
    turnaround_chars: float = 3.5  # Modbus RTU t3.5
    processing_s: float = 0.005  # the meter's time to prepare an answer after the frame ended

    @property
    def char_s(self) -> float:
        return self.bits_per_char / self.baudrate

    @property
    def silence_s(self) -> float:
        # Modbus over serial line v1.02, 2.5.1.1: above 19200 baud t3.5 is fixed at 1.75 ms.
        if self.baudrate > 19200:
            return 0.00175
        return self.turnaround_chars * self.char_s

    def exchange_s(self, request_bytes: int, answer_bytes: int) -> float:
        """Least line time of one request/answer exchange, the gaps included."""
        return (request_bytes + answer_bytes) * self.char_s + 2 * self.silence_s + self.processing_s


@dataclass
class LineStats:
    exchanges: int = 0
    request_bytes: int = 0
    answer_bytes: int = 0
    unanswered: int = 0  # requests the simulator did not answer (unknown unit, bad CRC)
    collisions: int = 0  # the master talked while the meter was transmitting
    gap_violations: int = 0  # the master talked again before the end-of-frame silence
    garbled_frames: int = 0  # frames that fail frame_ok (e.g. two requests glued together)
    ideal_s: float = 0.0
    data_s: float = 0.0  # bytes x character time only
    late_bytes: int = 0  # bytes the relay wrote more than one character time late
    max_late_s: float = 0.0
    # The relay's own lateness on the last byte of each answer: time the master waited for
    # the simulator, not for the line or for itself (a real UART is never late).
    sim_late_s: float = 0.0
    # From the answer's last byte to the master's next request (t3.5 gap + the master's own work).
    master_turnaround_s: float = 0.0
    turnarounds: int = 0
    # The same split by whether the next request goes to the same meter (within one poll) or to
    # another one (between polls: the master stores what it read and picks the next job).
    turnaround_same_s: float = 0.0
    turnarounds_same: int = 0
    started: float = field(default_factory=time.monotonic)

    def report(self) -> dict:
        d = asdict(self)
        d["wall_s"] = time.monotonic() - d.pop("started")
        return d


class PacedLine:
    """The line: owns the pty master, serves `factory`'s session with byte timing."""

    def __init__(self, factory: SessionFactory, path: str | os.PathLike, settings: LineSettings,
                 address_of: Callable[[bytes], object] = lambda frame: frame[:1],
                 frame_ok: Callable[[bytes], bool] | None = None):
        self.address_of = address_of  # which meter a request is for (Modbus RTU: the first byte)
        # Whether what arrived between two silences is one intact frame (Modbus RTU: its CRC);
        # two requests sent without t3.5 between them are one garbled frame to a slave.
        self.frame_ok = frame_ok
        self.session = factory()
        self.settings = settings
        self.path = Path(path)
        self.stats = LineStats()
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        if self.path.is_symlink() or self.path.exists():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.symlink_to(os.ttyname(self.slave))

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.path.unlink()
        except OSError:
            pass

    def reset(self) -> None:
        self.stats = LineStats()

    def boost(self) -> bool:
        """Ask the OS to run this process ahead of ordinary ones, so the simulated line keeps
        its timing on a loaded machine; False when not permitted."""
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -10)
        except OSError:
            return False
        return True

    def _wait_readable(self, until: float, extra: list[int]) -> list[int]:
        left = until - time.monotonic()
        if left <= 0:
            r, _, _ = select.select([self.master, *extra], [], [], 0)
            return r
        r, _, _ = select.select([self.master, *extra], [], [], left)
        return r

    def serve(self, control_fd: int | None = None, on_control=None) -> None:
        """Run until on_control returns False (control_fd readable) or the pty closes."""
        s = self.settings
        extra = [control_fd] if control_fd is not None else []
        line_free = 0.0  # when the master may start the next frame (after the answer + t3.5)
        last_byte = None  # when the previous answer's last byte was written
        last_address: object = None
        while True:
            r, _, _ = select.select([self.master, *extra], [], [], 1.0)
            if control_fd is not None and control_fd in r:
                if on_control is None or not on_control():
                    return
                continue
            if self.master not in r:
                continue
            data = os.read(self.master, 4096)
            if not data:
                return
            arrived = time.monotonic()
            if arrived < line_free:
                self.stats.gap_violations += 1
            if last_byte is not None:
                self.stats.master_turnaround_s += arrived - last_byte
                self.stats.turnarounds += 1
                if self.address_of(data) == last_address:
                    self.stats.turnaround_same_s += arrived - last_byte
                    self.stats.turnarounds_same += 1
                last_byte = None
            last_address = self.address_of(data)
            request = bytearray(data)
            req_end = arrived + len(data) * s.char_s
            # Collect the rest of the frame: bytes that arrive before the end-of-frame silence
            # has passed belong to the same frame (as a slave's t3.5 timer sees them).
            while True:
                r = self._wait_readable(req_end + s.silence_s, [])
                if self.master not in r:
                    break
                more = os.read(self.master, 4096)
                if not more:
                    return
                request += more
                req_end = max(req_end, time.monotonic()) + len(more) * s.char_s
            self.stats.request_bytes += len(request)
            if self.frame_ok is not None and not self.frame_ok(bytes(request)):
                self.stats.garbled_frames += 1
                self.stats.unanswered += 1
                line_free = req_end + s.silence_s
                continue
            replies = self.session.feed(bytes(request))
            answer = b"".join(rep.data for rep in replies)
            if not answer:
                self.stats.unanswered += 1
                self.stats.data_s += len(request) * s.char_s
                line_free = req_end + s.silence_s
                continue
            start = req_end + s.silence_s + s.processing_s
            if not self._send(answer, start):
                line_free = time.monotonic() + s.silence_s
                continue
            last_byte = time.monotonic()
            self.stats.sim_late_s += max(0.0, last_byte - (start + len(answer) * s.char_s))
            self.stats.exchanges += 1
            self.stats.answer_bytes += len(answer)
            self.stats.ideal_s += s.exchange_s(len(request), len(answer))
            self.stats.data_s += (len(request) + len(answer)) * s.char_s
            line_free = start + len(answer) * s.char_s + s.silence_s

    def _send(self, answer: bytes, start: float) -> bool:
        """Write the answer one byte per character time; False on a collision."""
        s = self.settings
        for i in range(len(answer)):
            due = start + (i + 1) * s.char_s  # a byte is received once its stop bit is through
            while True:
                r = self._wait_readable(due, [])
                if self.master in r:
                    # The master talks over the meter: both frames are lost on a real bus.
                    os.read(self.master, 4096)
                    self.stats.collisions += 1
                    return False
                if time.monotonic() >= due:
                    break
            late = time.monotonic() - due
            if late > s.char_s:
                self.stats.late_bytes += 1
            self.stats.max_late_s = max(self.stats.max_late_s, late)
            os.write(self.master, answer[i:i + 1])
        return True


def modbus_rtu_frame_ok(frame: bytes) -> bool:
    """One intact Modbus RTU frame: at least address, function and CRC, and the CRC matches."""
    from askue.drivers.modbus.frames import with_crc

    return len(frame) >= 4 and with_crc(frame[:-2]) == frame
