"""Gateway configuration: YAML validated with pydantic.

A bad config is refused with a ConfigError naming the file, the line, the field
and what is allowed there, so an installer on site can fix it without reading code.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KINDS = ("register", "interval", "instant", "events")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(ValueError):
    """A config that cannot be used; str() says file, line, field and what is allowed."""


def parse_duration(v: Any) -> float:
    """Seconds from a number or a string like '15m', '1h', '500ms'."""
    if isinstance(v, bool):
        raise ValueError("expected a duration such as 30, '30s', '15m', '1h'")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        m = _DURATION.match(v)
        if m:
            return float(m.group(1)) * _UNIT_S[m.group(2)]
    raise ValueError(f"{v!r} is not a duration; use seconds (30) or a string such as '30s', '15m', '1h', '500ms'")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dur(v: Any) -> float:
    return parse_duration(v)


class GatewaySection(_Model):
    id: Annotated[str, Field(pattern=GATEWAY_ID_PATTERN)]
    topic_root: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "askue"
    health_interval_s: float = 60.0
    # Above this the publisher gives way so polling stays on schedule (values per second).
    catchup_values_per_s: Annotated[float, Field(gt=0)] = 20000.0
    shutdown_flush_s: Annotated[float, Field(ge=0)] = 10.0

    _d = field_validator("health_interval_s", mode="before")(_dur)


class TlsSection(_Model):
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    insecure: bool = False  # skip host name check: only for lab brokers with self-signed certs

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and its key)")
        return self


class BrokerSection(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    tls: TlsSection | None = None
    username: str | None = None
    password: str | None = None
    client_id: str | None = None  # default askue-gw-<gateway id>
    keepalive_s: Annotated[float, Field(ge=5)] = 30.0
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 86400
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 20
    batch_values: Annotated[int, Field(ge=1, le=10000)] = 500
    reconnect_max_s: Annotated[float, Field(ge=1)] = 30.0

    _d = field_validator("keepalive_s", "reconnect_max_s", mode="before")(_dur)


class StoreSection(_Model):
    path: str = "/var/lib/askue/gateway.db"
    max_values: Annotated[int, Field(ge=100)] = 2_000_000
    # FULL survives power loss (the WAL is synced on every commit); NORMAL may lose the
    # last commits on power loss but never corrupts.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


class SerialBus(_Model):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    type: Literal["serial"]
    device: str  # prefer /dev/serial/by-id/… : ttyUSB numbers change between boots
    baudrate: Literal[300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Silence between frames; default (null): 3.5 characters at this baud rate, 1.75 ms above
    # 19200 baud (Modbus over serial line V1.02, 2.5.1.1) — the least the line requires.
    inter_frame_gap_s: Annotated[float, Field(ge=0, le=5)] | None = None

    _d = field_validator("timeout_s", "inter_frame_gap_s", mode="before")(
        lambda v: None if v is None else _dur(v))

    @property
    def gap_s(self) -> float:
        if self.inter_frame_gap_s is not None:
            return self.inter_frame_gap_s
        if self.baudrate > 19200:
            return 0.00175
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return 3.5 * bits / self.baudrate

    @property
    def lanes(self) -> int:
        return 1  # RS-485 is half-duplex: one request on the line at a time


class TcpBus(_Model):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    type: Literal["tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    max_concurrent: Annotated[int, Field(ge=1, le=64)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    inter_frame_gap_s: Annotated[float, Field(ge=0, le=5)] = 0.0

    _d = field_validator("timeout_s", "inter_frame_gap_s", mode="before")(_dur)

    @property
    def gap_s(self) -> float:
        return self.inter_frame_gap_s

    @property
    def lanes(self) -> int:
        return self.max_concurrent


Bus = Annotated[SerialBus | TcpBus, Field(discriminator="type")]


class Schedules(_Model):
    """Polling period per kind of value; null (or absent) disables that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # `register` would shadow BaseModel.register (ABC), hence the alias
    register_: float | None = Field(900.0, alias="register")
    interval: float | None = 1800.0
    instant: float | None = None
    events: float | None = 3600.0

    def periods(self) -> dict[str, float]:
        """Enabled kinds and their polling periods in seconds."""
        d = {"register": self.register_, "interval": self.interval, "instant": self.instant, "events": self.events}
        return {k: v for k, v in d.items() if v is not None}

    @field_validator("register_", "interval", "instant", "events", mode="before")
    @classmethod
    def _period(cls, v: Any) -> float | None:
        if v is None:
            return None
        s = parse_duration(v)
        if s < 1:
            raise ValueError("a polling period must be at least 1 s")
        return s


class MeterSection(_Model):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    bus: str
    driver: Literal["modbus", "iec62056_21", "dlms", "mercury", "mbus"]
    address: int | str = 1
    serial: str | None = None
    model: str | None = None
    password: str | None = None
    resource: Literal["electricity", "cold_water", "hot_water", "heat", "gas"] = "electricity"
    schedules: Schedules = Schedules()
    timeout_s: Annotated[float, Field(gt=0, le=60)] | None = None  # default: the bus timeout
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    backoff_max_s: Annotated[float, Field(ge=1)] = 900.0
    profile_backfill_days: Annotated[float, Field(gt=0, le=366)] = 45.0
    profile_initial_days: Annotated[float, Field(gt=0, le=366)] = 1.0  # first read when nothing is stored yet
    profile_chunk_intervals: Annotated[int, Field(ge=1, le=5000)] = 96
    clock_check_s: Annotated[float, Field(ge=60)] | None = 3600.0
    identity_check_s: Annotated[float, Field(ge=10)] = 3600.0
    options: dict[str, Any] = {}

    _d = field_validator("timeout_s", "backoff_max_s", "clock_check_s", "identity_check_s", mode="before")(
        lambda v: None if v is None else _dur(v))


