"""``medix-r1 score``: score a JSONL file of completions with the composite reward. Argument parsing only;
the work is :func:`medix_r1.rewards.score_file.ascore_file`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

_EPILOG = """\
Input rows (JSONL, or Parquet with the same columns): {"id", "completion", "reference": "<TAG> answer" (or a
  plain answer plus "modality"), "question", "answer_type", "options", "answer_letter" (all optional)}
Output rows: the input row plus "rewards": {"format", "modality", "accuracy_llm", "accuracy_embed", "total"}
  (null: not asked for, or no verdict; total: the weighted mean of the components that apply - modality
  does not apply to a text-only row). Rows are appended as they finish; rerunning the same command
  continues from them (rows without a verdict are scored again).

Examples:
  # offline, embedded judge (SmolLM2, weak) and embedding (all-MiniLM-L6-v2)
  medix-r1 score --input completions.jsonl --output scored.jsonl --judge local
  # the paper's judge, served with `vllm serve Qwen/Qwen3-4B-Instruct-2507 --port 8000`
  medix-r1 score --input completions.jsonl --output scored.jsonl --mode paper \\
      --judge-url http://127.0.0.1:8000/v1 --judge-model Qwen/Qwen3-4B-Instruct-2507

Exit status: 0 all rows scored; 1 some rows malformed (listed; the rest scored); 2 bad arguments, an
unreadable or empty input, an output that cannot be written or belongs to another run; 3 the judge is
unreachable, failed more often than --max-judge-error-rate allows, or gave no verdict at all; 130
interrupted (finished rows are kept: rerun the same command to continue)."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score completions with the composite reward (format, modality, judge, embedding)",
        description="Score a JSONL file of completions with MediX-R1's composite reward: format, modality, "
                    "LLM-judge accuracy and embedding accuracy. Rows are scored concurrently and written in "
                    "input order; a summary table follows.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, metavar="IN.jsonl",
                   help="completions to score (JSONL, or a .parquet file with the same columns)")
    p.add_argument("--output", required=True, metavar="OUT.jsonl", help="where to write scored rows")
    p.add_argument("--components", default="format,modality,accuracy_llm,accuracy_embed",
                   help="comma-separated components to compute (default: all four)")
    p.add_argument("--mode", choices=("paper", "default"), default="default",
                   help="paper: the release's scoring exactly; default: judge sees the question, closed-question "
                        "and laterality checks (docs/rewards.md). Default: default")
    p.add_argument("--judge", choices=("openai", "local"), default="openai",
                   help="openai: an OpenAI-compatible server at --judge-url (default); local: the embedded "
                        "in-process SmolLM2 judge (weak, offline)")
    p.add_argument("--judge-url", default=None,
                   help="the judge server's /v1 URL (default http://127.0.0.1:8000/v1)")
    p.add_argument("--judge-model", default=None,
                   help="the served model name (default Qwen/Qwen3-4B-Instruct-2507), or with --judge local a "
                        "model folder or alias (default smollm2)")
    p.add_argument("--judge-timeout", type=float, default=60.0, metavar="S",
                   help="seconds per judge request before it counts as a timeout (default 60)")
    p.add_argument("--judge-concurrency", type=int, default=64, metavar="N",
                   help="judge requests in flight at once (default 64)")
    p.add_argument("--max-judge-error-rate", type=float, default=0.1, metavar="R",
                   help="stop when more than this share of judgements fail (default 0.1; 1 never stops)")
    p.add_argument("--no-injection-guard", dest="injection_guard", action="store_false",
                   help="do not zero answers that address the grader (the guard is on by default); with "
                        "--mode paper the judge then gets exactly the release's strings")
    p.add_argument("--few-shot", dest="few_shot", action="store_true", default=None,
                   help="use the short judge prompt with worked examples (default: only for --judge local)")
    p.add_argument("--no-few-shot", dest="few_shot", action="store_false",
                   help="use the full judge prompt even with --judge local")
    p.add_argument("--embedding", default="auto", metavar="NAME_OR_PATH",
                   help="sentence-transformers model for accuracy_embed: auto (MedEmbed-large-v0.1 when loadable, "
                        "else the bundled all-MiniLM-L6-v2), minilm, a hub id or a folder (default auto)")
    p.add_argument("--embed-scoring", choices=("binary", "continuous"), default="binary",
                   help="binary: 1 when the cosine reaches --embed-threshold (paper); continuous: the cosine")
    p.add_argument("--embed-threshold", type=float, default=0.8, help="cosine threshold (default 0.8)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="folder for the verdict cache (default $MEDIX_CACHE/judge)")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="do not read or write the verdict cache")
    p.add_argument("--details", action="store_true",
                   help="add reward_details to each row: the answer as compared, judge status and raw reply")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_score)


