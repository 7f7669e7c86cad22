"""`askue` command line: one entry point, one subcommand per concern.

Each subcommand lives in the package it belongs to and exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only when
their subcommand runs, so a gateway without the head-end extra still has a
working `askue gateway` and `askue --help`.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or config,
3 a required component is not installed, 130 interrupted; `probe` and `scan` add
10-16 for what went wrong on the bus (gateway/commissioning/diagnosis.py).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from askue import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("askue.demo", "start PostgreSQL, mosquitto, a simulated fleet, gateways and the head-end locally"),
    "gateway": ("askue.gateway.cli", "run the field gateway (poll meters, store, publish over MQTT)"),
    "headend": ("askue.headend.cli", "run or manage the head-end (ingest, API, migrations, doctor)"),
    "probe": ("askue.gateway.commissioning.probe_cmd", "read one meter once: identity, clock, registers, profile"),
    "scan": ("askue.gateway.commissioning.scan_cmd", "find the meters on a bus and print their gateway config"),
    "simulate": ("askue.drivers.sim.cli", "run a fleet of protocol-true simulated meters"),
    "vee": ("askue.headend.vee.cli", "validation, estimation and editing: check readings files offline"),
    "export": ("askue.headend.billing.cli", "export readings for billing (80020 XML, xlsx, CSV)"),
    "grafana": ("askue.headend.grafana.cli", "push Grafana datasource and dashboards"),
    "users": ("askue.headend.auth.cli", "manage operator accounts (create, passwd, deactivate, list)"),
}


def _load(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        return e


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="askue", description="askue — open metering platform (АСКУЭ)")
    parser.add_argument("--version", action="version", version=f"askue {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    loaded: dict[str, object] = {}
    for name, (module, help_) in COMMANDS.items():
        mod = _load(module)
        p = sub.add_parser(name, help=help_, description=help_)
        if isinstance(mod, ModuleNotFoundError):
            p.set_defaults(_missing=f"{name}: {mod} (install the matching extra, e.g. pip install 'askue[headend]')")
        else:
            mod.add_arguments(p)  # type: ignore[attr-defined]
        loaded[name] = mod
    return parser, loaded


def setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser, loaded = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "_missing", None):
        print(f"askue {args._missing}", file=sys.stderr)
        return EXIT_MISSING
    setup_logging(args.verbose)
    try:
        return int(loaded[args.command].run(args) or 0)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
