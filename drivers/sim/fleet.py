"""A fleet of simulated meters described in YAML, served over TCP ports and pty buses.

    seed: 1
    host: 127.0.0.1
    lines:
      - protocol: modbus          # driver name: modbus, iec62056_21, dlms, mercury, mbus
        transport: tcp            # tcp: one port; serial: one pty bus
        port: 15020               # tcp only (0 = any free port)
        pty: .askue/tty/bus1      # serial only: symlink the driver opens
        meters:
          - id: e-0001
            serial: "10000001"
            address: 1
            model: askue-sim-electricity
            resource: electricity
            faults: {tamper_after_s: 120}

State faults scheduled "after N seconds" are placed relative to the fleet's start.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import THREE_ZONE, TWO_ZONE, Faults, SimMeter

log = logging.getLogger("askue.sim")

TARIFF_SCHEMES = {"single": ((0, 24, 1),), "two_zone": TWO_ZONE, "three_zone": THREE_ZONE}
PROTOCOLS = ("modbus", "iec62056_21", "dlms", "mercury", "mbus")


class FaultsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    silent: bool = False
    crc_error_rate: float = Field(0.0, ge=0, le=1)
    garbage_rate: float = Field(0.0, ge=0, le=1)
    slow_reply_s: float = Field(0.0, ge=0, le=60)
    reverse_step_after_s: float | None = None
    reverse_step: float = 50.0
    rollover: bool = False
    replaced_after_s: float | None = None
    tamper_after_s: float | None = None
    clock_jump_after_s: float | None = None
    clock_jump_s: float = 0.0
    clock_reset_after_s: float | None = None  # the clock restarts from 2000-01-01 00:00 meter time
    power_cuts_after_s: float | None = None
    power_cuts: int = Field(0, ge=0, le=1000)
    power_cut_s: float = Field(60.0, gt=0)
    power_cut_every_s: float = Field(300.0, gt=0)
    cover_open_after_s: float | None = None
    cover_open_s: float = Field(600.0, gt=0)

    def build(self, start: datetime) -> Faults:
        def at(s: float | None) -> datetime | None:
            return None if s is None else start + timedelta(seconds=s)

        return Faults(
            silent=self.silent, crc_error_rate=self.crc_error_rate, garbage_rate=self.garbage_rate,
            slow_reply_s=self.slow_reply_s, reverse_step_at=at(self.reverse_step_after_s),
            reverse_step=self.reverse_step, rollover=self.rollover, replaced_at=at(self.replaced_after_s),
            tamper_at=at(self.tamper_after_s), clock_jump_at=at(self.clock_jump_after_s),
            clock_jump_s=self.clock_jump_s, clock_reset_at=at(self.clock_reset_after_s),
            power_cuts_at=at(self.power_cuts_after_s), power_cuts=self.power_cuts, power_cut_s=self.power_cut_s,
            power_cut_every_s=self.power_cut_every_s, cover_open_at=at(self.cover_open_after_s),
            cover_open_s=self.cover_open_s,
        )


class MeterSpecYaml(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    serial: str
    address: int | str = 1
    model: str | None = None
    resource: Literal["electricity", "cold_water", "hot_water", "heat", "gas"] = "electricity"
    password: str = "000000"
    tariffs: Literal["single", "two_zone", "three_zone"] = "two_zone"
    mean_power: float = Field(0.6, ge=0)
    period_s: int = Field(1800, gt=0)
    digits: int = Field(6, ge=3, le=10)
    decimals: int = Field(3, ge=0, le=4)
    start_value: float = Field(1000.0, ge=0)
    history_days: int = Field(3, ge=0, le=400)
    profile_capacity: int | None = Field(None, ge=1)
    journal_capacity: int | None = Field(None, ge=1)
    clock_drift_s_per_day: float = 0.0
    options: dict[str, Any] = {}
    faults: FaultsSpec = FaultsSpec()


class LineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: str
    transport: Literal["tcp", "serial"] = "tcp"
    port: int = Field(0, ge=0, le=65535)
    pty: str | None = None
    meters: list[MeterSpecYaml]

    @field_validator("protocol")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PROTOCOLS:
            raise ValueError(f"unknown protocol {v!r}; one of {', '.join(PROTOCOLS)}")
        return v


class FleetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    host: str = "127.0.0.1"
    lines: list[LineSpec]


class FleetConfigError(ValueError):
    pass


def load_fleet(path: str | Path) -> FleetSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise FleetConfigError(f"{path}: cannot read fleet config: {e}") from e
    try:
        return FleetSpec.model_validate(raw)
    except ValidationError as e:
        msgs = [f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise FleetConfigError("\n".join(msgs)) from None


def build_meter(m: MeterSpecYaml, seed: int, start: datetime) -> SimMeter:
    kw = m.model_dump(exclude={"faults", "tariffs"})
    names = {f.name for f in fields(SimMeter)}
    kw = {k: v for k, v in kw.items() if k in names}
    return SimMeter(**kw, tariffs=TARIFF_SCHEMES[m.tariffs], seed=seed, faults=m.faults.build(start))


@dataclass
class RunningLine:
    spec: LineSpec
    meters: dict[int | str, SimMeter]
    port: int | None = None
    pty: str | None = None
    server: Any = field(default=None, repr=False)


@dataclass
class Fleet:
    spec: FleetSpec
    lines: list[RunningLine] = field(default_factory=list)

    @property
    def meters(self) -> list[SimMeter]:
        return [m for line in self.lines for m in line.meters.values()]

    async def start(self, base_dir: Path | None = None) -> Fleet:
        start = datetime.now(UTC)
        for i, ls in enumerate(self.spec.lines):
            meters = {m.address: build_meter(m, self.spec.seed, start) for m in ls.meters}
            if len(meters) != len(ls.meters):
                raise FleetConfigError(f"lines[{i}]: two meters share one address on the same line")
            module = importlib.import_module(f"askue.drivers.{ls.protocol}.simulator")
            factory = module.make_session_factory(meters, transport=ls.transport)
            line = RunningLine(ls, meters)
            if ls.transport == "tcp":
                line.server = await serve_tcp(factory, self.spec.host, ls.port, seed=self.spec.seed + i)
                line.port = line.server.sockets[0].getsockname()[1]
            else:
                if not ls.pty:
                    raise FleetConfigError(f"lines[{i}]: a serial line needs `pty: <path>`")
                p = Path(ls.pty) if base_dir is None or Path(ls.pty).is_absolute() else base_dir / ls.pty
                line.server = await PtyServer(factory, p, seed=self.spec.seed + i).start()
                line.pty = str(p)
            self.lines.append(line)
        return self

    async def stop(self) -> None:
        for line in self.lines:
            if line.spec.transport == "tcp":
                line.server.close()
                await line.server.wait_closed()
            else:
                await line.server.stop()
        self.lines.clear()


async def run_forever(spec: FleetSpec) -> None:
    fleet = await Fleet(spec).start()
    for line in fleet.lines:
        where = f"tcp://{spec.host}:{line.port}" if line.port else f"pty {line.pty}"
        log.info("%s on %s: %d meter(s)", line.spec.protocol, where, len(line.meters))
    try:
        await asyncio.Event().wait()
    finally:
        await fleet.stop()
