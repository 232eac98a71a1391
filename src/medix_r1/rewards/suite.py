"""The composite reward as TRL reward functions, and batch scoring for ``medix-r1 score``.

:class:`RewardSuite` holds one config, one judge and one embedder, and exposes the four components:

- ``format``: the reasoning block then the answer block, nothing after;
- ``modality``: the text before the reasoning is the reference's modality tag (``None`` for text-only rows);
- ``accuracy_llm``: the judge's YES/NO (``None`` when the judge failed: TRL leaves it out);
- ``accuracy_embed``: cosine of answer and reference embeddings, binary at the threshold or continuous.

Each follows TRL's contract ``fn(prompts=None, completions=..., **columns) -> list[float | None]`` and its
``__name__`` is the component name. ``accuracy_llm`` and ``accuracy_embed`` also come as coroutine functions,
which TRL runs concurrently (the embedding model runs in a worker thread while judge requests are in flight).

With TRL::

    funcs, weights = build_reward_functions(RewardConfig(mode="paper"))
    trainer = GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(reward_weights=weights, ...))
    funcs[0].stats.snapshot(reset=True)   # per-step metrics: means, judge error rate, cache hits, ...

Outside TRL: ``score_completions(rows, config)`` scores dict rows and returns one reward dict per row.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medix_r1.judge.base import JudgeRequest, JudgeStats, Verdict
from medix_r1.rewards.checks import Prepared, format_score, modality_score, prepare
from medix_r1.rewards.config import COMPONENTS, RewardConfig
from medix_r1.rewards.embedding import Embedder
from medix_r1.rewards.inputs import RowReference, completion_texts, row_references
from medix_r1.rewards.total import composite_total

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- stats
@dataclass
class _Running:
    n: int = 0
    total: float = 0.0
    none: int = 0

    def add(self, values: Sequence[float | None]) -> None:
        for v in values:
            if v is None:
                self.none += 1
            else:
                self.n += 1
                self.total += v


def _failure_counts(judge) -> dict[str, int]:
    """The judge's failed verdicts by kind, under the names both the counts and the metrics use."""
    return {"judge/unparseable": judge.by_status.get("unparseable", 0),
            "judge/timeouts": judge.by_status.get("timeout", 0),
            "judge/errors": judge.by_status.get("error", 0)}


