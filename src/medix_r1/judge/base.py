"""The judge's shared types: what is asked (:class:`JudgeRequest`), what comes back (:class:`Verdict`),
the chat backend interface (:class:`ChatBackend`) and running counters (:class:`JudgeStats`).

A failure is never a verdict: a timeout, an HTTP error, a refused connection or an unparseable reply gives
``Verdict(score=None, status=...)``. Rewards turn that into ``None`` (TRL leaves it out of the mean) and
evaluation counts it apart from accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from medix_r1.clients.base import BackendError, ChatBackend  # noqa: F401  (re-exported: their old home)
from medix_r1.errors import BudgetExceeded

# ok: parsed verdict · exact: decided without a model (exact match, option letter) · injection: the answer
# addresses the grader (scored 0 by policy) · unparseable: the reply was not a verdict · timeout / error: no reply
VerdictStatus = Literal["ok", "exact", "injection", "unparseable", "timeout", "error"]
NO_VERDICT_STATUSES: frozenset[str] = frozenset({"unparseable", "timeout", "error"})


@dataclass(frozen=True)
class JudgeRequest:
    """One judgement to make. ``question`` may be ``None`` (paper mode: the judge sees no question)."""

    reference: str
    prediction: str
    question: str | None = None
    kind: Literal["binary", "rubric"] = "binary"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one judgement. ``score`` is 1.0/0.0 (binary) or in [0, 1] (rubric), or ``None``."""

    score: float | None
    status: VerdictStatus
    raw: str | None = None
    """The judge's raw reply, kept next to the verdict (None when no model was asked)."""
    error: str | None = None
    cached: bool = False
    latency_s: float = 0.0

    @property
    def has_verdict(self) -> bool:
        return self.status not in NO_VERDICT_STATUSES


class JudgeErrorBudgetExceeded(BudgetExceeded):
    """Too many of the judge's recent model calls failed (exit 3); the message says how many and how to fix
    or loosen it. Raised by :class:`medix_r1.budget.ErrorBudget`."""


@dataclass
class JudgeStats:
    """Counters for one judge; rewards and eval log them (error rate, cache hit rate, latency)."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    latency_total_s: float = 0.0
    model_calls: int = 0
    model_failures: int = 0
    """Model calls that gave no verdict (the error budget's numerator; its denominator is ``model_calls``)."""
    deduplicated: int = 0
    """Requests answered by an identical request in the same batch (no model call, no cache lookup)."""
    last_error: str | None = None
    """The most recent failure's message, for error reports."""

    def add(self, v: Verdict, *, duplicate: bool = False) -> None:
        self.requests += 1
        self.by_status[v.status] = self.by_status.get(v.status, 0) + 1
        if v.error:
            self.last_error = v.error
        if duplicate:
            self.deduplicated += 1
        elif v.cached:
            self.cache_hits += 1
        elif v.status not in ("exact", "injection"):
            self.model_calls += 1
            self.model_failures += 0 if v.has_verdict else 1
            self.latency_total_s += v.latency_s

    def reset(self) -> None:
        """Zero every counter (e.g. at the start of a training step)."""
        self.requests = self.cache_hits = self.model_calls = self.model_failures = self.deduplicated = 0
        self.latency_total_s = 0.0
        self.by_status = {}
        self.last_error = None

    def merge(self, other: JudgeStats) -> None:
        """Add another judge's counters to these."""
        self.requests += other.requests
        self.cache_hits += other.cache_hits
        self.model_calls += other.model_calls
        self.model_failures += other.model_failures
        self.deduplicated += other.deduplicated
        self.latency_total_s += other.latency_total_s
        for k, n in other.by_status.items():
            self.by_status[k] = self.by_status.get(k, 0) + n
        self.last_error = other.last_error or self.last_error

    @property
    def injections(self) -> int:
        return self.by_status.get("injection", 0)

    @property
    def failures(self) -> int:
        return sum(self.by_status.get(s, 0) for s in NO_VERDICT_STATUSES)

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0

    @property
    def mean_latency_s(self) -> float:
        return self.latency_total_s / self.model_calls if self.model_calls else 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "by_status": dict(self.by_status), "error_rate": self.error_rate,
                "cache_hit_rate": self.cache_hit_rate, "mean_latency_s": self.mean_latency_s,
                "model_calls": self.model_calls, "model_failures": self.model_failures, "cache_hits": self.cache_hits,
                "deduplicated": self.deduplicated, "injections": self.injections}
