"""The three eval phases, each idempotent and resumable: generate -> judge -> score.

Everything lives in one output folder::

    run.json            what was run: model, generation settings, judge, task manifest (ids, versions)
    generations.jsonl   one record per (task, sample id): the completion, its final answer, the reference
    judgements.jsonl    one record per (task, sample id): the grade, how it was decided, the raw judge replies
    results.json        scores (written by the score phase), plus report.md / report.html / accuracy.png

Records are appended as samples finish (:class:`~medix_r1.eval.store.JsonlStore`: one ``write`` + ``fsync``
each), so a crash or SIGKILL loses only the requests in flight. Rerunning a phase skips every sample whose
last record is final and redoes the rest: failed requests (status ``error``) are retried, finished ones are
never recomputed. A generation record carries everything the judge and the scorer need (question, reference,
options, answer type, modality), so ``judge`` and ``score`` run without the task data, e.g. to re-judge with
another judge.

States a sample can end in (all counted in the report):

- generation: ``ok``, ``bad_input`` (empty question, missing or undecodable image: final), ``error`` (the
  generator failed after its retries: retried on the next run);
- judgement: ``exact`` (decided by rule: option letter/text or exact match), ``ok`` (judged), ``injection``
  (the answer addressed the grader: 0), ``unparseable`` (no verdict in the judge's replies), ``timeout`` /
  ``error`` (the judge failed: retried on the next run).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medix_r1 import __version__
from medix_r1.aio import gather_or_cancel
from medix_r1.data.schema import SampleError
from medix_r1.errors import BudgetExceeded, MedixError, UsageError
from medix_r1.eval.generation import _PLAIN, Generator, GenRequest, PromptOptions, build_messages
from medix_r1.eval.judging import decide_exact, decide_mcq, eval_prompt
from medix_r1.eval.registry import task_order
from medix_r1.eval.sources import LoadIssue, TaskData
from medix_r1.eval.store import JsonlStore
from medix_r1.prompts import parse_completion

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
GEN_FILE = "generations.jsonl"
JUDGE_FILE = "judgements.jsonl"
FINAL_GEN = frozenset({"ok", "bad_input"})
RETRY_GEN = frozenset({"error"})
FINAL_JUDGE = frozenset({"exact", "ok", "injection", "unparseable"})
RUN_SCHEMA = "medix-r1-eval-run/1"


class EvalError(MedixError, RuntimeError):
    """An eval run cannot go on; the message says why and what to do."""


class ErrorBudgetExceeded(EvalError, BudgetExceeded):
    """Too many requests failed (the generator or judge looks down). Finished samples are kept: rerun the
    same command once it is fixed."""


class RunMismatch(EvalError, UsageError):
    """The output folder holds results of another model or other settings."""


# --------------------------------------------------------------------------------------------- run.json
def read_run(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path} is not valid JSON ({exc.msg}); restore it or use a new --output-dir") from None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, fsync, and rename it over ``path`` (never a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_run(out_dir: str | Path, run: dict[str, Any]) -> None:
    run.setdefault("schema", RUN_SCHEMA)
    run["medix_r1_version"] = __version__
    write_json_atomic(Path(out_dir) / RUN_FILE, run)


# --------------------------------------------------------------------------------------------- helpers
def scorer_for(task_scorer: str, task_answer_type: str, sample) -> str:
    """The grading rule of one sample: the task's scorer, or for ``auto`` mcq/rubric/binary by sample."""
    if task_scorer != "auto":
        return task_scorer
    if sample.options:
        return "mcq"
    return "rubric" if task_answer_type == "report" else "binary"


def manifest_entry(td: TaskData) -> dict[str, Any]:
    spec = td.spec
    return {"version": spec.version, "title": spec.title or spec.name, "kind": td.kind, "scorer": spec.scorer,
            "answer_type": spec.answer_type, "n": td.n, "ids": td.ids, "origin": td.origin,
            "file": spec.file, "load_issues": len(td.issues), "groups": list(spec.groups)}