@dataclass
class RewardStats:
    """Running reward metrics, updated by the reward functions; the trainer logs :meth:`snapshot`."""

    components: dict[str, _Running] = field(default_factory=lambda: {c: _Running() for c in COMPONENTS})
    judge: JudgeStats = field(default_factory=JudgeStats)
    shortcuts: Counter = field(default_factory=Counter)
    embed_seconds: float = 0.0
    judge_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, component: str, values: Sequence[float | None]) -> None:
        with self._lock:
            self.components[component].add(values)

    def add_shortcuts(self, prepared: Sequence[Prepared]) -> None:
        with self._lock:
            self.shortcuts.update(p.shortcut_reason for p in prepared if p.shortcut_reason)

    def counts(self, reset: bool = False) -> dict[str, float]:
        """Plain counts and sums since the last reset (no rates), so several processes' counts can be added:
        ``reward/<c>/n``, ``.../none``, ``.../sum``, ``judge/<counter>``, ``reward/shortcut/<reason>``,
        ``time/reward_*_s``. The training loop sums them over processes before it derives any rate."""
        with self._lock:
            out: dict[str, float] = {}
            for c, r in self.components.items():
                if r.n or r.none:
                    out.update({f"reward/{c}/n": r.n, f"reward/{c}/none": r.none, f"reward/{c}/sum": r.total})
            j = self.judge
            if j.requests:
                out.update({"judge/requests": j.requests, "judge/model_calls": j.model_calls,
                            "judge/model_failures": j.model_failures, "judge/cache_hits": j.cache_hits,
                            "judge/deduplicated": j.deduplicated, "judge/latency_total_s": j.latency_total_s,
                            **_failure_counts(j)})
            for k, n in self.shortcuts.items():
                out[f"reward/shortcut/{k}"] = n
            # the guard's flags are decided in preparation (counted once, as a shortcut), never by the judge
            out["judge/injections"] = self.shortcuts.get("injection", 0)
            out["time/reward_embed_s"] = self.embed_seconds
            out["time/reward_judge_s"] = self.judge_seconds
            if reset:
                self._reset()
            return out

    def _reset(self) -> None:
        self.components = {c: _Running() for c in COMPONENTS}
        self.judge = JudgeStats()
        self.shortcuts = Counter()
        self.embed_seconds = self.judge_seconds = 0.0

    def snapshot(self, reset: bool = False) -> dict[str, float]:
        """Flat metrics since the last reset: ``reward/<component>/mean``, ``.../none_frac``,
        ``judge/error_rate``, ``judge/cache_hit_rate``, ``judge/mean_latency_s``, ``judge/injections``,
        ``judge/requests``, ``judge/model_calls``, ``reward/shortcut/<reason>``, timings."""
        with self._lock:
            out: dict[str, float] = {}
            for c, r in self.components.items():
                if r.n or r.none:
                    out[f"reward/{c}/mean"] = r.total / r.n if r.n else float("nan")
                    out[f"reward/{c}/none_frac"] = r.none / (r.n + r.none)
            j = self.judge
            if j.requests:
                out.update({"judge/requests": j.requests, "judge/model_calls": j.model_calls,
                            "judge/error_rate": j.error_rate, "judge/cache_hit_rate": j.cache_hit_rate,
                            "judge/mean_latency_s": j.mean_latency_s, **_failure_counts(j)})
            for k, n in self.shortcuts.items():
                out[f"reward/shortcut/{k}"] = n
            if self.shortcuts.get("injection"):
                out["judge/injections"] = self.shortcuts["injection"]
            out["time/reward_embed_s"] = self.embed_seconds
            out["time/reward_judge_s"] = self.judge_seconds
            if reset:
                self._reset()
            return out


