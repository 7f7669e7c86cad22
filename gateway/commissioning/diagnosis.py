"""Why a probe or scan failed, as an exit code and a sentence saying what, where and how to fix.

Exit codes (docs/commissioning.md), beside the `askue` command's own 0/1/2/3/130:
  10 nothing answers           13 the port is held by another process (the gateway service)
  11 password refused          14 the port or TCP endpoint cannot be opened
  12 garbled answers           15 a different meter answers (serial differs)
     (baud rate / parity)      16 the meter answers but refuses or does not support the request
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from askue.drivers.errors import (
    AuthError,
    DriverError,
    FrameError,
    IdentityMismatch,
    MeterTimeout,
)
from askue.gateway.commissioning.bus import Bus, BusBusy, BusUnavailable


class Exit(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    NO_ANSWER = 10
    AUTH = 11
    GARBLED = 12
    BUSY = 13
    UNAVAILABLE = 14
    IDENTITY = 15
    REFUSED = 16


@dataclass(frozen=True)
class Diagnosis:
    code: Exit
    message: str


def garbled_hint(bus: Bus) -> str:
    line = f"now {bus.describe()}" if bus.is_serial else "on the converter's serial side"
    return (f"check baud rate and parity ({line}; try the meter's settings from its passport), "
            "the A/B wiring and the termination; on a shared bus, two meters may have the same address")


def diagnose(err: BaseException, bus: Bus, what: str, bytes_in: int = 0) -> Diagnosis:
    """`what` names the meter or step, e.g. "mercury meter 17"; `bytes_in` counts bytes that
    arrived during the attempt (bytes without a valid answer mean garbling, not silence)."""
    if isinstance(err, BusBusy):
        return Diagnosis(Exit.BUSY, str(err))
    if isinstance(err, BusUnavailable):
        return Diagnosis(Exit.UNAVAILABLE, str(err))
    if isinstance(err, AuthError):
        return Diagnosis(Exit.AUTH, f"{what}: the meter refused the password or access level ({err}); "
                                    "check --password (the meter's reading password) and the access level/client")
    if isinstance(err, IdentityMismatch):
        return Diagnosis(Exit.IDENTITY, f"{what}: {err}; check the address, or drop --serial to see who answers")
    if isinstance(err, FrameError) or (isinstance(err, MeterTimeout) and bytes_in):
        return Diagnosis(Exit.GARBLED, f"{what}: answers arrive damaged on {bus.describe()} ({err}); "
                                       f"{garbled_hint(bus)}")
    if isinstance(err, MeterTimeout):
        return Diagnosis(Exit.NO_ANSWER, f"{what}: nothing answers on {bus.describe()} ({err}); check the meter's "
                                         "power, the A/B wiring, the address and that this is the right port")
    if isinstance(err, DriverError):
        return Diagnosis(Exit.REFUSED, f"{what}: the meter answers but refuses: {err}")
    return Diagnosis(Exit.FAILURE, f"{what}: {type(err).__name__}: {err}")
