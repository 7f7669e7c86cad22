"""Command-line pieces the two commissioning commands share: driver, password, model,
driver options, and address lists."""
from __future__ import annotations

import argparse
from typing import Any

import yaml

from askue.drivers.base import DRIVER_MODULES


def add_meter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", required=True, choices=sorted(DRIVER_MODULES), help="meter protocol")
    p.add_argument("--password", help="the meter's (reading) password, as in the gateway config")
    p.add_argument("--model", help="model / register map name where the driver needs one (Modbus: configs/models/)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a driver option as in the gateway config's options: (repeatable), e.g. --option tz_minutes=300")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def driver_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option {item!r}: write KEY=VALUE, e.g. --option timeout=2")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def parse_address(text: str) -> int | str:
    """A number where it is one (unit ids, primary and network addresses), else the text
    (IEC 62056-21 device addresses, DLMS "logical/physical")."""
    t = text.strip()
    return int(t) if t.isdigit() else t


def parse_addresses(spec: str) -> list[int | str]:
    """"1-247", "1,5,17", "17,40-45" or IEC addresses "012345678,012345679"."""
    out: list[int | str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        a, sep, b = part.partition("-")
        if sep and a.strip().isdigit() and b.strip().isdigit():
            lo, hi = int(a), int(b)
            if lo > hi:
                raise ValueError(f"address range {part!r} runs backwards")
            out += list(range(lo, hi + 1))
        else:
            out.append(parse_address(part))
    if not out:
        raise ValueError(f"no address in {spec!r}")
    return out
