"""`askue simulate --config fleet.yaml`: serve a fleet of simulated meters."""
from __future__ import annotations

import argparse
import asyncio
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="fleet YAML (see configs/fleet-example.yaml)")


def run(args: argparse.Namespace) -> int:
    from askue.drivers.sim.fleet import FleetConfigError, load_fleet, run_forever

    try:
        spec = load_fleet(args.config)
    except FleetConfigError as e:
        print(f"askue simulate: bad fleet config:\n{e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_forever(spec))
    except KeyboardInterrupt:
        return 0
    except (FleetConfigError, OSError) as e:
        print(f"askue simulate: {e}", file=sys.stderr)
        return 1
    return 0
