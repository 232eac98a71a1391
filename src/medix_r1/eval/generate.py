"""The generate phase: one completion per sample, appended to ``generations.jsonl`` as it finishes.

Idempotent and resumable: a rerun skips every sample whose last record is final (``ok`` or ``bad_input``)
and was made from the same task version, question, reference and options (its ``sample_hash``); a failed
request (``error``) is retried, and a finished sample whose content changed is generated again (counted as
``stale``, and so judged again). Records are appended with one ``write`` + ``fsync`` each
(:class:`~medix_r1.eval.store.JsonlStore`), so a crash or SIGKILL loses only the requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from medix_r1.budget import ErrorBudget
from medix_r1.data.schema import SampleError
from medix_r1.errors import ServiceError
from medix_r1.eval.generation import (
    Generator,
    GenRequest,
    PromptOptions,
    build_messages,
    question_text,
    shown_images,
)
from medix_r1.eval.protocol import text_after_think
from medix_r1.eval.records import FINAL_GEN, GenerationRecord, PhaseSummary, sample_hash
from medix_r1.eval.registry import task_order
from medix_r1.eval.rundir import (
    GEN_FILE,
    EmptyTaskError,
    ErrorBudgetExceeded,
    RunMismatch,
    read_run,
    write_run,
)
from medix_r1.eval.sources import LoadIssue, TaskData
from medix_r1.eval.store import JsonlStore
from medix_r1.eval.workers import progress_bar, run_workers
from medix_r1.prompts import parse_completion

log = logging.getLogger(__name__)

RESUME = ("finished samples are saved: rerun the same command to resume (raise --max-error-rate to tolerate "
          "more failures)")


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


def check_not_empty(tasks: list[TaskData]) -> None:
    """A task with no rows, or only bad rows, cannot be scored: say so before any work (exit 2)."""
    for td in tasks:
        if td.n == 0:
            raise EmptyTaskError(f"task {td.spec.name} has no rows", where=td.origin or td.spec.name,
                                 fix="check the file or --data-dir (and the split); drop the task from --tasks")
        if not td.samples:
            raise EmptyTaskError(f"all {td.n} rows of task {td.spec.name} are bad input; first: {td.issues[0]}",
                                 where=td.origin or td.spec.name,
                                 fix="fix the rows (`medix-r1 data validate` names each one) or drop the task")


def _hash_of(td: TaskData, item) -> str:
    if isinstance(item, LoadIssue):
        return sample_hash(td.spec.version, str(item), "", None)
    return sample_hash(td.spec.version, item.question, item.answer, item.options)


def _fields(td: TaskData, sample, prompt: PromptOptions) -> dict[str, Any]:
    spec = td.spec
    return {
        "question": question_text(sample, prompt.protocol),  # with the Choices lines: the judge can map "option B"
        "reference": sample.answer,
        "options": sample.options,
        "answer_letter": sample.metadata.get("answer_letter"),
        "answer_type": "report" if spec.answer_type == "report" else sample.answer_type,
        "modality": sample.modality,
        "has_image": bool(sample.images),
        "kind": td.kind,
        "scorer": scorer_for(spec.scorer, spec.answer_type, sample),
        "task_version": spec.version,
        "sample_hash": _hash_of(td, sample),
    }


async def agenerate_phase(tasks: list[TaskData], generator: Generator, out_dir: str | Path, *,
                          max_new_tokens: int = 2048, temperature: float = 0.0,
                          prompt: PromptOptions | None = None, max_error_rate: float | None = 0.1,
                          min_requests_for_budget: int = 20, progress: bool = True,
                          limit: int | None = None) -> PhaseSummary:
    """Generate a completion for every sample not yet generated (or changed since). Returns what was done.

    Raises :class:`~medix_r1.eval.rundir.RunMismatch` when ``out_dir`` holds another model's generations or
    other settings, :class:`~medix_r1.eval.rundir.EmptyTaskError` for a task with nothing to score, and
    :class:`~medix_r1.eval.rundir.ErrorBudgetExceeded` when the generator keeps failing.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompt = prompt or PromptOptions()
    protocol = prompt.protocol
    check_not_empty(tasks)
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "prompt": prompt.to_dict(),
                "protocol": protocol.name, "top_p": protocol.top_p, "jpeg_quality": protocol.jpeg_quality}
    run = read_run(out)
    prev_model = (run.get("model") or {}).get("name")
    if prev_model and prev_model != generator.name:
        raise RunMismatch(f"{out} holds generations of model {prev_model!r}, not {generator.name!r}",
                          where="--output-dir", fix="use another --output-dir (one folder per model)")
    prev = run.get("generation")
    older = {"protocol": "default", "top_p": None, "jpeg_quality": 90}  # folders made before these were recorded
    if prev and {k: prev.get(k, older.get(k)) for k in settings} != settings:
        raise RunMismatch(f"{out} holds generations made with other settings ({prev}); now {settings}",
                          where="--output-dir", fix="use another --output-dir, or the same settings to resume")
    generator.configure(protocol)
    await generator.prepare()  # a missing model or a wrong server fails here, before any sample is sent
    run["model"] = generator.info()
    run["generation"] = settings
    run["protocol"] = protocol.name
    run["limit"] = limit
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
                    if rec.get("sample_hash") == _hash_of(td, item):
                        summary.already_done += 1
                        continue
                    summary.stale += 1
                if isinstance(item, LoadIssue):
                    bulk.append(GenerationRecord(
                        task=td.spec.name, id=item.id, status="bad_input", error=str(item), field=item.field,
                        kind=td.kind, task_version=td.spec.version, sample_hash=_hash_of(td, item),
                        **base).to_dict())
                    summary.add("bad_input")
                    summary.done += 1
                    continue
                todo.append((td, item))
        if summary.stale:
            log.warning("generate: %d finished sample(s) changed since (task version, question, reference or "
                        "options): generating and judging them again", summary.stale)
        store.append_many(bulk)
        bar = progress_bar(summary.total, summary.already_done + summary.done, "generate", progress)
        budget = ErrorBudget(f"generation with {generator.describe()}", max_error_rate,
                             min_calls=min_requests_for_budget, fix=generator.how_to_fix(), resume=RESUME,
                             error_type=ErrorBudgetExceeded)
        batches = [todo[i:i + generator.batch_size] for i in range(0, len(todo), generator.batch_size)]

        async def work(batch: list[tuple[TaskData, Any]]) -> None:
            ready, reqs = [], []
            for td, sample in batch:
                try:
                    # Decoding (large X-rays, PNG) runs in a thread: PIL releases the GIL, the loop keeps going.
                    images = await asyncio.to_thread(sample.load_images) if sample.images else []
                except SampleError as exc:
                    await store.aappend(GenerationRecord(
                        status="bad_input", error=f"{exc.field}: {exc.message}", field=exc.field, task=td.spec.name,
                        id=sample.id, **_fields(td, sample, prompt), **base).to_dict())
                    summary.add("bad_input")
                    summary.done += 1
                    bar.update(1)
                    continue
                images = shown_images(td.spec.name, images, protocol)
                messages = build_messages(sample, td.spec.prompt, prompt, n_images=len(images))
                ready.append((td, sample))
                reqs.append(GenRequest(td.spec.name, sample.id, messages, images))
            if not reqs:
                return
            t = time.perf_counter()
            try:
                replies = await generator.generate(reqs, max_new_tokens=max_new_tokens, temperature=temperature)
                if len(replies) != len(reqs):
                    raise ServiceError(f"the generator returned {len(replies)} replies for {len(reqs)} prompts")
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # counted, written, and stopped by the budget: never swallowed
                err = f"{type(exc).__name__}: {exc}"
                log.warning("generation failed for %d sample(s) (%s ...): %s", len(reqs), reqs[0].id, err)
                log.debug("generation failure", exc_info=True)
                await store.aappend_many([GenerationRecord(task=td.spec.name, id=sample.id, status="error",
                                                           error=err, **_fields(td, sample, prompt),
                                                           **base).to_dict()
                                          for td, sample in ready])
                for _ in ready:
                    summary.add("error")
                summary.failed += len(ready)
                summary.requests += len(ready)
                bar.update(len(ready))
                bar.set_postfix(errors=summary.failed, refresh=False)
                budget.add(len(ready), len(ready), error=err, kinds={"error": len(ready)})
                return
            latency = (time.perf_counter() - t) / len(reqs)
            done = []
            for (td, sample), reply in zip(ready, replies):
                reply = reply or ""
                parsed = parse_completion(reply)
                done.append(GenerationRecord(
                    task=td.spec.name, id=sample.id, status="ok", prediction=reply,
                    final_answer=parsed.final_answer,
                    judge_input=text_after_think(reply) if protocol.judge_sees == "after_think" else None,
                    well_formed=parsed.well_formed, pred_modality=parsed.modality, latency_s=round(latency, 4),
                    **_fields(td, sample, prompt), **base).to_dict())
                summary.add("ok")
            await store.aappend_many(done)
            summary.done += len(ready)
            summary.requests += len(ready)
            bar.update(len(ready))
            budget.add(len(ready), 0)

        try:
            await run_workers(generator.concurrency, batches, work)
            budget.check(final=True)
        finally:
            bar.close()
    finally:
        store.close()
        summary.seconds = time.perf_counter() - t0
        await generator.aclose()
    log.info(summary.line())
    return summary


__all__ = ["agenerate_phase", "check_not_empty", "manifest_entry", "scorer_for"]
