"""What gateways send a head-end, as MQTT messages: the traffic shapes of the live ingest
benchmark, built the same way in the publisher process (which sends them) and in the
benchmark (which COPYs the same rows for its baselines).

- `live`: 2,000 meters on 40 gateways, one poll per message: 20 registers (A+, A-, R+, R-,
  each total and four tariff zones) and the last profile interval of 4 channels, every 5
  minutes, with the meter's status, as a gateway publishes right after a poll;
- `batched`: the same values, each gateway's in messages of 500 (a gateway catching up);
- `burst`: midnight: 10,000 meters on 200 gateways send their 20 registers at once, one
  message per meter.

Every value is live (its meter time within the last hour, as a running system gets it).
Meters are registered before (`registry_rows`), and each has one earlier poll stored
(`seed`), so VEE judges every value against a stored predecessor, as it does in production.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from askue.contract import DataMessage, Value, encode
from askue.contract.payloads import MeterStatus

REGISTERS = [f"1.0.{q}.8.{z}.255" for q in (1, 2, 3, 4) for z in range(5)]  # 20
PROFILE = [f"1.0.{q}.29.0.255" for q in (1, 2, 3, 4)]  # 4 channels
PERIOD_S = 300


@dataclass(frozen=True)
class Shape:
    name: str
    meters: int
    gateways: int
    polls: int  # polls per meter
    per_message: int  # 0: one poll per message
    profile: bool

    @property
    def values_per_poll(self) -> int:
        return len(REGISTERS) + (len(PROFILE) if self.profile else 0)

    @property
    def values(self) -> int:
        return self.meters * self.polls * self.values_per_poll


def shapes(polls: int) -> dict[str, Shape]:
    return {
        "live": Shape("live", 2000, 40, polls, 0, True),
        "batched": Shape("batched", 2000, 40, polls, 500, True),
        "burst": Shape("burst", 10000, 200, 1, 0, False),
    }


def meter_code(i: int) -> str:
    return f"m{i:05d}"


def gateway_of(shape: Shape, i: int) -> str:
    return f"gw{i // (shape.meters // shape.gateways):03d}"


def registry_rows(meters: int, gateways_of: int = 50) -> list[tuple]:
    """(code, serial, model, gateway) of the registered meters."""
    return [(meter_code(i), f"S{i:07d}", "CE308", f"gw{i // gateways_of:03d}") for i in range(meters)]


def _unit(obis: str) -> str:
    """Active energy (A±) in kWh, reactive (R±) in kvarh, as meters report them."""
    return "kWh" if obis.split(".")[2] in ("1", "2") else "kvarh"


def poll_values(shape: Shape, i: int, t: datetime, step: int) -> list[Value]:
    rx = t + timedelta(seconds=2 + (i % 50) * 0.1)
    base = 1000.0 + i + 0.25 * step
    vals = [Value(meter_id=meter_code(i), obis=o, kind="register", value=round(base * (1 + k / 40), 3), unit=_unit(o),
                  received_at=rx, meter_time=t) for k, o in enumerate(REGISTERS)]
    if shape.profile:
        vals += [Value(meter_id=meter_code(i), obis=o, kind="interval", value=round(0.2 + 0.01 * k + (i % 7) * 0.01, 3),
                       unit=_unit(o), received_at=rx, meter_time=t, period_s=PERIOD_S) for k, o in enumerate(PROFILE)]
    return vals


def start_time(shape: Shape, now: datetime) -> datetime:
    """Meter time of the first poll: the last one is a minute before `now`."""
    t = now.replace(second=0, microsecond=0) - timedelta(seconds=PERIOD_S * shape.polls + 60)
    return t - timedelta(minutes=t.minute % 5)


def polls(shape: Shape, t0: datetime, first_step: int = 0) -> Iterator[tuple[str, list[Value]]]:
    """(gateway, values of one meter's poll) in the order gateways send them: round by round,
    the gateways' n-th meters side by side."""
    per_gw = shape.meters // shape.gateways
    for step in range(first_step, first_step + shape.polls):
        t = t0 + timedelta(seconds=PERIOD_S * step)
        for k in range(per_gw):
            for g in range(shape.gateways):
                i = g * per_gw + k
                yield gateway_of(shape, i), poll_values(shape, i, t, step)


def messages(shape: Shape, t0: datetime) -> Iterator[tuple[str, bytes, int]]:
    """(topic, payload, number of values) of every message of the shape."""
    seq: dict[str, int] = {}
    sent_at = datetime.now(UTC)

    def msg(gw: str, vals: list[Value]) -> tuple[str, bytes, int]:
        seq[gw] = seq.get(gw, -1) + 1
        status = sorted({v.meter_id for v in vals})
        meters = [MeterStatus(meter_id=m, last_contact=vals[-1].received_at, ok=True) for m in status]
        body = encode(DataMessage(v=1, gateway_id=gw, seq=seq[gw], sent_at=sent_at, values=vals, meters=meters))
        return f"askue/v1/{gw}/data", body, len(vals)

    if not shape.per_message:
        for gw, vals in polls(shape, t0):
            yield msg(gw, vals)
        return
    pending: dict[str, list[Value]] = {}
    for gw, vals in polls(shape, t0):
        buf = pending.setdefault(gw, [])
        buf += vals
        while len(buf) >= shape.per_message:
            yield msg(gw, buf[:shape.per_message])
            del buf[:shape.per_message]
    for gw, buf in pending.items():
        if buf:
            yield msg(gw, buf)


def seed_polls(shape: Shape, t0: datetime) -> Iterator[tuple[str, list[Value]]]:
    """The poll before the first one: what the database holds when the run starts."""
    one = Shape(shape.name, shape.meters, shape.gateways, 1, 0, shape.profile)
    return polls(one, t0, first_step=-1)


# ---- the publisher process -------------------------------------------------------------------
def publish(host: str, port: int, shape: Shape, t0: datetime, repeat: int = 1, client_id: str = "bench-pub") -> None:
    """Send every message at QoS 1 as fast as the broker takes them; prints the time of the
    first publish (after the messages are built and encoded), then the number of values sent
    and the CPU seconds sending took (building and encoding not counted)."""
    from bench.lib import mqtt_publish

    pub = mqtt_publish.Publisher(host, port, client_id)
    sent = 0
    cpu = 0.0
    started = False
    for r in range(repeat):
        # a backlog of many rounds is built one round at a time (it does not fit in memory at once)
        t = t0 + timedelta(seconds=PERIOD_S * shape.polls * r)
        built = list(messages(shape, t))
        pkts = mqtt_publish.packets((topic, body) for topic, body, _ in built)
        if not started:
            print(time.time(), flush=True)
            started = True
        c = time.process_time()
        pub.send(pkts)
        cpu += time.process_time() - c
        sent += sum(n for _, _, n in built)
    pub.close()
    print(sent, cpu, flush=True)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("shape")
    p.add_argument("t0", type=float)
    p.add_argument("--polls", type=int, default=10)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--client-id", default="bench-pub")
    a = p.parse_args(argv)
    publish(a.host, a.port, shapes(a.polls)[a.shape], datetime.fromtimestamp(a.t0, UTC), a.repeat, a.client_id)


if __name__ == "__main__":
    main(sys.argv[1:])
