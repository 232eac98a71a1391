"""The ``medix-r1`` console command: argument parsing only, the work happens in the library.

Subcommands live in :mod:`medix_r1.commands` (one module each); a module that is not there yet is skipped,
so the CLI works while the package grows. This module owns what every command shares: ``-v``/``-vv`` (before
or after the subcommand), the log level (WARNING by default), the one quick model-hub probe, and
:func:`run_command`, the single error path (one message, exit 2/3/130, a traceback only with ``-v``).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import socket
import sys
import threading
from urllib.parse import urlsplit

from medix_r1 import __version__
from medix_r1.commands import COMMAND_MODULES

log = logging.getLogger("medix_r1.cli")

_VERBOSE_HELP = "more output: -v adds progress notes (INFO) and the traceback of an error, -vv debug details"
HUB_PROBE_TIMEOUT_S = 1.5


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose every (sub)command accepts ``-v``/``-vv`` too, so ``medix-r1 train r.yaml -v``
    works like ``medix-r1 -v train r.yaml``. The subcommands' count goes to ``verbose_sub`` (a subparser's
    namespace would otherwise overwrite the top-level count); :func:`verbosity` adds both."""

    def __init__(self, *args, _top: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not _top:
            self.add_argument("-v", "--verbose", action="count", dest="verbose_sub", default=argparse.SUPPRESS,
                              help=_VERBOSE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="medix-r1", _top=True,
        description="Open-ended medical RL for vision-language models (MediX-R1): data, rewards, training, "
                    "evaluation. Run `medix-r1 COMMAND --help` for each command.",
        epilog="Exit status: 0 done, 1 finished with bad rows or failed checks, 2 a usage or input error, "
               "3 a service (judge, generator) or error-budget failure, 130 interrupted (finished work is "
               "kept: rerun the same command to continue).",
    )
    parser.add_argument("--version", action="version", version=f"medix-r1 {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"medix_r1.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"medix_r1.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def verbosity(args: argparse.Namespace) -> int:
    """How many ``-v`` were given, before and after the subcommand."""
    return int(getattr(args, "verbose", 0) or 0) + int(getattr(args, "verbose_sub", 0) or 0)


def log_level(verbose: int) -> int:
    """WARNING by default, INFO with ``-v``, DEBUG with ``-vv``."""
    return logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = args.verbose = verbosity(args)  # commands read args.verbose: give them the total count
    args.verbose_sub = 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    package_logger = logging.getLogger("medix_r1")
    previous_level = package_logger.level
    _configure_logging(verbose)
    try:
        if _uses_hub(args):
            ensure_hub_reachable_or_offline()
        return run_command(args.func, args, verbose=verbose)
    finally:
        # main() is also called in-process (tests, notebooks): leave the package's level as it was found
        package_logger.setLevel(previous_level)


def _configure_logging(verbose: int) -> None:
    root = logging.getLogger()
    if not root.handlers:  # a host program (pytest, a notebook) that set up logging keeps its handlers
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        # other libraries stay at WARNING unless -vv: their INFO lines are noise for a medix-r1 user
        root.setLevel(logging.INFO if verbose >= 2 else logging.WARNING)
    logging.getLogger("medix_r1").setLevel(log_level(verbose))


def _uses_hub(args: argparse.Namespace) -> bool:
    """Commands say whether they may reach the model hub with ``set_defaults(uses_hub=bool or callable)``;
    by default they may."""
    uses = getattr(args, "uses_hub", True)
    return bool(uses(args) if callable(uses) else uses)


# --------------------------------------------------------------------------------------------- model hub
def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(endpoint: str | None = None, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One TCP connection to the hub's host, given at most ``timeout`` seconds in all (name lookup included:
    ``getaddrinfo`` has no timeout of its own, so the probe runs in a daemon thread)."""
    parts = urlsplit(endpoint or hub_endpoint())
    # Behind a proxy the hub is reached through it (huggingface_hub honours the proxy variables): probe that.
    proxy = next((os.environ[v] for v in (f"{parts.scheme}_proxy", f"{parts.scheme.upper()}_PROXY", "all_proxy",
                                          "ALL_PROXY") if os.environ.get(v)), None)
    if proxy and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="medix-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def ensure_hub_reachable_or_offline() -> bool:
    """Unless ``HF_HUB_OFFLINE`` is already set (to anything: the user decided), probe the hub once; when it
    cannot be reached set ``HF_HUB_OFFLINE=1`` and say so once, instead of letting every hub lookup retry for
    tens of seconds with a warning each time. Returns True when working offline."""
    if os.environ.get("HF_HUB_OFFLINE", "") != "":
        return os.environ["HF_HUB_OFFLINE"].strip().lower() in ("1", "true", "yes", "on")
    endpoint = hub_endpoint()
    if hub_reachable(endpoint):
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    # huggingface_hub and datasets read the variable when first imported; update them if already loaded
    for module_name, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE")):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            setattr(module, attr, True)
    log.warning("the model hub (%s) cannot be reached: working offline (HF_HUB_OFFLINE=1), so only models and "
                "datasets already in the local cache can be used. Set HF_HUB_OFFLINE=1 yourself to skip this "
                "check.", endpoint)
    return True


# --------------------------------------------------------------------------------------------- errors
def run_command(func, args: argparse.Namespace, *, verbose: int = 0) -> int:
    """Run one subcommand: a :class:`~medix_r1.errors.MedixError` becomes one message and its exit code,
    Ctrl-C exits 130, an OS error (a path that cannot be read or written) exits 2, anything else is a bug:
    one line and exit 1. A traceback is shown only with ``-v``."""
    from medix_r1.errors import EXIT_INTERRUPTED, EXIT_SERVICE, EXIT_USAGE, MedixError

    details = logging.getLogger("medix_r1")
    try:
        return int(func(args) or 0)
    except MedixError as exc:
        if verbose:
            details.error("details", exc_info=exc)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if verbose:
            details.error("interrupted", exc_info=exc)
        print(f"interrupted: finished work is kept; {interrupt_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `medix-r1 ... | head`: the reader left; nothing to report. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ConnectionError, TimeoutError) as exc:
        if verbose:
            details.error("details", exc_info=exc)
        print(f"error: {_describe(exc)}\n  fix: check that the server is running and the URL is right "
              "(-v shows where it happened)", file=sys.stderr)
        return EXIT_SERVICE
    except OSError as exc:
        if verbose:
            details.error("details", exc_info=exc)
        print(f"error: {_describe(exc)}\n  fix: {_os_fix(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the one place that turns an unexpected error into one message
        if verbose:
            details.error("unexpected error", exc_info=exc)
            print(f"error: unexpected {type(exc).__name__}: {exc} (a bug: please report it with the traceback "
                  "above)", file=sys.stderr)
        else:
            print(f"error: unexpected {type(exc).__name__}: {exc}\n  this is a bug or an input medix-r1 does "
                  "not check yet: rerun with -v to see the traceback, and please report it", file=sys.stderr)
        return 1


# How to continue after Ctrl-C, where it is not "the same command again". A command may set its own with
# ``set_defaults(interrupt_hint=...)``.
_INTERRUPT_HINTS = {
    "train": "to continue from the last checkpoint, rerun it as `medix-r1 train RECIPE --resume` (same "
             "recipe and output folder)",
}


def interrupt_hint(args: argparse.Namespace) -> str:
    hint = getattr(args, "interrupt_hint", None) or _INTERRUPT_HINTS.get(getattr(args, "command", None) or "")
    return hint or "rerun the same command to continue"


def _describe(exc: OSError) -> str:
    path = exc.filename if exc.filename is not None else None
    reason = exc.strerror or str(exc)
    return f"{path}: {reason}" if path is not None else f"{type(exc).__name__}: {reason}"


def _os_fix(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose a folder you can write to (or fix its permissions)"
    if exc.errno == errno.ENOSPC:
        return "free disk space or choose an output folder on another disk"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file stands where the path needs a folder: choose another path or move the file"
    if exc.errno == errno.ENOENT:
        return "check the path (relative paths start from the current folder)"
    return "check the path and its permissions (-v shows where it happened)"


if __name__ == "__main__":
    sys.exit(main())
