"""``medix-r1 eval``: run benchmarks (generate -> judge -> score), list tasks, compare runs, calibrate the judge.

Argument parsing only: every run subcommand builds the arguments of :func:`medix_r1.eval.run_eval` (or
:func:`medix_r1.eval.runner.dry_run`) and calls it. Errors are the library's own (:mod:`medix_r1.errors`);
``medix_r1.cli.run_command`` prints them and exits 2 (usage, input) or 3 (service, budget).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from medix_r1.errors import EXIT_OK, EXIT_USAGE, UsageError

DEFAULT_EVAL_JUDGE = "Qwen/Qwen3-14B"  # the release eval kit's judge
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
    g.add_argument("--limit", type=int, default=None,
                   help="first N samples of each task (smoke tests; recorded in run.json and shown in the report)")
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
    g.add_argument("--protocol", choices=("default", "paper"), default="default",
                   help="default: this project's prompts, judge and rule shortcuts; paper: the MediX-R1 release's "
                        "eval kit (prompts, JPEG 75, judge input and prompt, 3 judge rounds, no rule shortcut), "
                        "for numbers comparable with the paper's. docs/eval.md lists every difference")
    g.add_argument("--template", action=BOOL, default=False,
                   help="use the MediX training template instead of the plain prompt (default protocol only)")
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
    g.add_argument("--guard", choices=("report", "zero", "off"), default="report",
                   help="injection guard: report (flag and count answers that address the grader, score them "
                        "as judged), zero (score them 0 without asking the judge) or off")


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
    g.add_argument("--min-coverage", type=float, default=0.9,
                   help="a task counts towards overall only when this share of its samples is scored "
                        "(stated in results.json; tasks under it are named and warned about)")


# --------------------------------------------------------------------------------------------- helpers
def parse_data_dirs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        task, sep, path = v.partition("=")
        if sep and task and "/" not in task:
            out[task.strip()] = path
        else:
            if "*" in out:
                raise UsageError(f"given twice without a task name ({out['*']}, {v})", where="--data-dir",
                                 fix="use --data-dir TASK=PATH for each task")
            out["*"] = v
    return out


def _judge_args(args) -> dict:
    """run_eval's judge arguments from the judge flags."""
    from medix_r1.judge import VerdictCache

    kind = args.judge or ("openai" if args.judge_url else None)
    if kind is None:
        raise UsageError("say which judge to use", where="--judge",
                         fix="pass --judge-url URL [--judge-model NAME], --judge local, or --judge none (rule "
                             "decisions only)")
    cache = ((VerdictCache(args.judge_cache_path) if args.judge_cache_path else "default")
             if args.judge_cache else None)
    if kind == "none":
        judge, model = None, None
    elif kind == "local":
        judge, model = "local", args.judge_model
    else:
        judge, model = (args.judge_url or "http://127.0.0.1:8000/v1"), args.judge_model or DEFAULT_EVAL_JUDGE
    return {"judge": judge, "judge_model": model, "rounds": args.rounds, "judge_cache": cache,
            "judge_concurrency": args.judge_concurrency, "judge_timeout": args.judge_timeout,
            "few_shot": args.few_shot, "guard": args.guard}


def _run_args(args, phases: tuple[str, ...]) -> dict:
    """Every run_eval argument the subcommand's flags give."""
    kw: dict = {"phases": phases, "output_dir": args.output_dir, "progress": getattr(args, "progress", False)}
    if "generate" in phases:
        kw.update(tasks=args.tasks, model=args.model, model_url=args.model_url, backend=args.backend,
                  data_dirs=parse_data_dirs(args.data_dir), limit=args.limit, skip_missing=args.skip_missing,
                  max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                  template=args.template_name if args.template else None, system_prompt=args.system_prompt,
                  concurrency=args.concurrency, batch_size=args.batch_size,
                  trust_remote_code=args.trust_remote_code, timeout=args.timeout)
    if "judge" in phases:
        kw.update(_judge_args(args))
    if hasattr(args, "protocol"):
        kw["protocol"] = args.protocol
    if hasattr(args, "max_error_rate"):
        kw["max_error_rate"] = args.max_error_rate
    if "score" in phases:
        kw.update(bootstrap=args.bootstrap, seed=args.seed, charts=args.charts, coverage_threshold=args.min_coverage)
    return kw


