"""The IEC 62056-21 decoders added or changed for the meters' memory and per-parameter
errors, fed 10,000 seeded mutations each of the golden corpus
(tests/drivers/golden/iec62056_21/): a result or a typed DriverError, nothing else. The
simulator's side (archive requests) must never raise at all: a meter ignores or refuses
what it cannot read. (The option select parser, which now takes the vendor mode 6, is
fuzzed with the other frame parsers in test_frames_fuzz.py.)"""
from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from mutation import FUZZ, mutate_bytes, seeds

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import DriverError
from askue.drivers.iec62056_21 import archives as ar
from askue.drivers.iec62056_21 import frames as f
from askue.drivers.iec62056_21.models import MODELS
from askue.drivers.iec62056_21.simulator import make_session_factory
from askue.drivers.sim.meter import SimMeter
from askue.drivers.transport import TcpTransport

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parents[1] / "drivers" / "golden" / "iec62056_21"


def corpus() -> list[tuple[str, bytes]]:
    """(direction, message) of every captured trace."""
    out = []
    for p in sorted(GOLDEN.glob("*.json")):
        doc = json.loads(p.read_text(encoding="utf-8"))
        out += [(d, text.encode("latin-1")) for d, text in doc.get("trace", [])]
    return out


ANSWERS = [m for d, m in corpus() if d == "<" and m[:1] == b"\x02"]
REQUESTS = [m for d, m in corpus() if d == ">"]
# Archive answers as the simulator writes them, beside the captured ENMPE/EAMPE answers.
_SIM = SimMeter(id="f", serial="1", address="7", model="ce303", password="00000000",
                now=lambda: datetime(2026, 3, 10, 9, 30, tzinfo=UTC), history_days=90)
_NEVA = SimMeter(id="n", serial="1", address="7", model="neva-mt3", password="00000000",
                 now=lambda: datetime(2026, 3, 10, 9, 30, tzinfo=UTC), history_days=90)


def _sim_answers() -> list[bytes]:
    out = []
    for meter, scheme in ((_SIM, "energomera"), (_NEVA, "neva")):
        model = MODELS[meter.model]
        s = make_session_factory({"7": meter}, transport="tcp")()
        s.feed(b"/?7!\r\n\x06051\r\n")
        s.feed(f.password("00000000", model.bcc))
        for r in ar.month_reads(scheme, date(2026, 3, 10), 3) + [x for x in [ar.day_read(scheme, date(2026, 3, 10))]
                                                                  if x]:
            out += [rep.data for rep in s.feed(f.read(r.name, r.args, model.bcc))]
    return out


ARCHIVE_ANSWERS = _sim_answers() + [a for a in ANSWERS if a[1:6] in (b"ENMPE", b"EAMPE", b"ECMPE", b"ECDPE")]


def _resealed(data: bytes, rng: random.Random) -> bytes:
    """Half the time the damaged block gets a matching BCC again (SUM7 or XOR), so the cases
    reach the value layer instead of stopping at the checksum."""
    if rng.random() < 0.5 and len(data) > 2 and data[:1] in (b"\x01", b"\x02"):
        return f.seal(data[:-1], rng.choice((f.Bcc.SUM7, f.Bcc.XOR)))
    return data


def _fuzz(samples: list[bytes], call: Callable[[bytes], object]) -> dict[str, int]:
    seen = {"ok": 0, "typed": 0}

    @FUZZ
    @given(seeds)
    def one(seed: int) -> None:
        rng = random.Random(seed)
        data = _resealed(mutate_bytes(rng.choice(samples), rng), rng)
        try:
            call(data)
        except DriverError as e:
            assert str(e)
            seen["typed"] += 1
        else:
            seen["ok"] += 1

    one()
    return seen


