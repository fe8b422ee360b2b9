"""The ``tstam`` command: one subcommand per module in this package.

Each subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int`` and no logic of
its own beyond turning arguments into calls of the library.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tstam import __version__
from tstam.config import ConfigError

# Subcommand modules, in the order of the pipeline (each is tstam.cli.<name>).
COMMANDS: tuple[str, ...] = (
    "demo",
    "extract",
    "synth",
    "train",
    "test",
    "fuse",
    "report",
    "predict",
    "visualize",
    "export",
    "serve",
    "ablate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tstam", description="T-STAM two-stream spatio-temporal attention action recognition"
    )
    parser.add_argument("--version", action="version", version=f"tstam {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"tstam.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"tstam {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
