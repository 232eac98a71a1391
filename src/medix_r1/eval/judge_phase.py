"""The judge phase: grade every generated sample, appending one record per sample to ``judgements.jsonl``.

Default protocol: MCQ option matches and exact matches are decided by rule (no judge call); the rest go to
the judge with eval's own prompts. Paper protocol: the judge is always asked, three times in the same chat,
with the release's prompt structure, on the text after the last ``</think>`` (:mod:`medix_r1.eval.protocol`).

The injection guard checks every answer the judge would see. By default it only flags: the judge is asked
anyway and the record and the report say the answer was flagged. ``guard="zero"`` scores a flagged answer 0
without asking the judge (what the reward does).

A judgement is final when it is ``exact``, ``ok``, ``injection`` or ``unparseable``; ``timeout`` and
``error`` are retried on the next run. A judgement is redone when its generation changed (its ``gen_sig``),
or when another judge or prompt is used.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medix_r1 import grading
from medix_r1.budget import ErrorBudget
from medix_r1.errors import UsageError
from medix_r1.eval.generate import RESUME
from medix_r1.eval.judging import eval_prompt, paper_prompt
from medix_r1.eval.protocol import DEFAULT, Protocol, get_protocol
from medix_r1.eval.records import FINAL_JUDGE, GenerationRecord, JudgementRecord, PhaseSummary
from medix_r1.eval.rundir import GEN_FILE, JUDGE_FILE, ErrorBudgetExceeded, EvalError, read_run, write_run
from medix_r1.eval.store import JsonlStore
from medix_r1.eval.workers import progress_bar, run_workers
from medix_r1.judge.prompts import get_prompt

log = logging.getLogger(__name__)

GUARD_POLICIES = ("report", "zero", "off")


@dataclass
class JudgeSettings:
    """How to judge: a chat backend (or ``None`` for rule decisions only), the shared verdict cache, the
    number of rounds, concurrency, the error budget, the guard policy and the protocol."""

    backend: Any = None
    cache: Any = "default"
    """A :class:`~medix_r1.judge.VerdictCache`, ``"default"`` (``$MEDIX_CACHE/judge/verdicts.sqlite``) or None."""
    rounds: int = 3
    few_shot: bool | None = None
    """Worked examples in the binary prompt; ``None``: when the backend prefers them (small local judges)."""
    concurrency: int = 16
    max_error_rate: float | None = 0.1
    min_requests_for_budget: int = 20
    guard: str | bool = "report"
    """``report`` (flag and count, score unchanged), ``zero`` (a flagged answer scores 0 unasked) or ``off``."""
    protocol: Protocol | str = DEFAULT

    def __post_init__(self) -> None:
        self.protocol = get_protocol(self.protocol)
        if self.guard is True:
            self.guard = "report"
        elif self.guard is False:
            self.guard = "off"
        if self.guard not in GUARD_POLICIES:
            raise UsageError(f"unknown guard policy {self.guard!r}", where="--guard",
                             fix=f"use one of: {', '.join(GUARD_POLICIES)}")
        if self.protocol.name == "paper" and self.rounds != 3:
            raise UsageError(f"the paper protocol asks the judge 3 times, not {self.rounds}", where="--rounds",
                             fix="drop --rounds, or use --protocol default")
        if self.protocol.name == "paper" and hasattr(self.backend, "disable_thinking"):
            # The release switches thinking off with " /no_think" in the prompt, not with request fields.
            self.backend.disable_thinking = False

    def constrained(self) -> bool:
        """True when binary verdicts take the reward's fast path: a backend that picks YES or NO in one forward
        pass (the local judge), one round, worked examples (their shared prefix is cached)."""
        few = self.few_shot if self.few_shot is not None else bool(getattr(self.backend, "prefers_few_shot", False))
        return (self.protocol.name == "default" and self.rounds == 1 and few
                and bool(getattr(self.backend, "supports_choices", False)))

    def prompts(self) -> dict[str, Any]:
        if self.protocol.name == "paper":
            return {"binary": paper_prompt("binary", self.rounds), "rubric": paper_prompt("rubric", self.rounds)}
        few = self.few_shot if self.few_shot is not None else bool(getattr(self.backend, "prefers_few_shot", False))
        binary = (get_prompt("reward-default-fewshot") if self.constrained()
                  else eval_prompt("binary", self.rounds, few_shot=few))
        return {"binary": binary, "rubric": eval_prompt("rubric", self.rounds)}

    def info(self) -> dict[str, Any]:
        if self.backend is None:
            return {"model": None, "describe": "rule decisions only (no judge)", "protocol": self.protocol.name}
        p = self.prompts()
        return {"model": self.backend.model_name, "describe": self.backend.describe(), "rounds": self.rounds,
                "prompts": {k: v.key for k, v in p.items()}, "guard": self.guard, "protocol": self.protocol.name,
                "weak": is_weak_judge(self.backend.model_name)}


def is_weak_judge(model_name: str | None) -> bool:
    """The bundled SmolLM2-135M judge: it exercises the code path; its verdicts say little."""
    return bool(model_name) and "smollm" in str(model_name).lower()


def _votes(prompt, raw: str | None) -> list[float | None] | None:
    if raw is None:
        return None
    replies = json.loads(raw) if prompt.rounds > 1 and raw.startswith("[") else [raw]
    return [prompt.parse(r) for r in replies]


def rule_decision(g: GenerationRecord) -> grading.RuleDecision | None:
    """The default protocol's rule layer, the one the reward uses (:func:`medix_r1.grading.decide`): option
    letter/text for MCQ, exact match, the leading yes/no of a closed question, the other body side; ``None``
    when the judge must decide."""
    d = grading.decide(g.reference, g.final_answer or "", question=g.question,
                       options=g.options if g.scorer == "mcq" else None, correct_letter=g.answer_letter,
                       kind="report" if g.scorer == "rubric" else None)
    return d if d.score is not None else None


def judge_text(g: GenerationRecord) -> str:
    """What the judge sees of a completion (the protocol chose it at generation time)."""
    return g.judge_input if g.judge_input is not None else (g.final_answer or "")


async def ajudge_phase(out_dir: str | Path, settings: JudgeSettings | None = None, *, progress: bool = True,
                       tasks: Iterable[str] | None = None) -> PhaseSummary:
    """Grade every generated sample that has no final grade from this judge yet.

    Without a backend only rule decisions are made (default protocol); the rest stay pending. Raises
    :class:`~medix_r1.eval.rundir.ErrorBudgetExceeded` when the judge keeps failing (what was judged is kept).
    """
    from medix_r1.judge import InjectionGuard, Judge, JudgeErrorBudgetExceeded, JudgeRequest, VerdictCache

    out = Path(out_dir)
    run = read_run(out)
    if not (out / GEN_FILE).exists():
        raise EvalError(f"{out} has no {GEN_FILE}", where="--output-dir",
                        fix="run `medix-r1 eval generate` (or `eval run`) first")
    run_protocol = run.get("protocol") or "default"
    settings = settings or JudgeSettings(protocol=run_protocol)
    protocol = settings.protocol
    if run_protocol != protocol.name:
        raise EvalError(f"{out} was generated with the {run_protocol} protocol, not {protocol.name}",
                        where="--protocol", fix=f"pass --protocol {run_protocol} (one protocol per folder)")
    gens = {k: GenerationRecord.from_dict(v) for k, v in JsonlStore(out / GEN_FILE).latest().items()}
    wanted = set(tasks) if tasks is not None else None
    prompts = settings.prompts() if settings.backend is not None else {}
    judge_model = settings.backend.model_name if settings.backend is not None else None
    if settings.backend is None and not protocol.rule_shortcuts:
        raise UsageError(f"the {protocol.name} protocol decides every sample with the judge", where="--judge none",
                         fix="pass --judge-url/--judge-model (or --judge local)")
    if settings.backend is not None:
        run["judge"] = settings.info()
        write_run(out, run)
    guard = InjectionGuard() if settings.guard != "off" else None

    store = JsonlStore(out / JUDGE_FILE).open()
    summary = PhaseSummary("judge")
    t0 = time.perf_counter()
    judges: dict[str, Any] = {}
    try:
        latest = store.latest()
        todo: list[GenerationRecord] = []
        decided: list[dict] = []
        for key, g in gens.items():
            if wanted is not None and g.task not in wanted:
                continue
            if g.status != "ok":
                continue
            summary.total += 1
            prev = latest.get(key)
            if prev is not None and prev.get("gen_sig") == g.signature and prev.get("status") in FINAL_JUDGE:
                kind = "rubric" if g.scorer == "rubric" else "binary"
                if (prev["status"] == "exact" or judge_model is None
                        or (prev.get("judge_model") == judge_model and prev.get("judge_prompt") == prompts[kind].key)):
                    summary.already_done += 1
                    continue
            elif prev is not None and prev.get("status") in FINAL_JUDGE:
                summary.stale += 1
            rule = rule_decision(g) if protocol.rule_shortcuts else None
            if rule is not None:
                decided.append(JudgementRecord(task=g.task, id=g.id, gen_sig=g.signature, scorer=g.scorer,
                                               status="exact", score=rule.score, method="rule",
                                               reason=rule.reason).to_dict())
                summary.add("exact")
                summary.done += 1
                continue
            todo.append(g)
        store.append_many(decided)
        if todo and settings.backend is None:
            log.warning("%d sample(s) need a judge and none was given: they stay pending (pass --judge-url "
                        "or --judge local)", len(todo))
            todo = []
        budget_fix = judge_fix(settings.backend)
        what = f"judge {settings.backend.describe()}" if settings.backend is not None else "judge"
        budget = ErrorBudget(what, settings.max_error_rate, min_calls=settings.min_requests_for_budget,
                             fix=budget_fix, resume=RESUME, error_type=ErrorBudgetExceeded)
        if todo:
            cache = settings.cache
            if cache == "default":
                cache = VerdictCache()
            # The guard runs here, not in the Judge: eval reports a flagged answer and scores it as judged.
            # One budget for both prompts, fed by the Judge with its real calls only (no cache hits).
            judges = {kind: Judge(settings.backend, p, cache=cache, guard=False, concurrency=settings.concurrency,
                                  budget=budget)
                      for kind, p in prompts.items()}
        bar = progress_bar(summary.total, summary.already_done + summary.done, "judge", progress)

        async def work(g: GenerationRecord) -> None:
            kind = "rubric" if g.scorer == "rubric" else "binary"
            judge = judges[kind]
            text = judge_text(g)
            finding = guard.check(text) if guard is not None else None
            flagged = "; ".join(finding.reasons) if finding else None
            if finding and settings.guard == "zero":
                await store.aappend(JudgementRecord(
                    task=g.task, id=g.id, gen_sig=g.signature, scorer=g.scorer, status="injection", score=0.0,
                    method="guard", flagged=flagged, judge_model=judge_model,
                    judge_prompt=judge.prompt.key).to_dict())
                summary.add("injection")
                summary.done += 1
                bar.update(1)
                return
            req = JudgeRequest(reference=g.reference or "", prediction=text, question=g.question, kind=kind)
            (v,) = await judge.ajudge([req])
            await store.aappend(JudgementRecord(
                task=g.task, id=g.id, gen_sig=g.signature, scorer=g.scorer, status=v.status, score=v.score,
                method="judge", raw=v.raw, votes=_votes(judge.prompt, v.raw), error=v.error, cached=v.cached,
                judge_model=judge_model, judge_prompt=judge.prompt.key, latency_s=round(v.latency_s, 4),
                flagged=flagged).to_dict())
            summary.add(v.status)
            summary.done += 1
            summary.requests += 1
            if not v.has_verdict:
                summary.failed += 1
                bar.set_postfix(errors=summary.failed, refresh=False)
                budget.fix = _no_verdict_hint(summary.by_status, budget_fix)
            bar.update(1)

        try:
            await run_workers(settings.concurrency, todo, work)
        except JudgeErrorBudgetExceeded as exc:  # a Judge's own budget: re-say it with eval's flags
            raise ErrorBudgetExceeded(f"judge: {exc}", fix=budget_fix) from None
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
        if summary.failed and summary.failed == summary.requests and settings.max_error_rate is not None:
            raise _all_failed(summary, judges, settings, budget_fix)
    log.info(summary.line())
    return summary


def judge_fix(backend: Any) -> str:
    """What to do when eval's judge fails (eval's own default judge and flags, not the reward's)."""
    from medix_r1.eval.generation import DEFAULT_EVAL_JUDGE

    if backend is None:
        return ""
    url = getattr(backend, "base_url", None)
    if url:
        return (f"is the judge server at {url} up and serving {backend.model_name!r}? Start one with `vllm serve "
                f"{DEFAULT_EVAL_JUDGE} --host 127.0.0.1 --port 8000` and pass --judge-url/--judge-model to match, "
                "or use --judge local")
    return (f"the local judge {backend.model_name!r} failed: check --judge-model and the log (-v), or serve a "
            "judge and pass --judge-url/--judge-model")


