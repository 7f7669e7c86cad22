"""The MQTT contract between gateways and the head-end: topics and payloads.

Both halves import this package; it depends on msgspec only, so a gateway
installs without any head-end dependency. The Markdown description lives in
docs/mqtt-contract.md and the JSON Schema in contract/schema.json; a test
keeps both in step with the code here.
"""
from askue.contract.payloads import (
    SCHEMA_VERSION,
    Command,
    CommandResult,
    DataMessage,
    Health,
    MeterStatus,
    PayloadError,
    State,
    Value,
    decode_command,
    decode_command_result,
    decode_data,
    decode_data_fast,
    decode_health,
    decode_state,
    encode,
)
from askue.contract.topics import Topics

__all__ = [
    "SCHEMA_VERSION", "Command", "CommandResult", "DataMessage", "Health", "MeterStatus",
    "PayloadError", "State", "Topics", "Value", "decode_command", "decode_command_result",
    "decode_data", "decode_data_fast", "decode_health", "decode_state", "encode",
]
