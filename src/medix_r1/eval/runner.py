"""The one orchestrator of evaluation: :func:`run_eval` runs generate -> judge -> score -> reports.

The CLI (``medix-r1 eval run|generate|judge|score``), ``make demo`` and the tests all call it. Example::

    from medix_r1.eval import run_eval
    results = run_eval("medix-demo", "embedded", "local", "runs/eval-embedded", max_new_tokens=64)
    print(results["overall"], results["report_paths"]["markdown"])

``judge`` may be a :class:`~medix_r1.judge.base.ChatBackend`, a :class:`JudgeSettings`, ``"local"`` (the
embedded SmolLM2 judge), an OpenAI-compatible URL (with ``judge_model``), a dict ``{"kind", "url", "model"}``,
or ``None`` (rule decisions only: MCQ option matches and exact matches; the rest stay pending).

Before any sample is sent, :func:`run_eval` checks what would otherwise fail late: the output folder is
writable, the tasks resolve and have rows, the judge and the generator answer (and serve the named models).
:func:`dry_run` does only those checks.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from medix_r1.errors import MedixError, UsageError
from medix_r1.eval.generate import agenerate_phase, check_not_empty
from medix_r1.eval.generation import (
    DEFAULT_MAX_NEW_TOKENS,
    Generator,
    PromptOptions,
    check_endpoint,
    make_generator,
)
from medix_r1.eval.judge_phase import JudgeSettings, ajudge_phase
from medix_r1.eval.protocol import get_protocol
from medix_r1.eval.records import PhaseSummary
from medix_r1.eval.report import write_reports
from medix_r1.eval.rundir import RESULTS_FILE, EmptyTaskError, check_writable
from medix_r1.eval.scoring import DEFAULT_COVERAGE_THRESHOLD, score_run, write_results
from medix_r1.eval.sources import TaskData
from medix_r1.eval.sources import load_tasks as _load_tasks
from medix_r1.eval.taskspec import TaskSpec

log = logging.getLogger(__name__)

PHASES = ("generate", "judge", "score")


def load_tasks(tasks: str | list | TaskSpec, data_dirs: dict | str | Path | None = None, *,
               limit: int | None = None, skip_missing: bool = False, protocol: str = "default") -> list[TaskData]:
    """Resolve ``tasks`` and load their data; ``protocol="paper"`` gives each task's paper variant (the release
    eval kit's sources, question and reference texts). See :func:`medix_r1.eval.sources.load_tasks`."""
    return _load_tasks(tasks, data_dirs, limit=limit, skip_missing=skip_missing, protocol=protocol)


def make_judge_settings(judge: Any = None, *, judge_model: str | None = None, rounds: int = 3,
                        cache: Any = "default", concurrency: int = 16, max_error_rate: float | None = 0.1,
                        timeout: float = 120.0, max_retries: int = 3, few_shot: bool | None = None,
                        guard: str | bool = "report", protocol: str = "default") -> JudgeSettings | None:
    """Judge settings from what a caller has at hand (see the module docstring)."""
    from medix_r1.judge import ChatBackend, VerdictCache, make_backend

    if judge is None:
        return None
    if isinstance(judge, JudgeSettings):
        return judge
    if isinstance(cache, (str, Path)) and str(cache) != "default":
        cache = VerdictCache(cache)
    if isinstance(judge, dict):
        backend = make_backend(judge.get("kind", "openai"), url=judge.get("url") or "http://127.0.0.1:8000/v1",
                               model=judge.get("model") or judge_model, timeout=timeout, max_retries=max_retries)
    elif isinstance(judge, ChatBackend):
        backend = judge
    elif judge == "local":
        backend = make_backend("local", model=judge_model)
    elif isinstance(judge, str) and judge.startswith(("http://", "https://")):
        if not judge_model:
            raise UsageError("an OpenAI-compatible judge URL needs the judge's model name", where="--judge-url",
                             fix="add --judge-model NAME (e.g. Qwen/Qwen3-14B)")
        backend = make_backend("openai", url=judge, model=judge_model, timeout=timeout, max_retries=max_retries,
                               concurrency=max(concurrency, 1))
    else:
        raise UsageError(f"cannot make a judge from {judge!r}", where="judge",
                         fix="pass a ChatBackend, 'local', an OpenAI-compatible URL or a dict")
    return JudgeSettings(backend=backend, cache=cache, rounds=rounds, concurrency=concurrency,
                         max_error_rate=max_error_rate, few_shot=few_shot, guard=guard, protocol=protocol)


