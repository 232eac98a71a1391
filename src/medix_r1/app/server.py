"""Starting the app safely: the bind address and login check, Gradio's file access limited to ``--runs``.

- The app binds 127.0.0.1. Any other address needs a login (``--auth USER:PASSWORD`` or ``MEDIX_APP_AUTH``),
  otherwise :func:`check_bind` raises :class:`~medix_r1.errors.UsageError` (exit 2) saying so.
- Gradio serves files only from ``allowed_paths`` (here: the runs folder) and its own upload cache; any
  other path, including one that leaves the runs folder through ``..`` or a symlink, is answered 403.
- Nothing heavy is loaded at start: once the page is up, torch and transformers are imported in the
  background; the policy itself loads on first use.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from medix_r1.errors import UsageError

log = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
AUTH_ENV = "MEDIX_APP_AUTH"


def parse_auth(text: str | None) -> list[tuple[str, str]] | None:
    """``"user:password[,user2:password2]"`` -> pairs (``None`` for no login)."""
    if not text:
        return None
    pairs = []
    for item in text.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise UsageError("a login must look like USER:PASSWORD (several: comma-separated)",
                             where="--auth / MEDIX_APP_AUTH", fix="for example --auth alice:s3cret")
        pairs.append((user, password))
    return pairs


def check_bind(host: str, auth: list[tuple[str, str]] | None) -> None:
    """Refuse to serve on a non-local address without a login."""
    if host not in LOCAL_HOSTS and not auth:
        raise UsageError(f"binding {host} would let anyone on the network use the app without a login",
                         where="--host", fix=f"add --auth USER:PASSWORD (or set {AUTH_ENV}), or leave --host "
                                             "at 127.0.0.1")


def launch(runs: str | Path, *, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
           max_new_tokens: int = 256, threads: int | None = None, block: bool = True):
    """Build and serve the app; returns the Blocks (when ``block`` is False, the server runs in a thread)."""
    t0 = time.perf_counter()
    logins = parse_auth(auth if auth is not None else os.environ.get(AUTH_ENV))
    check_bind(host, logins)
    runs = Path(runs)
    if not runs.is_dir():
        raise UsageError(f"the runs folder {runs} does not exist", where="--runs",
                         fix="run `make demo` (it writes runs/demo) or pass --runs DIR")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup probes, one line each
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline tool
    try:
        from medix_r1.app.ui import build_app
    except ImportError as exc:
        if exc.name != "gradio":
            raise
        raise UsageError("the app needs Gradio, which is not installed",
                         fix='run `make setup` (it installs the app extra and gradio)') from None

    demo = build_app(runs, max_new_tokens=max_new_tokens, threads=threads)
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, auth=logins, allowed_paths=[str(runs.resolve())],
                prevent_thread_lock=True, show_error=False, quiet=True, ssr_mode=False, inbrowser=False,
                footer_links=["api"])
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"medix-r1 app ready at http://{shown}:{port} (runs: {runs.resolve()}; "
          f"{time.perf_counter() - t0:.1f} s){' with login' if logins else ''}. Ctrl-C stops it.", flush=True)
    from medix_r1.app.ask import import_model_libraries

    threading.Thread(target=import_model_libraries, name="medix-app-imports", daemon=True).start()
    if block:
        try:
            demo.block_thread()
        finally:
            demo.close()
    return demo


__all__ = ["AUTH_ENV", "check_bind", "launch", "parse_auth"]