# --------------------------------------------------------------------------------------------- suite
class RewardSuite:
    """The four reward components over one config, judge and embedder (both built lazily)."""

    def __init__(self, config: RewardConfig | None = None, *, judge=None, embedder: Embedder | None = None):
        self.config = (config or RewardConfig()).validate()
        self._judge = judge
        self._embedder = embedder
        self.stats = RewardStats()
        self._build_lock = threading.Lock()
        self._prep_lock = threading.Lock()
        self._embed_lock = threading.Lock()
        self._last_prepared: tuple | None = None

    # ----------------------------------------------------------------------------------------- parts
    @property
    def judge(self):
        """The :class:`~medix_r1.judge.Judge` (built on first use from ``config.judge``)."""
        with self._build_lock:
            if self._judge is None:
                self._judge = build_judge(self.config)
            return self._judge

    @property
    def embedder(self) -> Embedder:
        with self._build_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.config.embedding_model)
            return self._embedder

    def check(self) -> None:
        """Fail early, saying how to fix it, when a needed judge is unreachable or cannot load."""
        if "accuracy_llm" in self.config.components:
            self.judge.check()
        if "accuracy_embed" in self.config.components:
            self.embedder.load()

    def _prepare(self, completions, kwargs) -> list[Prepared]:
        """The shared preparation step: parse, rule decisions and the injection guard, once per batch.

        TRL calls every component with the same batch; the first call prepares it and the others reuse it,
        so the guard runs once per completion and its flags (and the rule shortcuts) are counted once.
        """
        texts = completion_texts(completions)
        refs = row_references(len(texts), kwargs)
        # TRL hands every component the same list object; a later step with identical text is a new batch
        key = (id(completions), tuple(texts), tuple(_ref_key(r) for r in refs))
        with self._prep_lock:
            if self._last_prepared is not None and self._last_prepared[0] == key:
                return self._last_prepared[1]
            prepared = [prepare(t, r, self.config.mode, guard=self.config.injection_guard)
                        for t, r in zip(texts, refs)]
            self._last_prepared = (key, prepared)
        self.stats.add_shortcuts(prepared)
        return prepared

    # ----------------------------------------------------------------------------------------- scorers
    def score_format(self, prepared: Sequence[Prepared]) -> list[float | None]:
        return [format_score(p) for p in prepared]

    def score_modality(self, prepared: Sequence[Prepared]) -> list[float | None]:
        return [modality_score(p, self.config.mode) for p in prepared]

    def score_embed(self, prepared: Sequence[Prepared]) -> list[float | None]:
        out: list[float | None] = [None] * len(prepared)
        todo = []
        for i, p in enumerate(prepared):
            if p.reference is None:
                continue
            if p.shortcut is not None:
                out[i] = p.shortcut
            elif p.embed_blind:
                out[i] = 0.0
            else:
                todo.append(i)
        if todo:
            t0 = time.perf_counter()
            with self._embed_lock:  # one encoder, possibly called from several worker threads
                sims = self.embedder.similarity([prepared[i].answer for i in todo],
                                                [prepared[i].reference for i in todo])
            with self.stats._lock:
                self.stats.embed_seconds += time.perf_counter() - t0
            for i, s in zip(todo, sims):
                out[i] = (1.0 if s >= self.config.embed_threshold else 0.0) \
                    if self.config.embed_scoring == "binary" else max(0.0, min(1.0, s))
        return out

    async def ascore_llm(self, prepared: Sequence[Prepared], progress: Callable[[int], None] | None = None,
                         ) -> tuple[list[float | None], list[Verdict | None]]:
        out: list[float | None] = [None] * len(prepared)
        verdicts: list[Verdict | None] = [None] * len(prepared)
        todo, requests = [], []
        for i, p in enumerate(prepared):
            if p.reference is None:
                continue
            if p.shortcut is not None:
                # decided in preparation (rule or guard): no model call, and out of the judge's statistics
                out[i] = p.shortcut
                status = "injection" if p.guard.flagged else "exact"
                verdicts[i] = Verdict(p.shortcut, status, error=p.guard.reason if p.guard.flagged
                                      else p.shortcut_reason)
                continue
            todo.append(i)
            requests.append(JudgeRequest(reference=p.reference, prediction=p.answer,
                                         question=p.question if self.config.mode != "paper" else None))
        if progress and len(todo) < len(prepared):
            progress(len(prepared) - len(todo))
        if requests:
            t0 = time.perf_counter()
            judged = await self.judge.ajudge(requests, progress=progress, stats=self.stats.judge)
            with self.stats._lock:
                self.stats.judge_seconds += time.perf_counter() - t0
            for i, v in zip(todo, judged):
                out[i] = v.score  # None for failures: never a made-up 0 or 1
                verdicts[i] = v
        return out, verdicts

    # ----------------------------------------------------------------------------------------- TRL API
    def format(self, prompts=None, completions=None, **kwargs) -> list[float | None]:
        prepared = self._prepare(completions, kwargs)
        out = self.score_format(prepared)
        self.stats.add("format", out)
        return out

    def modality(self, prompts=None, completions=None, **kwargs) -> list[float | None]:
        prepared = self._prepare(completions, kwargs)
        out = self.score_modality(prepared)
        self.stats.add("modality", out)
        return out

    def accuracy_embed(self, prompts=None, completions=None, **kwargs) -> list[float | None]:
        prepared = self._prepare(completions, kwargs)
        out = self.score_embed(prepared)
        self.stats.add("accuracy_embed", out)
        return out

    async def aaccuracy_embed(self, prompts=None, completions=None, **kwargs) -> list[float | None]:
        return await asyncio.to_thread(self.accuracy_embed, prompts, completions, **kwargs)

    async def aaccuracy_llm(self, prompts=None, completions=None, **kwargs) -> list[float | None]:
        prepared = self._prepare(completions, kwargs)
        out, _ = await self.ascore_llm(prepared)
        self.stats.add("accuracy_llm", out)
        return out

    def accuracy_llm(self, prompts=None, completions=None, **kwargs) -> list[float | None]:
        return _run_sync(self._sync_llm(prompts, completions, kwargs))

    async def _sync_llm(self, prompts, completions, kwargs):
        try:
            return await self.aaccuracy_llm(prompts, completions, **kwargs)
        finally:
            await self.judge.backend.aclose()

    def functions(self, asynchronous: bool = True) -> list[Callable]:
        """The configured components as TRL reward functions, named after their component.

        ``asynchronous=True`` gives coroutine functions for the two accuracy components (TRL gathers them).
        Each function carries ``.stats`` (this suite's :class:`RewardStats`) and ``.suite``.
        """
        impl = {"format": self.format, "modality": self.modality,
                "accuracy_llm": self.aaccuracy_llm if asynchronous else self.accuracy_llm,
                "accuracy_embed": self.aaccuracy_embed if asynchronous else self.accuracy_embed}
        return [_named(name, impl[name], self) for name in self.config.components]

    def weights(self) -> list[float]:
        return self.config.weight_list()

    # ----------------------------------------------------------------------------------------- rows API
    async def ascore_rows(self, rows: Sequence[dict], progress: Callable[[int], None] | None = None,
                          details: bool = False) -> list[dict]:
        """Score dict rows (``completion`` plus reference columns); one reward dict per row, in order.

        Each dict has every component (``None`` when not requested or not decided) and ``total``
        (:func:`medix_r1.rewards.total.composite_total` over the requested components). With ``details``, a ``details`` entry
        adds the answer as compared, the shortcut, the judge status and raw reply, and the similarity.
        """
        comps = self.config.components
        columns = _rows_to_columns(rows)
        # in a worker thread: the event loop keeps other chunks' judge requests moving meanwhile
        prepared = await asyncio.to_thread(self._prepare, columns.pop("completions"), columns)
        result: dict[str, list] = {c: [None] * len(rows) for c in COMPONENTS}
        verdicts: list[Verdict | None] = [None] * len(rows)
        if "format" in comps:
            result["format"] = self.score_format(prepared)
        if "modality" in comps:
            result["modality"] = self.score_modality(prepared)
        embed_task = asyncio.ensure_future(asyncio.to_thread(self.score_embed, prepared)) \
            if "accuracy_embed" in comps else None
        try:
            if "accuracy_llm" in comps:
                result["accuracy_llm"], verdicts = await self.ascore_llm(prepared, progress=progress)
            elif progress:
                progress(len(rows))
            if embed_task is not None:
                result["accuracy_embed"] = await embed_task
        finally:
            if embed_task is not None and not embed_task.done():
                embed_task.cancel()
        for c in comps:
            self.stats.add(c, result[c])
        out = []
        w = self.config.weights
        for i, p in enumerate(prepared):
            r = {c: result[c][i] for c in ("format", "modality", "accuracy_llm", "accuracy_embed")}
            r["total"] = composite_total(r, w, comps)
            if details:
                v = verdicts[i]
                r["details"] = {"answer": p.answer, "reference": p.reference, "shortcut": p.shortcut_reason,
                                "rule": p.decision.reason, "injection": p.guard.flagged,
                                "injection_reasons": list(p.guard.reasons),
                                "judge_status": v.status if v else None, "judge_raw": v.raw if v else None,
                                "judge_error": v.error if v and v.status != "exact" else None,
                                "well_formed": p.parsed.well_formed, "format_issue": p.parsed.reason}
            out.append(r)
        return out

    async def aclose(self) -> None:
        if self._judge is not None:
            await self._judge.backend.aclose()