class MetricsSection(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] | None = 9108  # null disables /metrics; 0 picks a free port


class GatewayConfig(_Model):
    gateway: GatewaySection
    broker: BrokerSection = BrokerSection()
    store: StoreSection = StoreSection()
    metrics: MetricsSection = MetricsSection()
    buses: list[Bus] = []
    meters: list[MeterSection] = []

    @model_validator(mode="after")
    def _refs(self) -> GatewayConfig:
        bus_ids = [b.id for b in self.buses]
        _unique(bus_ids, "buses", "bus id")
        _unique([m.id for m in self.meters], "meters", "meter id")
        seen: dict[tuple[str, str], str] = {}
        for i, m in enumerate(self.meters):
            if m.bus not in bus_ids:
                raise _RefError(("meters", i, "bus"), f"bus {m.bus!r} is not defined; defined buses: "
                                f"{', '.join(bus_ids) or '(none)'}")
            key = (m.bus, str(m.address))
            if key in seen:
                raise _RefError(("meters", i, "address"),
                                f"address {m.address!r} on bus {m.bus!r} is already used by meter {seen[key]!r}")
            seen[key] = m.id
        return self

    def bus(self, bus_id: str) -> SerialBus | TcpBus:
        return next(b for b in self.buses if b.id == bus_id)

    def meters_on(self, bus_id: str) -> list[MeterSection]:
        return [m for m in self.meters if m.bus == bus_id]


class _RefError(ValueError):
    def __init__(self, loc: tuple, msg: str):
        super().__init__(msg)
        self.loc = loc


def _unique(ids: list[str], section: str, what: str) -> None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise _RefError((section, i, "id"), f"{what} {x!r} appears twice; ids must be unique")
        seen.add(x)


# ---- loading with line numbers ---------------------------------------------------------

def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a 1-based line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt = v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                if part in ("serial", "tcp"):
                    continue  # the union member pydantic tried, not a key of the document
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            # discriminated-union tags ("serial"/"tcp") and the like are not in the document
            continue
    return line


def _field(loc: tuple) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("serial", "tcp") and out.startswith("buses"):
            continue  # the union member pydantic tried, not a key of the document
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


def _unconstructible_line(node: yaml.Node | None) -> int | None:
    """Line of the first scalar PyYAML's safe constructor cannot turn into a value."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.ScalarNode):
            try:
                yaml.SafeLoader("").construct_object(n, deep=True)
            except ValueError:
                return n.start_mark.line + 1
        elif isinstance(n, yaml.MappingNode):
            stack += [x for kv in reversed(n.value) for x in reversed(kv)]
        elif isinstance(n, yaml.SequenceNode):
            stack += list(reversed(n.value))
    return None


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the file is not UTF-8 (byte 0x{raw[e.start]:02x}); "
                          "save it as UTF-8") from None
    return parse_config(text, str(path))


# libyaml (PyYAML's C scanner, in its wheels for every platform the gateway runs on) scans a
# config ~10x faster than the Python one; where it is missing the Python one does all.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> yaml.Node | None:
    """The YAML document's node tree: its marks give the line of a problem, and the value is
    built from it rather than parsed a second time. A text libyaml refuses is scanned again by
    the Python scanner: its errors carry the character positions and messages the handling in
    parse_config is written for."""
    try:
        return yaml.compose(text, Loader=_FAST_LOADER)
    except (yaml.YAMLError, UnicodeError):
        return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_config(text: str, source: str = "<config>") -> GatewayConfig:
    node: yaml.Node | None = None
    try:
        node = _compose(text)
        data = None if node is None else yaml.SafeLoader("").construct_document(node)
    except yaml.reader.ReaderError as e:  # a control character: it has a position, not a mark
        line = text[:e.position].count("\n") + 1
        raise ConfigError(f"{source}:{line}: not valid YAML: character #x{e.character:04x} is not "
                          "allowed in a YAML file; remove it") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise ConfigError(f"{source}:1: the YAML is nested too deeply to be a gateway config") from None
    except ValueError as e:  # PyYAML's constructors raise plain ValueError (2026-02-30, !!int x)
        line = _unconstructible_line(node)
        raise ConfigError(f"{source}:{line or 1}: a value cannot be read ({e}); quote it if it is "
                          "meant as text") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping with at least a `gateway:` section "
                          "(gateway.id), plus broker, store, buses and meters")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors(include_url=False):
            loc = tuple(err["loc"])
            ctx_err = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_err, _RefError):
                loc = ctx_err.loc
            line = _line_of(node, loc)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see docs/config-reference.md)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            # one line per problem even when the offending value (quoted in msg) has line breaks
            msg = msg.replace("\r", "\\r").replace("\n", "\\n")
            lines.append(f"{source}:{line or '?'}: {_field(loc)}: {msg}")
        raise ConfigError("invalid gateway config:\n  " + "\n  ".join(lines)) from None
