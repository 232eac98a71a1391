"""The :class:`Judge`: a prompt, a chat backend, the verdict cache, the injection guard and an error budget.

One call judges a batch of requests concurrently and returns one :class:`~medix_r1.judge.base.Verdict` per
request, in order:

1. the injection guard flags answers that address the grader: score 0, status ``injection``, no model call;
2. identical requests in the batch are judged once;
3. the verdict cache answers what it already knows;
4. the rest go to the backend, at most ``concurrency`` at a time; a failure (timeout, HTTP error, refused
   connection) or an unparseable reply becomes ``score=None`` with its status, never a made-up 0 or 1;
5. new real verdicts are written to the cache (failures never are);
6. each model call is counted in the judge's :class:`~medix_r1.budget.ErrorBudget` (cache hits, duplicates
   and guarded answers are not calls); when more than ``max_error_rate`` of the last ``error_window`` calls
   failed, :class:`JudgeErrorBudgetExceeded` is raised with the counts and what to do, instead of training
   or grading on noise. ``budget=None`` turns the judge's own check off (training checks one budget over
   every process's calls instead, see :mod:`medix_r1.train.trainer`).

Used by the reward (``accuracy_llm``) and by evaluation. Example::

    judge = Judge(OpenAIChatBackend(model="Qwen/Qwen3-4B-Instruct-2507"), "reward-default",
                  cache=VerdictCache(), max_error_rate=0.1)
    verdicts = judge.judge([JudgeRequest(reference="Liver", prediction="hepatic", question="Which organ?")])
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence

from medix_r1.aio import gather_or_cancel
from medix_r1.budget import DEFAULT_WINDOW, ErrorBudget
from medix_r1.grading import guard_decision
from medix_r1.judge.base import (
    BackendError,
    ChatBackend,
    JudgeErrorBudgetExceeded,
    JudgeRequest,
    JudgeStats,
    Verdict,
)
from medix_r1.judge.cache import VerdictCache, verdict_key
from medix_r1.judge.guard import InjectionGuard
from medix_r1.judge.prompts import JudgePrompt, get_prompt

log = logging.getLogger(__name__)

_FLUSH_EVERY = 64  # write verdicts to the cache in small batches so a killed run loses little


class Judge:
    """Judge batches of (question, reference, prediction) requests with a chat backend.

    ``guard`` is ``True`` (default detector), ``False``, or an :class:`InjectionGuard`. ``max_error_rate``
    is the largest tolerated share of failed model calls among the last ``error_window`` calls (``None``: no
    limit); it is only enforced once ``min_requests_for_budget`` calls are in the window, so one early timeout
    does not stop a run. ``budget`` replaces the budget built from those three (``None``: no check here).
    """

    def __init__(self, backend: ChatBackend, prompt: str | JudgePrompt = "reward-default", *,
                 cache: VerdictCache | None = None, guard: bool | InjectionGuard = True,
                 max_error_rate: float | None = None, concurrency: int = 64,
                 min_requests_for_budget: int = 20, temperature: float = 0.0,
                 error_window: int = DEFAULT_WINDOW, budget: ErrorBudget | None | str = "auto"):
        if max_error_rate is not None and not 0.0 <= max_error_rate <= 1.0:
            raise ValueError(f"max_error_rate must be between 0 and 1, got {max_error_rate}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.backend = backend
        self.prompt = get_prompt(prompt)
        self.cache = cache
        self.guard = InjectionGuard() if guard is True else (guard or None)
        self.max_error_rate = max_error_rate
        self.concurrency = concurrency
        self.min_requests_for_budget = min_requests_for_budget
        self.temperature = temperature
        self.stats = JudgeStats()
        self._stats_lock = threading.Lock()
        if budget == "auto":
            budget = ErrorBudget(f"judge {backend.describe()} (prompt {self.prompt.key})", max_error_rate,
                                 window=error_window, min_calls=min_requests_for_budget,
                                 fix=backend.how_to_fix(),
                                 error_type=JudgeErrorBudgetExceeded)
        self.budget: ErrorBudget | None = budget

    # ----------------------------------------------------------------------------------------- public API
    def key(self, request: JudgeRequest) -> str:
        return verdict_key(self.backend.model_name, self.prompt.key, request)

    async def ajudge(self, requests: Sequence[JudgeRequest], progress: Callable[[int], None] | None = None,
                     stats: JudgeStats | None = None) -> list[Verdict]:
        """Judge ``requests`` concurrently; one verdict per request, in order.

        ``progress(n)`` is called as verdicts are settled (n at a time), for progress bars. ``stats``, when
        given, is updated as well as :attr:`stats` (e.g. per-step reward metrics).
        Raises :class:`JudgeErrorBudgetExceeded` when failures go over the budget.
        """
        requests = list(requests)
        out: list[Verdict | None] = [None] * len(requests)
        settled: list[tuple[Verdict, bool]] = []  # (verdict, duplicate) in settle order, for stats

        # 1. guard; 2. de-duplicate the rest by cache key
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            if self.guard is not None:
                # Eval's judges only: the reward decides the guard once, in its preparation step, and builds
                # its judge with guard=False. The judge only ever sees the truncated answer.
                finding = guard_decision(req.prediction, self.guard,
                                         max_chars=getattr(self.prompt, "max_answer_chars", None))
                if finding.flagged:
                    out[i] = Verdict(0.0, "injection", raw=None, error=finding.reason)
                    settled.append((out[i], False))
                    continue
            groups.setdefault(self.key(req), []).append(i)

        # 3. cache
        cached = self.cache.get_many(list(groups)) if (self.cache is not None and groups) else {}
        for key, v in cached.items():
            for n, i in enumerate(groups.pop(key)):
                out[i] = v
                settled.append((v, n > 0))
        self._record(settled, stats)
        if progress and settled:
            progress(len(settled))

        # 4. model calls, bounded; budget checked as results arrive
        sem = asyncio.Semaphore(self.concurrency)
        pending_writes: dict[str, Verdict] = {}

        async def one(key: str, idxs: list[int]) -> None:
            async with sem:
                self._check_budget()  # a slot freed by the call that broke the budget must not send another
                v = await self._judge_one(requests[idxs[0]])
            batch = []
            for n, i in enumerate(idxs):
                out[i] = v
                batch.append((v, n > 0))
            self._record(batch, stats)
            if self.budget is not None:
                self.budget.record(1, 0 if v.has_verdict else 1, error=v.error,
                                   kinds=None if v.has_verdict else {v.status: 1})
            if progress:
                progress(len(idxs))
            if v.has_verdict:
                pending_writes[key] = v
                if len(pending_writes) >= _FLUSH_EVERY:
                    self._flush(pending_writes)
            self._check_budget()

        tasks = [asyncio.ensure_future(one(k, idxs)) for k, idxs in groups.items()]
        try:
            if tasks:
                await gather_or_cancel(tasks)
        finally:
            self._flush(pending_writes)  # 5. keep what was judged, even when the budget stops the run
        self._check_budget()
        return out  # type: ignore[return-value]

    def judge(self, requests: Sequence[JudgeRequest], progress: Callable[[int], None] | None = None,
              ) -> list[Verdict]:
        """Synchronous :meth:`ajudge` (runs its own event loop; call ``ajudge`` from async code)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run_and_close(requests, progress))
        raise RuntimeError("Judge.judge() was called inside a running event loop; await Judge.ajudge() instead")

    async def acheck(self) -> None:
        """Raise :class:`BackendError` (saying how to start the judge) when the backend cannot answer."""
        await self.backend.check()

    def check(self) -> None:
        asyncio.run(self._check_and_close())

    # ----------------------------------------------------------------------------------------- internals
    async def _run_and_close(self, requests, progress):
        try:
            return await self.ajudge(requests, progress)
        finally:
            await self.backend.aclose()

    async def _check_and_close(self):
        try:
            await self.backend.check()
        finally:
            await self.backend.aclose()

    async def _judge_one(self, request: JudgeRequest) -> Verdict:
        t0 = time.perf_counter()
        messages = self.prompt.build(request)
        replies: list[str] = []
        scores: list[float | None] = []
        try:
            for r in range(self.prompt.rounds):
                if r:
                    messages = self.prompt.followup(messages, replies[-1], r)
                extra = {"choices": self.prompt.choices} if (self.prompt.choices and
                                                              self.backend.supports_choices) else {}
                reply = await self.backend.complete(messages, max_tokens=self.prompt.max_tokens,
                                                    temperature=self.temperature, **extra)
                replies.append(reply)
                scores.append(self.prompt.parse(reply))
        except TimeoutError as exc:
            return Verdict(None, "timeout", raw=_raw(replies), error=f"timeout: {exc}",
                           latency_s=time.perf_counter() - t0)
        except BackendError as exc:
            return Verdict(None, "error", raw=_raw(replies), error=str(exc), latency_s=time.perf_counter() - t0)
        score = self.prompt.aggregate(scores)
        latency = time.perf_counter() - t0
        if score is None:
            return Verdict(None, "unparseable", raw=_raw(replies),
                           error=f"reply is not a verdict for {self.prompt.key}: {_raw(replies)[:80]!r}",
                           latency_s=latency)
        return Verdict(float(score), "ok", raw=_raw(replies), latency_s=latency)

    def _record(self, items: list[tuple[Verdict, bool]], extra: JudgeStats | None = None) -> None:
        with self._stats_lock:
            for v, dup in items:
                self.stats.add(v, duplicate=dup)
                if extra is not None:
                    extra.add(v, duplicate=dup)

    def _flush(self, pending: dict[str, Verdict]) -> None:
        if self.cache is not None and pending:
            self.cache.put_many(dict(pending), judge_model=self.backend.model_name, prompt=self.prompt.key)
        pending.clear()

    def _check_budget(self) -> None:
        if self.budget is not None:
            self.budget.check()

    def describe(self) -> str:
        return f"{self.backend.describe()} with prompt {self.prompt.key}"


def _raw(replies: list[str]) -> str | None:
    if not replies:
        return None
    return replies[0] if len(replies) == 1 else json.dumps(replies, ensure_ascii=False)