# --------------------------------------------------------------------------------------------- builders
def build_judge(config: RewardConfig):
    """The :class:`~medix_r1.judge.Judge` that ``config.judge`` describes (backend, prompt, cache, budget)."""
    from medix_r1.judge import Judge, VerdictCache, get_prompt, make_backend, reward_prompt_for

    jc = config.judge
    backend = make_backend(jc.backend, url=jc.url, model=jc.model, timeout=jc.timeout,
                           concurrency=jc.concurrency, max_retries=jc.max_retries, api_key_env=jc.api_key_env)
    few_shot = jc.few_shot if jc.few_shot is not None else getattr(backend, "prefers_few_shot", False)
    prompt = get_prompt(jc.prompt) if jc.prompt else reward_prompt_for(
        config.mode, few_shot=few_shot, guard=bool(config.injection_guard))
    cache = VerdictCache(jc.cache_path) if jc.cache else None
    # guard=False: the reward's guard runs once, in preparation (RewardSuite._prepare), not in the judge
    return Judge(backend, prompt, cache=cache, guard=False, max_error_rate=jc.max_error_rate,
                 concurrency=jc.concurrency, error_window=jc.error_window)


def build_reward_functions(config: RewardConfig | dict | None = None, *, asynchronous: bool = True,
                           judge=None, embedder: Embedder | None = None) -> tuple[list[Callable], list[float]]:
    """``(reward_funcs, reward_weights)`` for TRL's ``GRPOTrainer`` / ``GRPOConfig``.

    Every function has ``.stats`` (a shared :class:`RewardStats`) and ``.suite`` (the :class:`RewardSuite`).
    """
    if isinstance(config, dict):
        config = RewardConfig.from_dict(config)
    suite = RewardSuite(config, judge=judge, embedder=embedder)
    return suite.functions(asynchronous=asynchronous), suite.weights()


