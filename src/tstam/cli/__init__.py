"""The ``tstam`` command: one subcommand per module in this package.

Each subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int`` and no logic of
its own beyond turning arguments into calls of the library.

Exit status (the same for every subcommand; docs/bad_inputs.md):

- 0 (``EXIT_OK``): done.
- 1 (``EXIT_PARTIAL``): done, but some inputs failed (unreadable videos in ``predict``,
  ``visualize``, ``extract``; an ONNX export that does not match PyTorch), or a training run
  diverged (NaN/inf loss; the last good checkpoint is kept). What failed is printed.
- 2 (``EXIT_USAGE``): bad input: an option, value, file, config key or output location is not
  valid. One message names it and what would be valid; no traceback (``--debug`` shows one).
- 3 (``EXIT_INTERNAL``): an unexpected error, i.e. a bug in tstam: the traceback is printed with
  a line asking for a report.
- 130: interrupted (Ctrl-C).

The kind of error decides, never where it was raised: a user error is a ``tstam.errors.TstamError``
(bad input, bad file, bad config, unusable output; its message is written for the user) or an
``OSError`` naming a file (missing, not writable, disk full: "path: reason"). Everything else is a
bug, a plain ``ValueError`` included, whether tstam's own code raised it (an argument check that
the command should have made impossible, an unpacking mistake) or a library did (torch, numpy,
OpenCV: tstam failed to check something first). A diverged training run
(``tstam.errors.NonFiniteLossError``) exits 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from tstam import __version__
from tstam.errors import NonFiniteLossError, TstamError

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED",
           "build_parser", "main"]

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2          # also what argparse exits with on a bad option
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

# Subcommand modules, in the order of the pipeline (each is tstam.cli.<name>).
COMMANDS: tuple[str, ...] = (
    "demo",
    "extract",
    "split",
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
    "weights",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tstam", description="T-STAM two-stream spatio-temporal attention action recognition",
        epilog="Exit status: 0 done, 1 done but some inputs failed (or training diverged), 2 bad input, "
               "3 internal error (a bug).",
    )
    parser.add_argument("--version", action="version", version=f"tstam {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"tstam.cli.{name}").add_parser(sub)
    for p in sub.choices.values():  # also accepted after the subcommand; SUPPRESS keeps the main parser's value
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the Python traceback of any error")
    return parser


def _user_message(e: BaseException) -> str | None:
    """The message of a user error (see the module docstring), or None for an internal error."""
    if isinstance(e, TstamError):
        return str(e)
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``tstam`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version (0) and argparse's usage errors (2), already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    prog = f"tstam {args.command}"
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if isinstance(e, NonFiniteLossError):  # its message says which step and which checkpoint was kept
            if args.debug:
                traceback.print_exc()
            print(f"{prog}: error: {e}", file=sys.stderr)
            return EXIT_PARTIAL
        msg = _user_message(e)
        if msg is None:
            traceback.print_exc()
            print(f"{prog}: internal error: {type(e).__name__}: {e}\nThis is a bug in tstam {__version__}, not in "
                  "your input; please report it on the tstam issue tracker with the command line and the "
                  "traceback above.", file=sys.stderr)
            return EXIT_INTERNAL
        if args.debug:
            traceback.print_exc()
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
