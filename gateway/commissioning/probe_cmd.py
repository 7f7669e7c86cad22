"""`askue probe`: read one meter once and show what it holds (docs/commissioning.md)."""
from __future__ import annotations

import argparse
import asyncio
import sys

from askue.drivers.base import MeterSpec
from askue.gateway.commissioning.bus import add_bus_arguments, bus_from_args
from askue.gateway.commissioning.diagnosis import Exit
from askue.gateway.commissioning.options import add_meter_arguments, driver_options, parse_address
from askue.gateway.commissioning.probe import probe
from askue.gateway.commissioning.render import probe_json, probe_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("exit codes: 0 read, 10 nothing answers, 11 password refused, 12 garbled answers (baud/parity), "
                "13 port held by another process, 14 port/endpoint cannot be opened, 15 another meter answers, "
                "16 the meter refuses, 2 bad arguments")
    add_bus_arguments(p)
    add_meter_arguments(p)
    p.add_argument("--address", required=True, help="the meter's bus address (unit id, primary/network address, "
                                                    "IEC device address, DLMS 17 or 1/17)")
    p.add_argument("--serial", help="expected serial number: fail if another meter answers")


def run(args: argparse.Namespace) -> int:
    try:
        bus = bus_from_args(args, args.driver)
        options = {"timeout": bus.timeout_s, **driver_options(args.option)}
    except ValueError as e:
        print(f"askue probe: {e}", file=sys.stderr)
        return int(Exit.USAGE)
    spec = MeterSpec(id="probe", driver=args.driver, address=parse_address(args.address), serial=args.serial,
                     model=args.model, password=args.password, options=options)
    res = asyncio.run(probe(bus, spec))
    print(probe_json(res) if args.json else probe_text(res))
    if res.failure and not args.json:
        print(f"askue probe: {res.failure.message}", file=sys.stderr)
    return int(res.exit_code)