def _config(args):
    from medix_r1.rewards import RewardConfig
    from medix_r1.rewards.config import JudgeConfig

    judge = JudgeConfig(backend=args.judge, model=args.judge_model, timeout=args.judge_timeout,
                        concurrency=args.judge_concurrency,
                        max_error_rate=None if args.max_judge_error_rate >= 1 else args.max_judge_error_rate,
                        cache=args.cache, few_shot=args.few_shot,
                        cache_path=str(Path(args.cache_dir) / "verdicts.sqlite") if args.cache_dir else None)
    if args.judge_url:
        judge.url = args.judge_url
    return RewardConfig(mode=args.mode, components=args.components, judge=judge, embedding_model=args.embedding,
                        embed_scoring=args.embed_scoring, embed_threshold=args.embed_threshold,
                        injection_guard=args.injection_guard)


def cmd_score(args) -> int:
    from medix_r1.errors import InputError, ServiceError, UsageError
    from medix_r1.rewards import RewardConfigError, RewardSuite
    from medix_r1.rewards.score_file import ScoreProgress, ascore_file, check_writable

    if getattr(args, "verbose", 0) < 2:  # one httpx INFO line per judge request would bury the progress bar
        logging.getLogger("httpx").setLevel(logging.WARNING)

    if not Path(args.input).is_file():
        raise InputError("input file not found", where=f"--input {args.input}", fix="check the path")
    try:
        config = _config(args)
    except (RewardConfigError, ValueError) as exc:
        raise UsageError(str(exc), fix="see `medix-r1 score --help`") from exc
    check_writable(args.output)  # before loading any model
    if args.judge_url and args.judge == "local":
        print("note: --judge-url is ignored with --judge local", file=sys.stderr)
    suite = RewardSuite(config)
    state = ScoreProgress()
    bar = None

    def on_total(n: int) -> None:
        nonlocal bar
        if args.progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="scoring", unit="row", file=sys.stderr, dynamic_ncols=True)

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    async def run():
        try:
            if "accuracy_llm" in config.components:
                await suite.judge.acheck()  # fail in a second, not after the first retries of every row
            return await ascore_file(args.input, args.output, suite, progress=progress, on_total=on_total,
                                     details=args.details, state=state)
        finally:
            await suite.aclose()

    try:
        report = asyncio.run(run())
    except KeyboardInterrupt:
        _close(bar)
        print(f"interrupted: {state.saved} of {state.total} rows are saved in {args.output}; rerun the same "
              "command to continue", file=sys.stderr)
        return 130
    except ServiceError as exc:
        _close(bar)
        hint = (" Other judges: --judge-url URL --judge-model NAME, or the embedded one with --judge local."
                if args.judge == "openai" else "")
        saved = f" {state.saved} of {state.total} rows are saved in {args.output}." if state.total else ""
        exc.fix = ((exc.fix or "").rstrip(". ") + "." + saved + hint).strip()
        raise
    _close(bar)
    for problem in report.problems:
        print(f"{args.input}: {problem}", file=sys.stderr)
    print(f"mode {config.mode}; judge {suite.judge.describe() if 'accuracy_llm' in config.components else '-'}; "
          f"embedding {suite.embedder.name if 'accuracy_embed' in config.components else '-'}")
    print(report.table())
    return 1 if report.problems else 0


def _close(bar) -> None:
    if bar is not None:
        bar.close()