def score_completions(rows: Sequence[dict], config: RewardConfig | dict | None = None, *,
                      suite: RewardSuite | None = None, progress: Callable[[int], None] | None = None,
                      details: bool = False) -> list[dict]:
    """Score rows synchronously (see :meth:`RewardSuite.ascore_rows`); used by ``medix-r1 score``."""
    if suite is None:
        if isinstance(config, dict):
            config = RewardConfig.from_dict(config)
        suite = RewardSuite(config)

    async def run():
        try:
            return await suite.ascore_rows(rows, progress=progress, details=details)
        finally:
            await suite.aclose()

    return _run_sync(run())


# --------------------------------------------------------------------------------------------- helpers
def _named(name: str, fn: Callable, suite: RewardSuite) -> Callable:
    if asyncio.iscoroutinefunction(fn):
        async def reward(prompts=None, completions=None, **kwargs):
            return await fn(prompts, completions, **kwargs)
    else:
        def reward(prompts=None, completions=None, **kwargs):
            return fn(prompts, completions, **kwargs)
    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = f"medix-r1 reward component {name!r} (mode {suite.config.mode})."
    reward.stats = suite.stats
    reward.suite = suite
    return reward


def _ref_key(r: RowReference) -> tuple:
    return (r.answer, r.tag, r.question, r.answer_type, r.answer_letter,
            tuple(sorted(r.options.items())) if r.options else None)


def _rows_to_columns(rows: Sequence[dict]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {"completions": [r.get("completion") for r in rows]}
    for key in ("question", "answer", "solution", "reference", "modality", "answer_type", "options",
                "answer_letter"):
        if any(key in r for r in rows):
            cols[key] = [r.get(key) for r in rows]
    return cols


def _run_sync(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("this reward function was called inside a running event loop; use the async variant "
                       "(RewardSuite.aaccuracy_llm / ascore_rows) there")


__all__ = ["RewardStats", "RewardSuite", "RowReference", "build_judge", "build_reward_functions",
           "score_completions"]
