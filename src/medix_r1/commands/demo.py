"""``medix-r1 demo``: the end-to-end demo on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo offline: data -> format -> GRPO training -> before/after evaluation",
        description=(
            "Runs everything on the embedded defaults, offline, on a laptop CPU: rebuilds and validates the "
            "bundled data, shows the prompt and the parser, trains the embedded demo policy for a few GRPO steps "
            "(recipes/demo/cpu.yaml) and evaluates it against its starting point on 12 questions of the bundled "
            "test split with the local judge's fast path. Sized for at most 10 minutes on 2 CPU cores. Ends by "
            "saying how to browse the run folder in the app (medix-r1 app --runs OUTPUT_DIR)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--output-dir", default="runs/demo", help="run folder (data, training run, eval reports)")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="train the demo policy (--no-train skips training and evaluation of the trained policy)")
    p.add_argument("--eval", dest="evaluate", action=argparse.BooleanOptionalAction, default=True,
                   help="evaluate the starting and trained policies on the bundled test split")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the demo training recipe, e.g. --set trainer.max_steps=5 (checked "
                        "before the demo starts)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from medix_r1.demo import run_demo

    run_demo(args.output_dir, train=args.train, evaluate=args.evaluate, set_overrides=args.overrides)
    return 0
