"""``medix-r1 app``: the web app (Ask, Runs, Review) over a runs folder. Argument parsing only; the work is
:func:`medix_r1.app.server.launch`."""

from __future__ import annotations

import argparse

_EPILOG = """\
Examples:
  medix-r1 app                          # http://127.0.0.1:7860 over runs/ (after `make demo`)
  medix-r1 app --runs /data/runs --port 8080
  MEDIX_APP_AUTH=alice:s3cret medix-r1 app --host 0.0.0.0   # other machines: a login is required

The embedded demo policy loads when it is first used (a few seconds), not at start. Files are served only
from inside --runs. docs/app.md describes the tabs and the review's statistics."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "app", help="web app: ask a model, browse training and eval runs, hold a blind A/B review",
        description="A Gradio app with three tabs: Ask (a policy answers an image question, parsed and "
                    "optionally scored), Runs (training curves, eval results and samples) and Review (blind A/B "
                    "votes between two eval runs, win rates).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder holding run folders (default runs/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --auth or MEDIX_APP_AUTH)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                   help="require this login (comma-separate several); default: $MEDIX_APP_AUTH, else none")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N",
                   help="default length limit of an answer in the Ask tab (default 256)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for answering with an in-process policy (default: half the cores, at least "
                        "1; a small model gains little from more, and a busy machine answers much later with them)")
    p.set_defaults(func=cmd_app)


def cmd_app(args) -> int:
    import os

    from medix_r1.app.server import launch

    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    launch(args.runs, host=args.host, port=args.port, auth=args.auth, max_new_tokens=args.max_new_tokens,
           threads=threads)
    return 0
