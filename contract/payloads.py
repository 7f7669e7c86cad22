"""Payload types and codec (JSON via msgspec: strict, fast, precise error paths).

One data message carries many values; see docs/mqtt-contract.md.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 1

Kind = Literal["register", "interval", "instant", "event"]
Quality = Literal["A", "E", "S", "M"]
# OBIS code as six dot-separated groups, e.g. 1.0.1.8.0.255
Obis = Annotated[str, msgspec.Meta(pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class PayloadError(ValueError):
    """A payload that does not follow the contract; the message says where and why."""


class Value(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True):
    meter_id: Id
    obis: Obis
    kind: Kind
    value: float
    unit: str
    received_at: AwareTime
    # The meter's own clock; None only for meters that keep no clock (the
    # head-end then keys the value by received_at and says so).
    meter_time: AwareTime | None = None
    quality: Quality = "A"
    reasons: list[str] = []
    period_s: Annotated[int, msgspec.Meta(gt=0, le=86400)] | None = None


class MeterStatus(msgspec.Struct, omit_defaults=True):
    meter_id: Id
    last_contact: AwareTime | None = None
    last_error: str | None = None
    ok: bool = True
    clock_drift_s: float | None = None
    serial: str | None = None


class DataMessage(msgspec.Struct, omit_defaults=True):
    v: int
    gateway_id: Id
    seq: Annotated[int, msgspec.Meta(ge=0)]
    sent_at: AwareTime
    values: list[Value]
    meters: list[MeterStatus] = []


class State(msgspec.Struct, omit_defaults=True):
    v: int
    gateway_id: Id
    online: bool
    at: AwareTime | None = None
    version: str | None = None
    started_at: AwareTime | None = None
    meters: int | None = None


class Health(msgspec.Struct, omit_defaults=True):
    v: int
    gateway_id: Id
    at: AwareTime
    queue_depth: int
    oldest_unsent_s: float | None = None
    evicted: int = 0
    cpu_percent: float | None = None
    memory_rss_bytes: int | None = None
    disk_free_bytes: int | None = None
    buses: dict[str, dict[str, float]] = {}


CommandName = Literal[
    "poll_now", "read_profile", "read_clock", "set_clock", "sync_clock",
    "relay_disconnect", "relay_reconnect", "reload_config",
]


class Command(msgspec.Struct, omit_defaults=True):
    v: int
    id: Id
    cmd: CommandName
    args: dict[str, Any] = {}


class CommandResult(msgspec.Struct, omit_defaults=True):
    v: int
    id: Id
    cmd: str
    ok: bool
    finished_at: AwareTime
    result: dict[str, Any] = {}
    error: str | None = None


_encoder = msgspec.json.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


def _decoder(t: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(t)


_DECODERS = {t: _decoder(t) for t in (DataMessage, State, Health, Command, CommandResult)}


def _decode(t: type, payload: bytes) -> Any:
    try:
        msg = _DECODERS[t].decode(payload)
    except msgspec.ValidationError as e:
        raise PayloadError(f"{t.__name__}: {e}") from None
    except msgspec.DecodeError as e:
        raise PayloadError(f"{t.__name__}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        # msgspec lets this escape for bad bytes inside a string; it must not kill the reader
        raise PayloadError(f"{t.__name__}: a string is not valid UTF-8 ({e.reason}); send UTF-8 JSON") from None
    if msg.v != SCHEMA_VERSION:
        raise PayloadError(f"{t.__name__}: schema version {msg.v} is not supported (this side speaks {SCHEMA_VERSION})")
    return msg


def decode_data(payload: bytes) -> DataMessage:
    msg = _decode(DataMessage, payload)
    for i, val in enumerate(msg.values):
        if val.kind == "interval" and val.period_s is None:
            raise PayloadError(f"DataMessage: interval value needs period_s - at `$.values[{i}]`")
    return msg


def decode_state(payload: bytes) -> State:
    return _decode(State, payload)


def decode_health(payload: bytes) -> Health:
    return _decode(Health, payload)


def decode_command(payload: bytes) -> Command:
    return _decode(Command, payload)


def decode_command_result(payload: bytes) -> CommandResult:
    return _decode(CommandResult, payload)


def json_schema() -> dict[str, Any]:
    """JSON Schema of every payload, as written to contract/schema.json."""
    (schemas, components) = msgspec.json.schema_components(
        [DataMessage, State, Health, Command, CommandResult], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"askue MQTT contract v{SCHEMA_VERSION}",
        "oneOf": list(schemas),
        "$defs": components,
    }