async def _check_judge(settings: JudgeSettings | None) -> str:
    """Reach (or load) the judge; return a line saying what answered."""
    if settings is None or settings.backend is None:
        return "judge: none (rule decisions only)"
    backend = settings.backend
    try:
        if getattr(backend, "base_url", None):
            served = await check_endpoint(backend, role="judge")
            return f"judge: {backend.model_name} at {backend.base_url} answers (serves {', '.join(served) or '?'})"
        try:
            await backend.check()
        except Exception as exc:
            if isinstance(exc, MedixError):
                raise
            raise UsageError(f"the judge {backend.model_name!r} cannot be used: {exc}", where="--judge-model",
                             fix="pass a model folder or alias that exists (default: the bundled smollm2)") from None
        return f"judge: {backend.describe()} loaded"
    finally:
        await backend.aclose()


def generate_outputs(tasks: list[TaskData], generator: Generator, output_dir: str | Path, **kwargs: Any) -> PhaseSummary:
    """Synchronous :func:`~medix_r1.eval.generate.agenerate_phase`."""
    return asyncio.run(agenerate_phase(tasks, generator, output_dir, **kwargs))


def judge_outputs(output_dir: str | Path, settings: JudgeSettings | None, **kwargs: Any) -> PhaseSummary:
    """Synchronous :func:`~medix_r1.eval.judge_phase.ajudge_phase`."""
    return asyncio.run(ajudge_phase(output_dir, settings, **kwargs))


def score_outputs(output_dir: str | Path, *, bootstrap: int = 1000, seed: int = 0, charts: bool = True,
                  coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD) -> dict[str, Any]:
    """Score a run folder, write results.json and the reports; return the results (with ``report_paths``).

    Raises :class:`~medix_r1.eval.rundir.EmptyTaskError` (after writing them) when a task has no rows or only
    bad input: its number would be meaningless.
    """
    results = score_run(output_dir, n_resamples=bootstrap, seed=seed, coverage_threshold=coverage_threshold)
    write_results(output_dir, results)
    paths = write_reports(results, output_dir, charts=charts)
    results["report_paths"] = {k: str(v) for k, v in paths.items()}
    results["results_path"] = str(Path(output_dir) / RESULTS_FILE)
    empty = [name for name, t in results["tasks"].items() if t["n"] == 0 or t["counts"]["bad_input"] == t["n"]]
    if empty:
        raise EmptyTaskError(f"task(s) with nothing to score (no rows, or every row bad input): "
                             f"{', '.join(empty)}", where=str(Path(output_dir) / RESULTS_FILE),
                             fix="fix the task data or drop these tasks from --tasks")
    return results


def _prompt_options(template: str | None, system_prompt: str | None, protocol) -> PromptOptions:
    return PromptOptions(template, system_prompt, protocol)


def dry_run(tasks: str | list | TaskSpec, model: Any, judge: Any = None, output_dir: str | Path | None = None, *,
            judge_model: str | None = None, model_url: str | None = None, backend: str = "auto",
            data_dirs: dict | str | Path | None = None, limit: int | None = None, skip_missing: bool = False,
            protocol: str = "default", template: str | None = None, system_prompt: str | None = None,
            concurrency: int = 16, batch_size: int | None = None, trust_remote_code: bool = False,
            **judge_kwargs: Any) -> list[str]:
    """Check everything a run needs without generating: tasks resolve, their data is found and has rows, the
    output folder is writable, the judge and the generator answer. Returns one line per check; raises the
    first failure (a :class:`~medix_r1.errors.MedixError`). ``judge_kwargs`` are :func:`run_eval`'s judge
    arguments (``rounds``, ``judge_cache``, ``judge_concurrency``, ``judge_timeout``, ``few_shot``, ``guard``)."""
    proto = get_protocol(protocol)
    _prompt_options(template, system_prompt, proto)
    lines = []
    if output_dir is not None:
        lines.append(f"output folder: {check_writable(output_dir)} is writable")
    data = load_tasks(tasks, data_dirs, limit=limit, skip_missing=skip_missing, protocol=proto.name)
    check_not_empty(data)
    for td in data:
        lines.append(f"task {td.spec.name}: {td.n} rows from {td.origin or 'bundled'}"
                     + (f", {len(td.issues)} bad input (first: {td.issues[0]})" if td.issues else ""))
    names = {"judge_cache": "cache", "judge_concurrency": "concurrency", "judge_timeout": "timeout"}
    settings = make_judge_settings(judge, judge_model=judge_model, protocol=proto.name,
                                   **{names.get(k, k): v for k, v in judge_kwargs.items()})
    lines.append(asyncio.run(_check_judge(settings)))
    gen = make_generator(model, backend=backend, model_url=model_url, concurrency=concurrency,
                         batch_size=batch_size, trust_remote_code=trust_remote_code)

    async def check_generator() -> None:
        try:
            await gen.prepare()
        finally:
            await gen.aclose()

    asyncio.run(check_generator())
    lines.append(f"generator: {gen.describe()} is ready")
    return lines


