"""The library entry point of evaluation: :func:`run_eval` runs generate -> judge -> score -> reports.

The CLI (``medix-r1 eval run``) and ``make demo`` call this; tests call it directly. Example::

    from medix_r1.eval import run_eval
    results = run_eval("medix-demo", "embedded", "local", "runs/eval-embedded", max_new_tokens=64)
    print(results["overall"], results["report_paths"]["markdown"])

``judge`` may be a :class:`~medix_r1.judge.base.ChatBackend`, a :class:`JudgeSettings`, ``"local"`` (the
embedded SmolLM2 judge), an OpenAI-compatible URL (with ``judge_model``), a dict ``{"kind", "url", "model"}``,
or ``None`` (rule decisions only: MCQ option matches and exact matches; the rest stay pending).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from medix_r1.eval.generation import DEFAULT_MAX_NEW_TOKENS, Generator, PromptOptions, make_generator
from medix_r1.eval.phases import JudgeSettings, PhaseSummary, agenerate_phase, ajudge_phase
from medix_r1.eval.registry import resolve_tasks
from medix_r1.eval.report import write_reports
from medix_r1.eval.scoring import score_run, write_results
from medix_r1.eval.sources import DataUnavailable, TaskData, load_task_data
from medix_r1.eval.taskspec import TaskSpec

log = logging.getLogger(__name__)

PHASES = ("generate", "judge", "score")


def load_tasks(tasks: str | list | TaskSpec, data_dirs: dict | str | Path | None = None, *,
               limit: int | None = None, skip_missing: bool = False) -> list[TaskData]:
    """Resolve ``tasks`` and load their data. Missing data raises one error listing every missing task (and
    how to supply it), unless ``skip_missing`` (then those tasks are left out, with a warning)."""
    specs = resolve_tasks(tasks)
    loaded, missing = [], []
    for spec in specs:
        try:
            loaded.append(load_task_data(spec, data_dirs, limit=limit))
        except DataUnavailable as exc:
            missing.append(str(exc))
    if missing:
        if not skip_missing or not loaded:
            listing = "\n  - ".join(missing)
            raise DataUnavailable(f"cannot load the data of {len(missing)} task(s):\n  - {listing}")
        for m in missing:
            log.warning("skipping: %s", m)
    return loaded


def make_judge_settings(judge: Any = None, *, judge_model: str | None = None, rounds: int = 3,
                        cache: Any = "default", concurrency: int = 16, max_error_rate: float | None = 0.1,
                        timeout: float = 120.0, max_retries: int = 3, few_shot: bool | None = None,
                        guard: bool = True) -> JudgeSettings | None:
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
            raise ValueError("an OpenAI-compatible judge URL needs a judge model name (--judge-model)")
        backend = make_backend("openai", url=judge, model=judge_model, timeout=timeout, max_retries=max_retries,
                               concurrency=max(concurrency, 1))
    else:
        raise ValueError(f"cannot make a judge from {judge!r}: pass a ChatBackend, 'local', a URL or a dict")
    return JudgeSettings(backend=backend, cache=cache, rounds=rounds, concurrency=concurrency,
                         max_error_rate=max_error_rate, few_shot=few_shot, guard=guard)


def generate_outputs(tasks: list[TaskData], generator: Generator, output_dir: str | Path, **kwargs: Any) -> PhaseSummary:
    """Synchronous :func:`~medix_r1.eval.phases.agenerate_phase`."""
    return asyncio.run(agenerate_phase(tasks, generator, output_dir, **kwargs))


def judge_outputs(output_dir: str | Path, settings: JudgeSettings | None, **kwargs: Any) -> PhaseSummary:
    """Synchronous :func:`~medix_r1.eval.phases.ajudge_phase`."""
    return asyncio.run(ajudge_phase(output_dir, settings, **kwargs))


def score_outputs(output_dir: str | Path, *, bootstrap: int = 1000, seed: int = 0, charts: bool = True) -> dict[str, Any]:
    """Score a run folder, write results.json and the reports; return the results (with ``report_paths``)."""
    results = score_run(output_dir, n_resamples=bootstrap, seed=seed)
    write_results(output_dir, results)
    paths = write_reports(results, output_dir, charts=charts)
    results["report_paths"] = {k: str(v) for k, v in paths.items()}
    results["results_path"] = str(Path(output_dir) / "results.json")
    return results


def run_eval(tasks: str | list | TaskSpec, model: Any, judge: Any = None, output_dir: str | Path = "eval-out", *,
             judge_model: str | None = None, model_url: str | None = None, backend: str = "auto",
             phases: tuple[str, ...] = PHASES, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
             temperature: float = 0.0, template: str | None = None, system_prompt: str | None = None,
             data_dirs: dict | str | Path | None = None, limit: int | None = None, skip_missing: bool = False,
             concurrency: int = 16, batch_size: int | None = None, rounds: int = 3, judge_concurrency: int = 16,
             judge_cache: Any = "default", max_error_rate: float | None = 0.1, seed: int = 0,
             bootstrap: int = 1000, charts: bool = True, progress: bool = True,
             trust_remote_code: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` on ``tasks`` and return the results dict (also written to ``output_dir``).

    Resumable: rerun with the same arguments after an interruption and only the unfinished samples are
    done. ``model`` is a name/path/hub id (``backend``: transformers in-process, vllm, or an OpenAI-compatible
    endpoint when ``model_url`` is given), a loaded policy, or a :class:`Generator`.
    """
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown eval phase(s) {sorted(unknown)}; valid: {', '.join(PHASES)}")
    out = Path(output_dir)
    summaries: dict[str, Any] = {}
    if "generate" in phases:
        data = load_tasks(tasks, data_dirs, limit=limit, skip_missing=skip_missing)
        gen = make_generator(model, backend=backend, model_url=model_url, concurrency=concurrency,
                             batch_size=batch_size, trust_remote_code=trust_remote_code)
        summaries["generate"] = generate_outputs(data, gen, out, max_new_tokens=max_new_tokens, temperature=temperature,
                                         prompt=PromptOptions(template, system_prompt),
                                         max_error_rate=max_error_rate, progress=progress).as_dict()
    if "judge" in phases:
        settings = make_judge_settings(judge, judge_model=judge_model, rounds=rounds, cache=judge_cache,
                                       concurrency=judge_concurrency, max_error_rate=max_error_rate)
        summaries["judge"] = judge_outputs(out, settings, progress=progress).as_dict()
    if "score" not in phases:
        return {"phases": summaries}
    results = score_outputs(out, bootstrap=bootstrap, seed=seed, charts=charts)
    results["phases"] = summaries
    return results


__all__ = ["PHASES", "generate_outputs", "judge_outputs", "load_tasks", "make_judge_settings", "run_eval",
           "score_outputs"]
