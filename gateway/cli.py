"""`askue gateway`: run the field gateway, or check its config."""
from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, metavar="FILE",
                        help="gateway YAML config (see docs/config-reference.md)")
    parser.add_argument("--check", action="store_true",
                        help="validate the config, print a summary and exit (0 valid, 2 invalid)")


def run(args: argparse.Namespace) -> int:
    from askue.gateway.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"askue gateway: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        print(f"{args.config}: ok — gateway {cfg.gateway.id}, {len(cfg.buses)} buses, {len(cfg.meters)} meters, "
              f"broker {cfg.broker.host}:{cfg.broker.port}, store {cfg.store.path}")
        return EXIT_OK
    import asyncio

    from askue.gateway.service import run_gateway
    from askue.gateway.store import StoreError

    try:
        return asyncio.run(run_gateway(cfg, args.config))
    except StoreError as e:
        print(f"askue gateway: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except ConfigError as e:  # a driver module that cannot be loaded
        print(f"askue gateway: {e}", file=sys.stderr)
        return EXIT_MISSING