def _run_phases(args, phases: tuple[str, ...]) -> int:
    from medix_r1.eval import run_eval
    from medix_r1.eval.report import render_console

    kw = _run_args(args, phases)
    if getattr(args, "dry_run", False):
        from medix_r1.eval.runner import dry_run

        drop = ("phases", "progress", "max_new_tokens", "temperature", "timeout", "max_error_rate",
                "bootstrap", "seed", "charts", "coverage_threshold")
        for line in dry_run(**{k: v for k, v in kw.items() if k not in drop}):
            print(f"ok  {line}")
        print("dry run: everything this run needs is in place (nothing was generated)")
        return EXIT_OK
    results = run_eval(**kw)
    for name in ("generate", "judge"):
        if name in results.get("phases", {}):
            from medix_r1.eval.records import PhaseSummary

            print(PhaseSummary(**results["phases"][name]).line())
    if "score" in phases:
        print(render_console(results))
        for k, v in (results.get("report_paths") or {}).items():
            print(f"{k}: {v}")
    return EXIT_OK


def _guarded(fn):
    """Keep httpx's per-request INFO lines out of the progress bars (``-vv`` shows them). Errors are the
    library's own (:class:`~medix_r1.errors.MedixError`): ``medix_r1.cli.run_command`` prints them."""
    def run(args) -> int:
        logging.getLogger("httpx").setLevel(logging.DEBUG if getattr(args, "verbose", 0) >= 2 else logging.WARNING)
        return fn(args)
    return run


# --------------------------------------------------------------------------------------------- subcommands
def cmd_tasks(args) -> int:
    from medix_r1.eval.registry import groups, task_order, task_registry

    reg = task_registry()
    grp = groups()
    names = grp[args.group] if args.group else sorted(reg.names(), key=task_order)
    if args.group is not None and args.group not in grp:
        raise UsageError(f"unknown group {args.group!r}", where="--group", fix=f"use one of: {', '.join(grp)}")
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
        try:
            out.write_text(render_compare_html(table) if out.suffix in (".html", ".htm") else text + "\n",
                           encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the table ({exc.strerror or exc})", where=str(out),
                             fix="pass an --output path you can write to") from None
        print(f"\nwritten: {out}")
    return EXIT_OK


def cmd_calibrate(args) -> int:
    from medix_r1.eval import make_judge_settings
    from medix_r1.eval.calibrate import DEFAULT_LABELS, calibrate, render_calibration

    kw = _judge_args(args)
    if kw["judge"] is None:
        raise UsageError("calibration needs a judge", where="--judge none",
                         fix="pass --judge-url URL [--judge-model NAME] or --judge local")
    settings = make_judge_settings(kw["judge"], judge_model=kw["judge_model"], rounds=kw["rounds"],
                                   cache=kw["judge_cache"], concurrency=kw["judge_concurrency"],
                                   max_error_rate=args.max_error_rate, timeout=kw["judge_timeout"],
                                   few_shot=kw["few_shot"], guard=kw["guard"])
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
    r.add_argument("--dry-run", action=BOOL, default=False,
                   help="only check: tasks resolve, their data is found, the output folder is writable, the judge "
                        "and the generator answer; nothing is generated")
    r.set_defaults(func=_guarded(lambda a: _run_phases(a, ("generate", "judge", "score"))))

    g = sub.add_parser("generate", help="only generate completions (resumable)")
    _add_tasks(g), _add_model(g), _add_common(g)
    g.add_argument("--dry-run", action=BOOL, default=False,
                   help="only check: tasks resolve, their data is found, the output folder is writable, the "
                        "generator answers; nothing is generated")
    g.set_defaults(func=_guarded(lambda a: _run_phases(a, ("generate",))))

    j = sub.add_parser("judge", help="only judge the generations of a run folder (e.g. with another judge)")
    _add_judge(j), _add_common(j)
    j.add_argument("--protocol", choices=("default", "paper"), default="default",
                   help="the protocol the folder was generated with")
    j.set_defaults(func=_guarded(lambda a: _run_phases(a, ("judge",))))

    s = sub.add_parser("score", help="only score a run folder: results.json, report.md, report.html")
    s.add_argument("--output-dir", required=True, type=Path, help="the run folder")
    _add_score(s)
    s.set_defaults(func=_guarded(lambda a: _run_phases(a, ("score",))))

    t = sub.add_parser("tasks", help="list tasks and groups")
    t.add_argument("--group", default=None, help="only this group's tasks")
    t.add_argument("--json", action=BOOL, default=False, help="print the task definitions as JSON")
    t.set_defaults(func=_guarded(cmd_tasks))

    c = sub.add_parser("compare", help="runs side by side (n, judge, protocol, CI), with the published MediX-R1 "
                                       "numbers beside --protocol paper runs")
    c.add_argument("runs", nargs="+", help="run folders (or results.json files)")
    c.add_argument("--label", action="append", default=[], help="a label per run, in order (default: model)")
    c.add_argument("--published", action=BOOL, default=True,
                   help="add the published MediX-R1 rows (only when every run used --protocol paper)")
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
