"""`askue scan`: find the meters on a bus and print the gateway config lines to paste
(docs/commissioning.md)."""
from __future__ import annotations

import argparse
import asyncio
import sys

from askue.gateway.commissioning import scan as scanning
from askue.gateway.commissioning.bus import add_bus_arguments, bus_from_args
from askue.gateway.commissioning.diagnosis import Exit
from askue.gateway.commissioning.options import add_meter_arguments, driver_options, parse_addresses
from askue.gateway.commissioning.progress import Progress
from askue.gateway.commissioning.render import scan_config_yaml, scan_json, scan_text

DEFAULT_RANGE = {"modbus": "1-247", "mbus": "0-250", "mercury": "1-240"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("default ranges: modbus 1-247 (needs --model), mbus 0-250, mercury 1-240 (after the universal "
                "address 0); iec62056_21 and dlms need --addresses. exit codes: 0 meters found, 10 nothing "
                "answers, 12 only garbled answers (baud/parity), 13 port held by another process, 14 port/"
                "endpoint cannot be opened, 2 bad arguments")
    add_bus_arguments(p)
    add_meter_arguments(p)
    p.add_argument("--addresses", metavar="LIST", help="addresses to try: 1-247, 1,5,17, or IEC serials "
                                                       "012345678,012345679")
    p.add_argument("--secondary", action="store_true",
                   help="M-Bus: wildcard search by secondary address (EN 13757-3) instead of primary addresses")
    p.add_argument("--no-universal", action="store_true", help="Меркурий: skip the universal address 0")
    p.add_argument("--bus-id", default=None, help="bus id for the printed gateway config (default rs485-1 / tcp-1)")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        bus = bus_from_args(args, args.driver)
        options = driver_options(args.option)
        if args.secondary and args.driver != "mbus":
            raise ValueError("--secondary is an M-Bus search; use it with --driver mbus")
        if args.driver == "modbus" and not args.model:
            raise ValueError("a Modbus scan needs --model (the register map says where the serial number is)")
        spec = args.addresses or DEFAULT_RANGE.get(args.driver)
        if spec is None and not args.secondary:
            raise ValueError(f"--driver {args.driver} has no default address range: give --addresses")
        addresses = parse_addresses(spec) if spec else []
    except ValueError as e:
        print(f"askue scan: {e}", file=sys.stderr)
        return int(Exit.USAGE)

    def progress(total: int | None, what: str) -> Progress:
        return Progress(total, what, enabled=not args.quiet)

    if args.secondary:
        coro = scanning.scan_mbus_secondary(bus, progress=progress)
    elif args.driver == "mercury":
        coro = scanning.scan_mercury(bus, [int(a) for a in addresses], password=args.password, options=options,
                                     universal=not args.no_universal, progress=progress)
    else:
        coro = scanning.scan_addresses(bus, args.driver, addresses, password=args.password, model=args.model,
                                       options=options, progress=progress)
    res = asyncio.run(coro)
    bus_id = args.bus_id or ("rs485-1" if bus.is_serial else "tcp-1")
    config = scan_config_yaml(bus.config(bus_id), res.meter_configs(bus_id, args.password, args.model, options))
    print(scan_json(res, config) if args.json else scan_text(res, config))
    if res.exit_code != Exit.OK and not args.json:
        print(f"askue scan: {res.summary()}", file=sys.stderr)
    return int(res.exit_code)
