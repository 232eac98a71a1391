"""``medix-r1 review``: set up a blind A/B review of two eval runs, and print its results without the app.
Argument parsing only; the work is :mod:`medix_r1.review`."""

from __future__ import annotations

import argparse

_EPILOG = """\
Examples:
  medix-r1 review create --run-a runs/demo/eval-start --run-b runs/demo/eval-trained --output runs/reviews/r1
  medix-r1 app --runs runs            # reviewers vote in the Review tab
  medix-r1 review results runs/reviews/r1 --csv results.csv --votes-csv votes.csv

Win rates: ties count half, "both wrong" is left out and counted; 95% Wilson interval (docs/app.md)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "review", help="blind A/B review of two eval runs: set one up, print its win rates",
        description="Blind A/B review of two eval runs over the samples they share. Reviewers vote in the app's "
                    "Review tab; the votes live in votes.sqlite in the review's folder.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="review_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("create", help="set up a review folder for two eval runs")
    c.add_argument("--run-a", required=True, metavar="DIR", help="the first eval run folder")
    c.add_argument("--run-b", required=True, metavar="DIR", help="the second eval run folder")
    c.add_argument("--output", required=True, metavar="DIR", help="the review's folder (created)")
    c.add_argument("--hide-reference", dest="show_reference", action="store_false",
                   help="do not show reviewers the reference answer (shown by default)")
    c.add_argument("--seed", type=int, default=0, help="seed of each reviewer's order and A/B sides (default 0)")
    c.set_defaults(func=cmd_create)
    r = sub.add_parser("results", help="print the win-rate table of a review")
    r.add_argument("folder", metavar="DIR", help="the review's folder (holds review.json and votes.sqlite)")
    r.add_argument("--csv", default=None, metavar="OUT.csv", help="also write the table as CSV")
    r.add_argument("--votes-csv", default=None, metavar="OUT.csv", help="also write every vote as CSV")
    r.set_defaults(func=cmd_results)


def cmd_create(args) -> int:
    from medix_r1.review import create_review

    folder = create_review(args.output, args.run_a, args.run_b, show_reference=args.show_reference,
                           seed=args.seed)
    print(f"review created in {folder}; open it with `medix-r1 app --runs DIR` on a folder above it")
    return 0


def cmd_results(args) -> int:
    from medix_r1.review import Review, format_results, results_csv

    with Review(args.folder) as review:
        res = review.results()
        print(format_results(res))
        if args.csv:
            print(f"table: {results_csv(res, args.csv)}")
        if args.votes_csv:
            print(f"votes: {review.export_csv(args.votes_csv)}")
    return 0
