"""Modbus register maps: YAML files in configs/models/, validated with pydantic.

A map says, for one meter model, which registers hold which OBIS channel and
how they are encoded. See docs/drivers/modbus.md for the format. Loading a bad
file raises MapError naming the file, the field and what is allowed.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from askue.drivers.modbus.codec import CLOCK_SIZES, ClockFormat, DataType, Order, parse_tz, size_of

# configs/models next to the drivers package (editable install) unless overridden
MODELS_DIR = Path(os.environ.get("ASKUE_MODELS_DIR", Path(__file__).resolve().parents[2] / "configs" / "models"))
MAX_READ = 125  # registers per FC 03/04 request (Modbus Application Protocol V1.1b3, 6.3/6.4)

_OBIS = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class MapError(ValueError):
    """A register map that cannot be used; the message says where and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MapField(_Strict):
    name: str
    obis: str
    kind: Literal["register", "instant"]
    address: int = Field(ge=0, le=65535)
    type: DataType
    scale: float = 1.0
    unit: str
    tariff: int = Field(default=0, ge=0, le=8)  # 0 = total

    @field_validator("obis")
    @classmethod
    def _obis(cls, v: str) -> str:
        if not _OBIS.match(v):
            raise ValueError(f"OBIS code {v!r} must look like 1.0.1.8.0.255 (six dot-separated numbers)")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("scale must be a positive multiplier, e.g. 0.01 or 1000")
        return v

    @model_validator(mode="after")
    def _tariff_matches_obis(self) -> MapField:
        if self.kind == "register" and int(self.obis.split(".")[4]) != self.tariff:
            raise ValueError(f"tariff {self.tariff} does not match OBIS {self.obis} (group E is the tariff)")
        return self

    @property
    def count(self) -> int:
        return size_of(self.type)


class SerialField(_Strict):
    address: int = Field(ge=0, le=65535)
    type: Literal["u16", "u32", "u64", "string"]
    registers: int | None = Field(default=None, ge=1, le=16)  # only for type string (2 chars each)

    @model_validator(mode="after")
    def _len(self) -> SerialField:
        if (self.type == "string") != (self.registers is not None):
            raise ValueError("'registers' is required for type string and not allowed for numeric serials")
        return self

    @property
    def count(self) -> int:
        return self.registers if self.type == "string" else size_of(self.type)


class ClockField(_Strict):
    address: int = Field(ge=0, le=65535)
    format: ClockFormat
    # Time zone the meter's clock runs in (local formats); a meter's `clock_tz` option overrides it.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        parse_tz(v)
        return v

    @property
    def count(self) -> int:
        return CLOCK_SIZES[self.format]


class RegisterMap(_Strict):
    protocol: Literal["modbus"]
    model: str
    vendor: str
    resource: Literal["electricity", "cold_water", "hot_water", "heat", "gas"]
    source: str  # the published document the addresses come from
    function: Literal[3, 4]  # 3 holding registers, 4 input registers
    byte_order: Order = "big"
    word_order: Order = "big"
    # Unmapped registers up to this long between fields are readable on this model, so
    # the driver may read across them to save a request; 0 reads only mapped registers.
    max_gap: int = Field(default=0, ge=0, le=120)
    max_registers: int = Field(default=MAX_READ, ge=1, le=MAX_READ)
    serial_settings: str | None = None  # factory default, e.g. "19200 8E1" (documentation only)
    serial: SerialField | None = None
    clock: ClockField | None = None
    fields: list[MapField] = Field(min_length=1)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"model {v!r}: lower-case letters, digits, '-', '_' or '.' (it is also the file name)")
        return v

    @model_validator(mode="after")
    def _no_overlaps(self) -> RegisterMap:
        names: set[str] = set()
        channels: dict[str, str] = {}
        spans: list[tuple[int, int, str]] = []
        for i, f in enumerate(self.fields):
            if f.name in names:
                raise ValueError(f"fields[{i}]: duplicate field name {f.name!r}")
            names.add(f.name)
            if f.obis in channels:
                raise ValueError(f"fields[{i}] {f.name!r}: OBIS {f.obis} is already read by {channels[f.obis]!r}")
            channels[f.obis] = f.name
            spans.append((f.address, f.address + f.count, f"fields[{i}] {f.name!r}"))
        if self.serial:
            spans.append((self.serial.address, self.serial.address + self.serial.count, "serial"))
        if self.clock:
            spans.append((self.clock.address, self.clock.address + self.clock.count, "clock"))
        spans.sort()
        for (a0, a1, what0), (b0, _b1, what1) in zip(spans, spans[1:], strict=False):
            if b0 < a1:
                raise ValueError(f"{what1} at address {b0} overlaps {what0} (addresses {a0}..{a1 - 1})")
        for _a0, a1, what in spans:
            if a1 > 65536:
                raise ValueError(f"{what} runs past register 65535")
        return self

    def by_kind(self, kind: str) -> list[MapField]:
        return [f for f in self.fields if f.kind == kind]

    def clock_tz(self, options: dict | None = None):
        """The clock's time zone: meter option `clock_tz` wins over the map."""
        spec = (options or {}).get("clock_tz") or (self.clock.timezone if self.clock else "UTC")
        return parse_tz(spec)


def _format_errors(path: str, e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see docs/drivers/modbus.md for the map format)"
        lines.append(f"{path}: {loc}: {msg}")
    return "\n".join(lines)


def parse_map(text: str, origin: str = "<string>") -> RegisterMap:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise MapError(f"{origin}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise MapError(f"{origin}: a register map is a YAML mapping with keys model, vendor, fields, ...")
    try:
        return RegisterMap.model_validate(data)
    except ValidationError as e:
        raise MapError(_format_errors(origin, e)) from None


def map_path(name: str, models_dir: Path | None = None) -> Path:
    return (models_dir or MODELS_DIR) / f"{name}.yaml"


def load_map(name_or_path: str | os.PathLike, models_dir: Path | None = None) -> RegisterMap:
    """Load a map by model name (configs/models/<name>.yaml) or by file path."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = map_path(str(name_or_path), models_dir)
    if not p.is_file():
        known = ", ".join(available_models(models_dir)) or "none"
        raise MapError(f"{p}: no such register map; known models: {known}")
    rmap = parse_map(p.read_text(encoding="utf-8"), str(p))
    if p.parent == (models_dir or MODELS_DIR) and rmap.model != p.stem:
        raise MapError(f"{p}: model: {rmap.model!r} differs from the file name {p.stem!r}; make them equal")
    return rmap


@lru_cache(maxsize=64)
def cached_map(name: str) -> RegisterMap:
    return load_map(name)


def available_models(models_dir: Path | None = None) -> list[str]:
    d = models_dir or MODELS_DIR
    out = []
    for p in sorted(d.glob("*.yaml")):
        try:
            head = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(head, dict) and head.get("protocol") == "modbus":
            out.append(p.stem)
    return out
