"""``medix-r1 eval``: run benchmarks (generate -> judge -> score), list tasks, compare runs, calibrate the judge.

Argument parsing only; the work is in :mod:`medix_r1.eval`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3
DEFAULT_EVAL_JUDGE = "Qwen/Qwen3-14B"  # the reference eval kit's judge (reference.md §6)
BOOL = argparse.BooleanOptionalAction


# --------------------------------------------------------------------------------------------- arguments
def _add_tasks(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tasks and data")
    g.add_argument("--tasks", required=True,
                   help="comma-separated task names, groups (all, text, vision, paper, demo...) and/or paths to "
                        "canonical JSONL files (id, question, answer[, image, options, answer_type]); see "
                        "`medix-r1 eval tasks`")
    g.add_argument("--data-dir", action="append", default=[], metavar="[TASK=]PATH",
                   help="local copy of a task's data in its source's own format (TASK=PATH), or a folder holding "
                        "one file/folder per task named after the task (PATH). Repeatable. Needed offline and "
                        "for MIMIC-CXR (credentials)")
    g.add_argument("--limit", type=int, default=None, help="first N samples of each task (smoke tests)")
    g.add_argument("--skip-missing", action=BOOL, default=False,
                   help="leave out tasks whose data cannot be found instead of stopping")


def _add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (generation)")
    g.add_argument("--model", required=True,
                   help="model to evaluate: alias (embedded, tiny-qwen2.5-vl...), folder, hub id, or the served "
                        "model name with --model-url")
    g.add_argument("--model-url", default=None,
                   help="OpenAI-compatible endpoint serving --model (e.g. http://127.0.0.1:8001/v1); API key "
                        "from $MEDIX_MODEL_API_KEY")
    g.add_argument("--backend", choices=("auto", "openai", "transformers", "vllm"), default="auto",
                   help="generation backend (auto: openai with --model-url, else in-process transformers; vllm "
                        "needs the gpu extra)")
    g.add_argument("--max-new-tokens", type=int, default=2048, help="reference protocol: 2048")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (reference protocol)")
    g.add_argument("--concurrency", type=int, default=16, help="requests in flight (openai backend)")
    g.add_argument("--batch-size", type=int, default=None, help="prompts per batch (transformers: 4, vllm: 256)")
    g.add_argument("--template", action=BOOL, default=False,
                   help="use the MediX training template instead of the reference protocol's plain prompt")
    g.add_argument("--template-name", default="medix", help="which training template (--template)")
    g.add_argument("--system-prompt", default=None, help="system prompt placed before every question")
    g.add_argument("--trust-remote-code", action=BOOL, default=False,
                   help="allow custom model code from the model's repository (off by default)")
    g.add_argument("--timeout", type=float, default=600.0, help="seconds per generation request")


def _add_judge(p: argparse.ArgumentParser, *, required_choice: bool = False) -> None:
    g = p.add_argument_group("judge")
    g.add_argument("--judge", choices=("openai", "local", "none"), default=None,
                   help="openai: an OpenAI-compatible server (--judge-url; default when a URL is given); local: "
                        "the embedded SmolLM2 judge in-process (weak: for offline runs); none: rule decisions "
                        "only (MCQ option and exact matches), the rest stay pending")
    g.add_argument("--judge-url", default=None,
                   help="OpenAI-compatible judge endpoint (default http://127.0.0.1:8000/v1); API key from "
                        "$MEDIX_JUDGE_API_KEY")
    g.add_argument("--judge-model", default=None,
                   help=f"judge model name (openai default: {DEFAULT_EVAL_JUDGE}; local default: smollm2)")
    g.add_argument("--rounds", type=int, default=3,
                   help="self-check rounds per binary verdict, majority decides (reference: 3; 1 is cheaper)")
    g.add_argument("--judge-concurrency", type=int, default=16, help="judgements in flight")
    g.add_argument("--judge-timeout", type=float, default=120.0, help="seconds per judge request")
    g.add_argument("--judge-cache", action=BOOL, default=True,
                   help="use the shared verdict cache ($MEDIX_CACHE/judge/verdicts.sqlite)")
    g.add_argument("--judge-cache-path", default=None, help="another verdict cache file")
    g.add_argument("--few-shot", action=BOOL, default=None,
                   help="worked examples in the judge prompt (default: only for small local judges)")
    g.add_argument("--guard", action=BOOL, default=True,
                   help="score answers that address the grader as 0 without asking the judge")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", required=True, type=Path,
                   help="run folder: run.json, generations.jsonl, judgements.jsonl, results.json, reports")
    p.add_argument("--max-error-rate", type=float, default=0.1,
                   help="stop when more than this share of requests fail (after 20 requests); rerun to resume")
    p.add_argument("--progress", action=BOOL, default=True, help="progress bars per phase")


def _add_score(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scoring")
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CI")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    g.add_argument("--charts", action=BOOL, default=True, help="draw accuracy.png (matplotlib)")


# --------------------------------------------------------------------------------------------- helpers
def parse_data_dirs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        task, sep, path = v.partition("=")
        if sep and task and "/" not in task:
            out[task.strip()] = path
        else:
            if "*" in out:
                raise ValueError(f"--data-dir given twice without a task name ({out['*']}, {v}); use TASK=PATH")
            out["*"] = v
    return out


def _judge_settings(args):
    from medix_r1.eval import make_judge_settings
    from medix_r1.judge import VerdictCache

    kind = args.judge or ("openai" if args.judge_url else None)
    if kind is None:
        raise ValueError("say which judge to use: --judge-url URL [--judge-model NAME], --judge local, or "
                         "--judge none (rule decisions only)")
    if kind == "none":
        return None
    cache = (VerdictCache(args.judge_cache_path) if args.judge_cache_path else "default") if args.judge_cache else None
    if kind == "local":
        judge, model = "local", args.judge_model
    else:
        judge, model = (args.judge_url or "http://127.0.0.1:8000/v1"), args.judge_model or DEFAULT_EVAL_JUDGE
    return make_judge_settings(judge, judge_model=model, rounds=args.rounds, cache=cache,
                               concurrency=args.judge_concurrency, max_error_rate=args.max_error_rate,
                               timeout=args.judge_timeout, few_shot=args.few_shot, guard=args.guard)


async def _check(backend) -> None:
    try:
        await backend.check()
    finally:
        await backend.aclose()


def _print_results(results: dict) -> None:
    from medix_r1.eval.report import TASK_HEADER, _md_table, pct, task_rows

    print(_md_table(TASK_HEADER, task_rows(results)))
    def p(key: str) -> str:
        return "-" if results.get(key) is None else f"{pct(results[key])}%"

    print(f"\noverall {p('overall')}  text {p('text_mean')}  vision {p('vision_mean')}  "
          "(unweighted means over tasks)")
    for k, v in (results.get("report_paths") or {}).items():
        print(f"{k}: {v}")


def _run_phases(args, phases: tuple[str, ...]) -> int:
    from medix_r1.eval import generate_outputs, judge_outputs, load_tasks, score_outputs
    from medix_r1.eval.generation import PromptOptions, make_generator

    out = args.output_dir
    if "generate" in phases:
        data = load_tasks(args.tasks, parse_data_dirs(args.data_dir), limit=args.limit,
                          skip_missing=args.skip_missing)
        settings = _judge_settings(args) if "judge" in phases else None
        gen = make_generator(args.model, backend=args.backend, model_url=args.model_url,
                             concurrency=args.concurrency, batch_size=args.batch_size,
                             trust_remote_code=args.trust_remote_code, timeout=args.timeout)
        if settings is not None and settings.backend is not None:
            asyncio.run(_check(settings.backend))  # a down judge should not wait for a long generation
        if getattr(gen, "chat", None) is not None:
            asyncio.run(_check(gen.chat))
        summary = generate_outputs(data, gen, out, max_new_tokens=args.max_new_tokens,
                                   temperature=args.temperature,
                                   prompt=PromptOptions(args.template_name if args.template else None,
                                                        args.system_prompt),
                                   max_error_rate=args.max_error_rate, progress=args.progress)
        print(f"generate: {summary.done} new, {summary.already_done} already done, {summary.failed} failed "
              f"of {summary.total} ({summary.seconds:.1f} s)")
    if "judge" in phases:
        settings = _judge_settings(args)
        if settings is not None and "generate" not in phases:
            asyncio.run(_check(settings.backend))
        summary = judge_outputs(out, settings, progress=args.progress)
        print(f"judge: {summary.done} new, {summary.already_done} already done, {summary.failed} failed "
              f"of {summary.total} ({summary.seconds:.1f} s)")
    if "score" in phases:
        results = score_outputs(out, bootstrap=args.bootstrap, seed=args.seed, charts=args.charts)
        _print_results(results)
    return EXIT_OK


def _guarded(fn):
    """Turn the library's expected failures into a clear message and an exit code (no traceback)."""
    def run(args) -> int:
        # One INFO line per HTTP request would bury the progress bars; -vv shows them.
        logging.getLogger("httpx").setLevel(logging.DEBUG if getattr(args, "verbose", 0) >= 2 else logging.WARNING)
        from medix_r1.eval.calibrate import LabelFileError
        from medix_r1.eval.generation import GeneratorUnavailable
        from medix_r1.eval.phases import ErrorBudgetExceeded, EvalError
        from medix_r1.eval.sources import DataUnavailable
        from medix_r1.eval.taskspec import TaskConfigError
        from medix_r1.judge import BackendError, JudgeErrorBudgetExceeded
        from medix_r1.registry import UnknownNameError

        try:
            return fn(args)
        except (ErrorBudgetExceeded, JudgeErrorBudgetExceeded, BackendError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BUDGET
        except (TaskConfigError, UnknownNameError, DataUnavailable, EvalError, LabelFileError, ValueError,
                FileNotFoundError, GeneratorUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return run


# --------------------------------------------------------------------------------------------- subcommands
def cmd_tasks(args) -> int:
    from medix_r1.eval.registry import groups, task_order, task_registry

    reg = task_registry()
    grp = groups()
    names = grp[args.group] if args.group else sorted(reg.names(), key=task_order)
    if args.group is not None and args.group not in grp:
        print(f"error: unknown group {args.group!r}; valid: {', '.join(grp)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"tasks": {n: reg.get(n).to_dict() for n in names}, "groups": grp}, indent=2))
        return EXIT_OK
    print(f"{'task':28} {'kind':7} {'scorer':7} {'answer':7} version  source")
    for n in names:
        t = reg.get(n)
        src = t.source
        where = ("bundled" if src.bundled else src.hub or src.path or f"${src.env}") + (
            f" [{','.join(src.config) if isinstance(src.config, list) else src.config}]" if src.config else "")
        print(f"{n:28} {t.kind:7} {t.scorer:7} {t.answer_type:7} {t.version:8} {where} ({src.split})")
    print("\ngroups:")
    for g, members in grp.items():
        print(f"  {g:8} {len(members):3d}  {', '.join(members)}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from medix_r1.eval.compare import compare_runs, render_compare_html, render_compare_markdown

    table = compare_runs(args.runs, published=args.published, all_published=args.all_published,
                         labels=args.label or None)
    text = render_compare_markdown(table)
    print(text)
    if args.output:
        out = Path(args.output)
        out.write_text(render_compare_html(table) if out.suffix in (".html", ".htm") else text + "\n",
                       encoding="utf-8")
        print(f"\nwritten: {out}")
    return EXIT_OK


def cmd_calibrate(args) -> int:
    from medix_r1.eval.calibrate import DEFAULT_LABELS, calibrate, render_calibration

    settings = _judge_settings(args)
    if settings is None:
        raise ValueError("calibration needs a judge: --judge-url URL or --judge local")
    result = calibrate(args.labels or DEFAULT_LABELS, settings)
    print(render_calibration(result))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written: {args.output}")
    return EXIT_OK


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a model on medical benchmarks with a reference-based LLM judge",
        description="Benchmarks as YAML tasks; phases generate -> judge -> score, each resumable (rerun the same "
                    "command after a crash: finished samples are kept). Outputs: results.json, report.md, "
                    "report.html in --output-dir.")
    sub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")

    r = sub.add_parser("run", help="generate, judge and score in one go",
                       description="Run all three phases. Example: medix-r1 eval run --tasks paper --model "
                                   "Qwen/Qwen3-VL-8B-Instruct --model-url http://127.0.0.1:8001/v1 --judge-url "
                                   "http://127.0.0.1:8000/v1 --judge-model Qwen/Qwen3-14B --output-dir runs/q8b")
    _add_tasks(r), _add_model(r), _add_judge(r), _add_common(r), _add_score(r)
    r.set_defaults(func=_guarded(lambda a: _run_phases(a, ("generate", "judge", "score"))))

    g = sub.add_parser("generate", help="only generate completions (resumable)")
    _add_tasks(g), _add_model(g), _add_common(g)
    g.set_defaults(func=_guarded(lambda a: _run_phases(a, ("generate",))))

    j = sub.add_parser("judge", help="only judge the generations of a run folder (e.g. with another judge)")
    _add_judge(j), _add_common(j)
    j.set_defaults(func=_guarded(lambda a: _run_phases(a, ("judge",))))

    s = sub.add_parser("score", help="only score a run folder: results.json, report.md, report.html")
    s.add_argument("--output-dir", required=True, type=Path, help="the run folder")
    _add_score(s)
    s.set_defaults(func=_guarded(lambda a: _run_phases(a, ("score",))))

    t = sub.add_parser("tasks", help="list tasks and groups")
    t.add_argument("--group", default=None, help="only this group's tasks")
    t.add_argument("--json", action=BOOL, default=False, help="print the task definitions as JSON")
    t.set_defaults(func=_guarded(cmd_tasks))

    c = sub.add_parser("compare", help="runs side by side, with the published MediX-R1 numbers")
    c.add_argument("runs", nargs="+", help="run folders (or results.json files)")
    c.add_argument("--label", action="append", default=[], help="a label per run, in order (default: model)")
    c.add_argument("--published", action=BOOL, default=True, help="add the published MediX-R1 rows")
    c.add_argument("--all-published", action=BOOL, default=False, help="also the other published models")
    c.add_argument("--output", default=None, help="also write the table to FILE (.md or .html)")
    c.set_defaults(func=_guarded(cmd_compare))

    k = sub.add_parser("calibrate", help="judge agreement with human labels (accuracy, Cohen's kappa, confusion)")
    k.add_argument("--labels", default=None,
                   help="JSONL of question/reference/prediction/label rows (default: the shipped 40 cases)")
    k.add_argument("--output", default=None, help="write the full result (per-row verdicts) as JSON")
    k.add_argument("--max-error-rate", type=float, default=0.1, help="stop when more judge requests fail")
    _add_judge(k)
    k.set_defaults(func=_guarded(cmd_calibrate))

    p.set_defaults(func=lambda a: (p.print_help(), EXIT_USAGE)[1])
