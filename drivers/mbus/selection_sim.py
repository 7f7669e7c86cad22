"""An M-Bus line of simulated slaves that also answers secondary addressing (selection.py):
several slaves may share a primary address (factory default 0), as on a real bus that is
commissioned by secondary address.

Each slave is the M-Bus simulator's own session (simulator.MBusSession) for its primary
address; this line adds what EN 13757-3 puts on top: SND_UD with CI 0x52 to address 253
selects every slave whose secondary address matches the mask (and deselects the others),
short frames to 253 go to the selected slaves, SND_NKE to 253 deselects. Answers sent at
the same time collide as they would on the wire: M-Bus slaves send a 0 bit by drawing
current, so overlapping bytes combine as a bitwise AND — identical E5 acknowledgements stay
a clean E5, two different telegrams become a frame whose checksum fails.
"""
from __future__ import annotations

from collections.abc import Iterable

from askue.drivers.errors import FrameError
from askue.drivers.mbus import frames as f
from askue.drivers.mbus import selection
from askue.drivers.mbus.simulator import MEDIUM_BY_RESOURCE, MBusSession, numeric_serial
from askue.drivers.sim.line import Reply, SessionFactory
from askue.drivers.sim.meter import SimMeter


def sim_secondary_address(meter: SimMeter) -> str:
    """The secondary address the M-Bus simulator's telegrams carry for `meter`."""
    opts = meter.options
    header = f.Header(numeric_serial(meter.current_serial()), str(opts.get("manufacturer", "ASK")),
                      int(opts.get("version", 1)), MEDIUM_BY_RESOURCE[meter.resource], 0, 0)
    return selection.secondary_address(header)


def collide(answers: list[bytes]) -> bytes:
    """What the master receives when these answers are sent at once (bitwise AND, aligned)."""
    if not answers:
        return b""
    out = bytearray(max(len(a) for a in answers))
    for i in range(len(out)):
        b = 0xFF
        for a in answers:
            if i < len(a):
                b &= a[i]
        out[i] = b
    return bytes(out)


class SecondaryLineSession:
    def __init__(self, slaves: Iterable[tuple[int, SimMeter]]):
        self.slaves = [(primary, MBusSession({primary: m}), m) for primary, m in slaves]
        self.selected: set[int] = set()  # indexes into slaves
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        out: list[Reply] = []
        while self.buf:
            try:
                n = f.frame_length(bytes(self.buf[:4]))
            except FrameError:
                del self.buf[0]
                continue
            if n is None or len(self.buf) < n:
                break
            raw = bytes(self.buf[:n])
            del self.buf[:n]
            try:
                frame = f.parse_frame(raw)
            except FrameError:
                continue  # no slave answers a damaged frame
            reply = self._handle(frame, raw)
            if reply is not None:
                out.append(reply)
        return out

    def _handle(self, frame: f.Frame, raw: bytes) -> Reply | None:
        mask = selection.parse_select(frame)
        answers: list[tuple[SimMeter, bytes]] = []
        if mask is not None:
            self.selected = {i for i, (_p, _s, m) in enumerate(self.slaves)
                             if selection.matches(mask, sim_secondary_address(m))}
            answers = [(self.slaves[i][2], bytes([f.ACK])) for i in sorted(self.selected)]
        elif frame.kind == "short" and frame.a == selection.ADDRESS_NETWORK_LAYER:
            for i in sorted(self.selected):
                primary, session, m = self.slaves[i]
                answers += [(m, r.data) for r in session.feed(f.short_frame(frame.c, primary)) if r.data]
            if frame.c == f.C_SND_NKE:
                self.selected = set()
        else:
            for primary, session, m in self.slaves:
                if frame.a in (primary, f.BROADCAST_REPLY) or frame.a == f.BROADCAST_NO_REPLY:
                    target = raw if frame.a == primary else _readdress(frame, primary)
                    if frame.a == f.BROADCAST_NO_REPLY:
                        session.feed(target)
                        continue
                    answers += [(m, r.data) for r in session.feed(target) if r.data]
        if not answers:
            return None
        meter = answers[0][0]
        if len(answers) == 1:
            data = answers[0][1]
            return Reply(meter, data, checksum_at=len(data) - 2 if len(data) > 1 else None)
        return Reply(None, collide([a for _m, a in answers]))


def _readdress(frame: f.Frame, primary: int) -> bytes:
    if frame.kind == "short":
        return f.short_frame(frame.c, primary)
    return f.long_frame(frame.c, primary, frame.ci, frame.data)


def make_session_factory(slaves: Iterable[tuple[int, SimMeter]]) -> SessionFactory:
    """One line of M-Bus slaves given as (primary address, meter) pairs; primary addresses may
    repeat. Serial and TCP frame alike (a transparent gateway)."""
    table = list(slaves)
    for primary, m in table:
        if not 0 <= primary <= f.MAX_PRIMARY:
            raise ValueError(f"M-Bus primary address must be 0..{f.MAX_PRIMARY}, got {primary} for {m.id}")
        if m.resource not in MEDIUM_BY_RESOURCE:
            raise ValueError(f"meter {m.id}: M-Bus simulator serves {', '.join(MEDIUM_BY_RESOURCE)}")
    return lambda: SecondaryLineSession(table)