def test_answers_with_errors_and_archives():
    names = ["ENMPE", "ET0PE", "0F088000", "0F808000", "0F0880FF", "030880FF", "VOLTA"]

    def parse(data: bytes) -> None:
        """Passes when any (name, method) reads it; else the last typed error."""
        last: DriverError | None = None
        for method in (f.Bcc.SUM7, f.Bcc.XOR):
            for name in names:
                try:
                    f.parse_answer(data, name, method)
                    last = None
                except f.RefusedParameter as e:
                    assert e.name == name and e.code
                    last = e
                except DriverError as e:
                    last = last or e
                else:
                    return
        if last is not None:
            raise last

    seen = _fuzz(ARCHIVE_ANSWERS + ANSWERS, parse)
    assert seen["typed"] > 1000 and seen["ok"] > 100, seen


def test_archive_answers_to_readings():
    """What the driver makes of an archive answer: readings stamped at the boundary, or a typed error."""
    d = get_driver("iec62056_21")(TcpTransport("127.0.0.1", 9), MeterSpec(id="f", driver="iec62056_21"))
    cases = [(MODELS["ce303"], ar.month_reads("energomera", date(2026, 3, 10), 1)[0]),
             (MODELS["neva-mt3"], ar.month_reads("neva", date(2026, 3, 10), 1)[0]),
             (MODELS["neva-mt3"], ar.day_read("neva", date(2026, 3, 10)))]

    def decode(data: bytes) -> None:
        """Read as each (model, archive) in turn; passes when one of them reads it."""
        last: DriverError | None = None
        for model, r in cases:
            try:
                values = f.parse_answer(data, r.name, model.bcc)
                if model.value_sep:
                    values = [v for s in values for v in s.split(model.value_sep)]
                readings = d._archive_readings(model, r, values)
            except DriverError as e:
                last = e
                continue
            assert readings and all(x.archive == r.archive and x.meter_time.hour == 0 for x in readings)
            return
        assert last is not None
        raise last

    seen = _fuzz(ARCHIVE_ANSWERS, decode)
    assert seen["typed"] > 1000 and seen["ok"] > 50, seen


def test_archive_request_arguments():
    """The simulator's decoding of an archive request (name and arguments)."""
    requests = [f.read(r.name, r.args, f.Bcc.SUM7) for r in ar.month_reads("energomera", date(2026, 3, 10), 3)]
    requests += [f.read(r.name, r.args, f.Bcc.XOR) for r in ar.month_reads("neva", date(2026, 3, 10), 12)]
    requests += [f.read("0F808000", "", f.Bcc.XOR), f.read("EAMPE", "04.22", f.Bcc.SUM7)]

    def decode(data: bytes) -> None:
        text = data.decode("latin-1")
        name, _, args = text.partition("(")
        args = args.rstrip(")")
        for scheme in ("energomera", "neva", None):
            r = ar.boundary_of(scheme, name, args, date(2026, 3, 10))
            assert r is None or r.boundary.day == 1 or r.archive == "day_start"
        ar.parse_month_arg(args)

    seen = _fuzz([r[4:-2] for r in requests], decode)
    assert seen["typed"] > 1000 and seen["ok"] > 100, seen


def test_simulator_takes_any_request():
    """Mutated captured requests (archive reads among them) to a simulated СЕ303 and НЕВА in
    programming mode: answers or silence, never an exception."""
    sessions = []
    for meter in (_SIM, _NEVA):
        s = make_session_factory({"7": meter}, transport="tcp")()
        sessions.append(s)
    samples = REQUESTS + [f.read("ENMPE", "02.26", f.Bcc.SUM7), f.read("EAMPE", "13.26", f.Bcc.SUM7),
                          f.read("0F08800B", "", f.Bcc.XOR), f.read("ECDPE", "", f.Bcc.SUM7)]

    @FUZZ
    @given(seeds)
    def one(seed: int) -> None:
        rng = random.Random(seed)
        data = mutate_bytes(rng.choice(samples), rng)
        for s, meter in zip(sessions, (_SIM, _NEVA), strict=True):
            if s.state != "prog":
                s.feed(b"/?7!\r\n\x06051\r\n")
                s.feed(f.password("00000000", MODELS[meter.model].bcc))
            s.feed(data)

    one()