def run_eval(tasks: str | list | TaskSpec | None = None, model: Any = None, judge: Any = None,
             output_dir: str | Path = "eval-out", *, judge_model: str | None = None, model_url: str | None = None,
             backend: str = "auto", phases: tuple[str, ...] = PHASES, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
             temperature: float = 0.0, template: str | None = None, system_prompt: str | None = None,
             protocol: str = "default", data_dirs: dict | str | Path | None = None, limit: int | None = None,
             skip_missing: bool = False, concurrency: int = 16, batch_size: int | None = None, rounds: int = 3,
             judge_concurrency: int = 16, judge_cache: Any = "default", judge_timeout: float = 120.0,
             few_shot: bool | None = None, guard: str | bool = "report", max_error_rate: float | None = 0.1,
             seed: int = 0, bootstrap: int = 1000, charts: bool = True, progress: bool = True,
             trust_remote_code: bool = False, timeout: float = 600.0,
             coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD, check: bool = True) -> dict[str, Any]:
    """Evaluate ``model`` on ``tasks`` and return the results dict (also written to ``output_dir``).

    Resumable: rerun with the same arguments after an interruption and only the unfinished samples are
    done. ``model`` is a name/path/hub id (``backend``: transformers in-process, vllm, or an OpenAI-compatible
    endpoint when ``model_url`` is given), a loaded policy, or a :class:`Generator`. ``check`` reaches the
    judge before generating (a down judge should not wait for a long generation). With only the ``judge`` and
    ``score`` phases, ``tasks`` and ``model`` are not needed.
    """
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise UsageError(f"unknown eval phase(s) {sorted(unknown)}", fix=f"use: {', '.join(PHASES)}")
    proto = get_protocol(protocol)
    out = Path(output_dir)
    summaries: dict[str, Any] = {}
    settings = None
    if "judge" in phases:
        settings = make_judge_settings(judge, judge_model=judge_model, rounds=rounds, cache=judge_cache,
                                       concurrency=judge_concurrency, max_error_rate=max_error_rate,
                                       timeout=judge_timeout, few_shot=few_shot, guard=guard, protocol=proto.name)
        if settings is not None and settings.protocol.name != proto.name:
            raise UsageError(f"the judge settings use the {settings.protocol.name} protocol, the run {proto.name}",
                             where="--protocol")
        if (settings is None or settings.backend is None) and not proto.rule_shortcuts:
            raise UsageError(f"the {proto.name} protocol decides every sample with the judge", where="--judge none",
                             fix="pass --judge-url/--judge-model (or --judge local)")
    if "generate" in phases:
        if tasks is None or model is None:
            raise UsageError("the generate phase needs tasks and a model", where="--tasks", fix="pass --tasks and --model")
        check_writable(out)
        prompt = _prompt_options(template, system_prompt, proto)
        data = load_tasks(tasks, data_dirs, limit=limit, skip_missing=skip_missing, protocol=proto.name)
        check_not_empty(data)
        gen = make_generator(model, backend=backend, model_url=model_url, concurrency=concurrency,
                             batch_size=batch_size, trust_remote_code=trust_remote_code, timeout=timeout)
        if check and settings is not None and settings.backend is not None:
            log.info(asyncio.run(_check_judge(settings)))
        summary = generate_outputs(data, gen, out, max_new_tokens=max_new_tokens, temperature=temperature,
                                   prompt=prompt, max_error_rate=max_error_rate, progress=progress, limit=limit)
        summaries["generate"] = summary.as_dict()
    if "judge" in phases:
        if check and settings is not None and settings.backend is not None and "generate" not in phases:
            log.info(asyncio.run(_check_judge(settings)))
        summaries["judge"] = judge_outputs(out, settings, progress=progress).as_dict()
    if "score" not in phases:
        return {"phases": summaries}
    results = score_outputs(out, bootstrap=bootstrap, seed=seed, charts=charts,
                            coverage_threshold=coverage_threshold)
    results["phases"] = summaries
    return results


__all__ = ["PHASES", "dry_run", "generate_outputs", "judge_outputs", "load_tasks",
           "make_judge_settings", "run_eval", "score_outputs"]
