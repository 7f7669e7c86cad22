"""Payload types and codec (JSON via msgspec: strict, fast, precise error paths).

One data message carries many values; see docs/mqtt-contract.md.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 1

Kind = Literal["register", "interval", "instant", "event"]
# Which of the meter's own archives a register value was read from: the value the meter
# stored at the start of the day / month (stamped with that boundary), not a live poll.
Archive = Literal["day_start", "month_start"]
Quality = Literal["A", "E", "S", "M"]
# OBIS code as six dot-separated groups, e.g. 1.0.1.8.0.255
Obis = Annotated[str, msgspec.Meta(pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class PayloadError(ValueError):
    """A payload that does not follow the contract; the message says where and why."""


# gc=False: a batch holds hundreds of thousands of these; they hold only scalars, strings and
# lists of strings (no reference cycles), and tracking them made the garbage collector cost
# more than decoding them.
class Value(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True, gc=False):
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
    archive: Archive | None = None


class MeterStatus(msgspec.Struct, omit_defaults=True, gc=False):
    meter_id: Id
    last_contact: AwareTime | None = None
    last_error: str | None = None
    ok: bool = True
    clock_drift_s: float | None = None
    serial: str | None = None
    # Transformer ratios as programmed in the meter (Ктт, Ктн), for meters that store them.
    ct_ratio: Annotated[float, msgspec.Meta(gt=0)] | None = None
    vt_ratio: Annotated[float, msgspec.Meta(gt=0)] | None = None


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
    # After this moment the command is not carried out (answered ok: false): a relay
    # switched hours after the operator asked is worse than not switched at all.
    expires_at: AwareTime | None = None


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


def _decode(t: type, payload: bytes, name: str | None = None) -> Any:
    name = name or t.__name__
    try:
        msg = _DECODERS[t].decode(payload)
    except msgspec.ValidationError as e:
        raise PayloadError(f"{name}: {e}") from None
    except msgspec.DecodeError as e:
        raise PayloadError(f"{name}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        # msgspec lets this escape for bad bytes inside a string; it must not kill the reader
        raise PayloadError(f"{name}: a string is not valid UTF-8 ({e.reason}); send UTF-8 JSON") from None
    if msg.v != SCHEMA_VERSION:
        raise PayloadError(f"{name}: schema version {msg.v} is not supported (this side speaks {SCHEMA_VERSION})")
    return msg


# The head-end's ingest decodes every value of every data message: msgspec checks a string
# pattern with Python's re per value (about 3/4 of the decode time). Subclasses of the
# contract types without the two patterns decode the same fields; the patterns are then
# checked once per distinct string (a message holds few distinct meter ids and OBIS codes),
# and a payload that fails them is decoded again strictly, for msgspec's own error and path.
_PATTERN_ID = re.compile(Id.__metadata__[0].pattern)
_PATTERN_OBIS = re.compile(Obis.__metadata__[0].pattern)
_LenId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class _ValueFast(Value):
    meter_id: _LenId
    obis: str
    # a tuple: the shared empty default, where a list would be a new object for the garbage
    # collector to track for every value decoded (almost every value has no reasons)
    reasons: tuple[str, ...] = ()


class _MeterStatusFast(MeterStatus):
    meter_id: _LenId


class _DataMessageFast(DataMessage):
    gateway_id: _LenId
    values: list[_ValueFast]
    meters: list[_MeterStatusFast] = []


_DECODERS[_DataMessageFast] = _decoder(_DataMessageFast)


# Strings already found to match, per pattern (meter ids, gateway ids and OBIS codes repeat
# in every message of a fleet; a message of one poll has as many distinct OBIS codes as
# values). Bounded: forgotten wholesale when full.
_VALID_IDS: set[str] = set()
_VALID_OBIS: set[str] = set()
_VALID_MAX = 100_000


def _patterns_hold(msg: DataMessage) -> bool:
    ids = {v.meter_id for v in msg.values}
    ids.update(m.meter_id for m in msg.meters)
    ids.add(msg.gateway_id)
    ids -= _VALID_IDS
    obis = {v.obis for v in msg.values} - _VALID_OBIS
    if not (all(_PATTERN_ID.search(i) for i in ids) and all(_PATTERN_OBIS.search(o) for o in obis)):
        return False
    for known, new in ((_VALID_IDS, ids), (_VALID_OBIS, obis)):
        if len(known) > _VALID_MAX:
            known.clear()
        known |= new
    return True


def decode_data_fast(payload: bytes) -> DataMessage:
    """decode_data for the ingest hot path, about 3× faster: accepts and refuses exactly the
    same payloads, with errors of the same form (one with several faults may be refused for
    another of them). The result is an instance of a private DataMessage subclass: same
    fields, same JSON, but == is true only against its own type."""
    msg = _decode(_DataMessageFast, payload, "DataMessage")
    if not _patterns_hold(msg):
        msg = _decode(DataMessage, payload)  # raises PayloadError naming the first bad string
    return _check_intervals(msg)


def decode_data(payload: bytes) -> DataMessage:
    return _check_intervals(_decode(DataMessage, payload))


def _check_intervals(msg: DataMessage) -> DataMessage:
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