def _no_verdict_hint(by_status: dict[str, int], fix: str) -> str:
    """Say what to fix for the kind of failure: unreadable replies are not a server that is down."""
    unparseable = by_status.get("unparseable", 0)
    down = by_status.get("timeout", 0) + by_status.get("error", 0)
    if unparseable and unparseable >= down:
        return ("the judge answers, but not with verdicts: check that --judge-model is an instruction-tuned "
                "model that can reply with JSON (e.g. Qwen/Qwen3-14B), and read the raw replies in "
                "judgements.jsonl")
    return fix


def _all_failed(summary: PhaseSummary, judges: dict, settings: JudgeSettings, fix: str) -> ErrorBudgetExceeded:
    last = next((j.stats.last_error for j in judges.values() if j.stats.last_error), None)
    counts = ", ".join(f"{k} {n}" for k, n in sorted(summary.by_status.items()))
    return ErrorBudgetExceeded(
        f"judge: all {summary.failed} judgements gave no verdict ({counts}). Last: {last}",
        where=settings.backend.describe() if settings.backend is not None else None,
        fix=f"{_no_verdict_hint(summary.by_status, fix)}. Finished grades are saved: rerun the same command to "
            "resume")


__all__ = ["GUARD_POLICIES", "JudgeSettings", "ajudge_phase", "is_weak_judge", "judge_fix", "judge_text",
           "rule_decision"]