def sample_fields(td: TaskData, sample) -> dict[str, Any]:
    spec = td.spec
    return {
        "question": _PLAIN.question_text(sample),  # with the Choices lines: the judge can map "option B"
        "reference": sample.answer,
        "options": sample.options,
        "answer_letter": sample.metadata.get("answer_letter"),
        "answer_type": "report" if spec.answer_type == "report" else sample.answer_type,
        "modality": sample.modality,
        "has_image": bool(sample.images),
        "kind": td.kind,
        "scorer": scorer_for(spec.scorer, spec.answer_type, sample),
        "task_version": spec.version,
    }


def gen_signature(g: dict[str, Any]) -> str:
    """What a judgement depends on from its generation record; a changed generation gets re-judged."""
    payload = json.dumps([g.get("final_answer"), g.get("reference"), g.get("question"), g.get("scorer")],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _progress_bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc=desc, unit="sample", dynamic_ncols=True, disable=not enabled,
               mininterval=0.5, smoothing=0.1)
    bar.set_postfix(errors=0, refresh=False)  # done/total, rate and ETA come with tqdm; errors so far here
    return bar


@dataclass
class PhaseSummary:
    """What one phase invocation did (for logs, the CLI and the benchmark)."""

    phase: str
    total: int = 0
    already_done: int = 0
    done: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    requests: int = 0

    def add(self, status: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Budget:
    """Stop a phase when the share of failed requests goes over ``max_error_rate`` (after a minimum count)."""

    def __init__(self, what: str, max_error_rate: float | None, min_requests: int, fix: str):
        self.what, self.max_error_rate, self.min_requests, self.fix = what, max_error_rate, min_requests, fix
        self.requests = self.failures = 0
        self.last_error: str | None = None

    def add(self, n: int, failed: bool, error: str | None = None) -> None:
        self.requests += n
        if failed:
            self.failures += n
            self.last_error = error or self.last_error
        self.check()

    def check(self, final: bool = False) -> None:
        over = (self.max_error_rate is not None and self.requests >= self.min_requests
                and self.failures / self.requests > self.max_error_rate)
        all_failed = final and self.requests > 0 and self.failures == self.requests
        if over or all_failed:
            raise ErrorBudgetExceeded(
                f"{self.what}: {self.failures} of {self.requests} requests failed"
                + (f" (budget {self.max_error_rate:.0%})" if over else "") + f". Last error: {self.last_error}. "
                f"Fix: {self.fix}. Finished samples are saved: rerun the same command to resume "
                "(raise --max-error-rate to tolerate more failures).")


async def _run_workers(n_workers: int, items: list, work) -> None:
    """Run ``work(item)`` over ``items`` with ``n_workers`` concurrent workers; the first exception cancels
    the rest and propagates (requests in flight are lost, finished ones are already on disk)."""
    it = iter(items)

    async def worker() -> None:
        for item in it:  # a shared iterator: each item is taken by exactly one worker
            await work(item)

    await gather_or_cancel([asyncio.ensure_future(worker()) for _ in range(max(1, min(n_workers, len(items))))])


# --------------------------------------------------------------------------------------------- generate
async def agenerate_phase(tasks: list[TaskData], generator: Generator, out_dir: str | Path, *,
                          max_new_tokens: int = 2048, temperature: float = 0.0,
                          prompt: PromptOptions | None = None, max_error_rate: float | None = 0.1,
                          min_requests_for_budget: int = 20, progress: bool = True) -> PhaseSummary:
    """Generate a completion for every sample not yet generated. Returns what was done.

    Raises :class:`RunMismatch` when ``out_dir`` holds another model's generations and
    :class:`ErrorBudgetExceeded` when the generator keeps failing.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompt = prompt or PromptOptions()
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "prompt": prompt.to_dict()}
    run = read_run(out)
    prev_model = (run.get("model") or {}).get("name")
    if prev_model and prev_model != generator.name:
        raise RunMismatch(f"{out} holds generations of model {prev_model!r}, not {generator.name!r}: use "
                          "another --output-dir (one folder per model)")
    prev = run.get("generation")
    if prev and {k: prev.get(k) for k in settings} != settings:
        raise RunMismatch(f"{out} holds generations made with other settings ({prev}); now {settings}. "
                          "Use another --output-dir, or the same settings to resume")
    run["model"] = generator.info()
    run["generation"] = settings
    run.setdefault("tasks", {})
    for td in tasks:
        run["tasks"][td.spec.name] = manifest_entry(td)
    run["tasks"] = dict(sorted(run["tasks"].items(), key=lambda kv: task_order(kv[0])))
    write_run(out, run)

    store = JsonlStore(out / GEN_FILE).open()
    summary = PhaseSummary("generate")
    t0 = time.perf_counter()
    try:
        latest = store.latest()
        base = {"model": generator.name, "prompt_version": prompt.version}
        todo: list[tuple[TaskData, Any]] = []
        bulk: list[dict] = []
        for td in tasks:
            for item in [*td.samples, *td.issues]:
                summary.total += 1
                rec = latest.get((td.spec.name, item.id))
                if rec is not None and rec.get("status") in FINAL_GEN:
                    summary.already_done += 1
                    continue
                if isinstance(item, LoadIssue):
                    bulk.append({"task": td.spec.name, "id": item.id, "status": "bad_input",
                                 "error": str(item), "field": item.field, "kind": td.kind,
                                 "task_version": td.spec.version, **base})
                    summary.add("bad_input")
                    summary.done += 1
                    continue
                todo.append((td, item))
        store.append_many(bulk)
        bar = _progress_bar(summary.total, summary.already_done + summary.done, "generate", progress)
        budget = _Budget(f"generation with {generator.describe()}", max_error_rate, min_requests_for_budget,
                         generator.how_to_fix())
        batches = [todo[i:i + generator.batch_size] for i in range(0, len(todo), generator.batch_size)]

        async def work(batch: list[tuple[TaskData, Any]]) -> None:
            ready, reqs = [], []
            for td, sample in batch:
                try:
                    # Decoding (large X-rays, PNG) runs in a thread: PIL releases the GIL, the loop keeps going.
                    images = await asyncio.to_thread(sample.load_images)
                except SampleError as exc:
                    await store.aappend({"task": td.spec.name, "id": sample.id, "status": "bad_input",
                                         "error": f"{exc.field}: {exc.message}", "field": exc.field,
                                         **sample_fields(td, sample), **base})
                    summary.add("bad_input")
                    summary.done += 1
                    bar.update(1)
                    continue
                messages = build_messages(sample, td.spec.prompt, prompt)
                ready.append((td, sample))
                reqs.append(GenRequest(td.spec.name, sample.id, messages, images))
            if not reqs:
                return
            t = time.perf_counter()
            try:
                replies = await generator.generate(reqs, max_new_tokens=max_new_tokens, temperature=temperature)
                if len(replies) != len(reqs):
                    raise EvalError(f"the generator returned {len(replies)} replies for {len(reqs)} prompts")
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # counted, written, and stopped by the budget: never swallowed
                err = f"{type(exc).__name__}: {exc}"
                log.warning("generation failed for %d sample(s) (%s ...): %s", len(reqs), reqs[0].id, err)
                log.debug("generation failure", exc_info=True)
                await store.aappend_many([{"task": td.spec.name, "id": sample.id, "status": "error",
                                           "error": err, **sample_fields(td, sample), **base}
                                          for td, sample in ready])
                for _ in ready:
                    summary.add("error")
                summary.failed += len(ready)
                summary.requests += len(ready)
                bar.update(len(ready))
                bar.set_postfix(errors=summary.failed, refresh=False)
                budget.add(len(ready), True, err)
                return
            latency = (time.perf_counter() - t) / len(reqs)
            done = []
            for (td, sample), reply in zip(ready, replies):
                parsed = parse_completion(reply or "")
                done.append({"task": td.spec.name, "id": sample.id, "status": "ok", "prediction": reply,
                             "final_answer": parsed.final_answer, "well_formed": parsed.well_formed,
                             "pred_modality": parsed.modality, "latency_s": round(latency, 4),
                             **sample_fields(td, sample), **base})
                summary.add("ok")
            await store.aappend_many(done)
            summary.done += len(ready)
            summary.requests += len(ready)
            bar.update(len(ready))
            budget.add(len(ready), False)

        try:
            await _run_workers(generator.concurrency, batches, work)
            budget.check(final=True)
        finally:
            bar.close()
    finally:
        store.close()
        summary.seconds = time.perf_counter() - t0
        await generator.aclose()
    log.info("generate: %d new, %d already done, %d failed of %d (%.1f s)", summary.done, summary.already_done,
             summary.failed, summary.total, summary.seconds)
    return summary


# --------------------------------------------------------------------------------------------- judge
@dataclass
class JudgeSettings:
    """How to judge: a chat backend (or ``None`` for rule decisions only), the shared verdict cache, the
    number of self-check rounds, concurrency and the error budget."""

    backend: Any = None
    cache: Any = "default"
    """A :class:`~medix_r1.judge.VerdictCache`, ``"default"`` (``$MEDIX_CACHE/judge/verdicts.sqlite``) or None."""
    rounds: int = 3
    few_shot: bool | None = None
    """Worked examples in the binary prompt; ``None``: when the backend prefers them (small local judges)."""
    concurrency: int = 16
    max_error_rate: float | None = 0.1
    min_requests_for_budget: int = 20
    guard: bool = True

    def prompts(self) -> dict[str, Any]:
        few = self.few_shot if self.few_shot is not None else bool(getattr(self.backend, "prefers_few_shot", False))
        return {"binary": eval_prompt("binary", self.rounds, few_shot=few),
                "rubric": eval_prompt("rubric", self.rounds)}

    def info(self) -> dict[str, Any]:
        if self.backend is None:
            return {"model": None, "describe": "rule decisions only (no judge)"}
        p = self.prompts()
        return {"model": self.backend.model_name, "describe": self.backend.describe(), "rounds": self.rounds,
                "prompts": {k: v.key for k, v in p.items()}}


def _verdict_record(g: dict, **fields: Any) -> dict[str, Any]:
    return {"task": g["task"], "id": g["id"], "gen_sig": gen_signature(g), "scorer": g.get("scorer"), **fields}


def _votes(prompt, raw: str | None) -> list[float | None] | None:
    if raw is None:
        return None
    replies = json.loads(raw) if prompt.rounds > 1 and raw.startswith("[") else [raw]
    return [prompt.parse(r) for r in replies]


async def ajudge_phase(out_dir: str | Path, settings: JudgeSettings | None = None, *, progress: bool = True,
                       tasks: Iterable[str] | None = None) -> PhaseSummary:
    """Grade every generated sample that has no final grade from this judge yet.

    MCQ option matches and exact matches are decided by rule (no judge call). Without a backend only those
    are decided; the rest stay pending. Raises :class:`medix_r1.judge.JudgeErrorBudgetExceeded` when the
    judge keeps failing (what was judged is kept).
    """
    from medix_r1.judge import Judge, VerdictCache

    settings = settings or JudgeSettings()
    out = Path(out_dir)
    run = read_run(out)
    if not (out / GEN_FILE).exists():
        raise EvalError(f"{out} has no {GEN_FILE}: run `medix-r1 eval generate` (or `eval run`) first")
    gens = JsonlStore(out / GEN_FILE).latest()
    wanted = set(tasks) if tasks is not None else None
    prompts = settings.prompts() if settings.backend is not None else {}
    judge_model = settings.backend.model_name if settings.backend is not None else None
    if settings.backend is not None:
        run["judge"] = settings.info()
        write_run(out, run)

    store = JsonlStore(out / JUDGE_FILE).open()
    summary = PhaseSummary("judge")
    t0 = time.perf_counter()
    judges: dict[str, Any] = {}
    try:
        latest = store.latest()
        todo: list[dict] = []
        decided: list[dict] = []
        for key, g in gens.items():
            if wanted is not None and g["task"] not in wanted:
                continue
            if g.get("status") != "ok":
                continue
            summary.total += 1
            prev = latest.get(key)
            if prev is not None and prev.get("gen_sig") == gen_signature(g) and prev.get("status") in FINAL_JUDGE:
                kind = "rubric" if g.get("scorer") == "rubric" else "binary"
                if (prev["status"] == "exact" or judge_model is None
                        or (prev.get("judge_model") == judge_model and prev.get("judge_prompt") == prompts[kind].key)):
                    summary.already_done += 1
                    continue
            rule = _rule_decision(g)
            if rule is not None:
                decided.append(_verdict_record(g, status="exact", score=rule.score, method="rule",
                                               reason=rule.reason))
                summary.add("exact")
                summary.done += 1
                continue
            todo.append(g)
        store.append_many(decided)
        if todo and settings.backend is None:
            log.warning("%d sample(s) need a judge and none was given: they stay pending (pass --judge-url "
                        "or --judge local)", len(todo))
            todo = []
        if todo:
            cache = settings.cache
            if cache == "default":
                cache = VerdictCache()
            judges = {kind: Judge(settings.backend, p, cache=cache, guard=settings.guard,
                                  max_error_rate=settings.max_error_rate, concurrency=settings.concurrency,
                                  min_requests_for_budget=settings.min_requests_for_budget)
                      for kind, p in prompts.items()}
        bar = _progress_bar(summary.total, summary.already_done + summary.done, "judge", progress)

        async def work(g: dict) -> None:
            from medix_r1.judge import JudgeRequest

            kind = "rubric" if g.get("scorer") == "rubric" else "binary"
            judge = judges[kind]
            req = JudgeRequest(reference=g["reference"], prediction=g.get("final_answer") or "",
                               question=g.get("question"), kind=kind)
            (v,) = await judge.ajudge([req])
            await store.aappend(_verdict_record(
                g, status=v.status, score=v.score, method="judge", raw=v.raw, votes=_votes(judge.prompt, v.raw),
                error=v.error, cached=v.cached, judge_model=judge_model, judge_prompt=judge.prompt.key,
                latency_s=round(v.latency_s, 4)))
            summary.add(v.status)
            summary.done += 1
            summary.requests += 1
            if not v.has_verdict:
                summary.failed += 1
                bar.set_postfix(errors=summary.failed, refresh=False)
            bar.update(1)

        try:
            await _run_workers(settings.concurrency, todo, work)
        finally:
            bar.close()
    finally:
        store.close()
        summary.seconds = time.perf_counter() - t0
        if settings.backend is not None:
            await settings.backend.aclose()
    if judges:
        stats = {k: j.stats.as_dict() for k, j in judges.items()}
        run = read_run(out)
        run.setdefault("judge", {})["last_stats"] = stats
        write_run(out, run)
        if summary.failed and summary.failed == summary.requests:
            from medix_r1.judge import JudgeErrorBudgetExceeded

            j = next(iter(judges.values()))
            raise JudgeErrorBudgetExceeded(
                f"all {summary.failed} judge requests failed. Last error: {j.stats.last_error}. Fix: "
                f"{settings.backend.how_to_fix()}. Finished grades are saved: rerun the same command to resume.")
    log.info("judge: %d new, %d already done, %d failed of %d (%.1f s)", summary.done, summary.already_done,
             summary.failed, summary.total, summary.seconds)
    return summary


def _rule_decision(g: dict):
    answer = g.get("final_answer") or ""
    scorer = g.get("scorer")
    if scorer == "mcq" and g.get("options"):
        return decide_mcq(answer, g["options"], g.get("answer_letter"), g["reference"])
    if scorer == "rubric":
        return decide_exact(answer, g["reference"], "report") if not answer.strip() else None
    return decide_exact(answer, g["reference"], g.get("answer_type") or "open")


__all__ = [
    "FINAL_GEN",
    "FINAL_JUDGE",
    "GEN_FILE",
    "JUDGE_FILE",
    "RUN_FILE",
    "ErrorBudgetExceeded",
    "EvalError",
    "JudgeSettings",
    "PhaseSummary",
    "RunMismatch",
    "agenerate_phase",
    "ajudge_phase",
    "gen_signature",
    "read_run",
    "write_json_atomic",
    "write_run",
]
