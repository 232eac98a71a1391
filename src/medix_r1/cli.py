"""The ``medix-r1`` console command: argument parsing only, the work happens in the library.

Subcommands live in :mod:`medix_r1.commands` (one module each); a module that is not there yet is skipped,
so the CLI works while the package grows.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from medix_r1 import __version__
from medix_r1.commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medix-r1",
        description="Open-ended medical RL for vision-language models (MediX-R1): data, rewards, training, "
                    "evaluation. Run `medix-r1 COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"medix-r1 {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"medix_r1.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"medix_r1.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(args.func, args, verbose=args.verbose)


def run_command(func, args: argparse.Namespace, *, verbose: int = 0) -> int:
    """Run one subcommand: a :class:`~medix_r1.errors.MedixError` becomes one message and its exit code,
    Ctrl-C exits 130; a traceback is shown only with ``-v``."""
    from medix_r1.errors import EXIT_INTERRUPTED, MedixError

    try:
        return int(func(args) or 0)
    except MedixError as exc:
        if verbose:
            logging.getLogger("medix_r1").exception("details")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if verbose:
            logging.getLogger("medix_r1").exception("interrupted")
        print("interrupted: finished work is kept; rerun the same command to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
