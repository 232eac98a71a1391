"""One error budget for every service the project calls: the reward's judge, eval's generator and judge.

:class:`ErrorBudget` watches the share of failed calls among the **most recent** ``window`` calls, not over
the whole run. A lifetime rate hides an outage behind the good calls before it: after 2,000 good verdicts,
200 failures in a row are only 9% of the lifetime but 100% of the recent calls. Only real calls to the
service belong in it; answers that cost no call (a cache hit, an in-batch duplicate, a guarded or
rule-decided answer) are left out, or a warm cache would dilute an outage as well.

Two ways to feed it:

- one outcome at a time, as the calls finish (``budget.add(1, failed=1)``), the eval phases and ``score``;
- blocks of counts (``budget.add(calls=64, failures=3)``), e.g. one training step's judge calls summed over
  every process. Within a block the order of the calls is unknown, so when the window's oldest block
  only partly fits, it keeps its share of failures in proportion.

:meth:`ErrorBudget.check` raises :class:`medix_r1.errors.BudgetExceeded` (exit 3) when more than
``max_error_rate`` of the window failed, once at least ``min_calls`` calls are in it (one early timeout does
not stop a run). ``check(final=True)`` also raises when every call so far failed, however few there were.
The message says what failed (counts, the kinds of failure, the last error) and how to fix and resume::

    budget = ErrorBudget("the reward's judge", max_error_rate=0.1, window=200,
                         fix="start the judge server", resume="rerun with --resume")
    budget.add(1, failed=0)
    budget.add(calls=64, failures=64, kinds={"timeout": 64}, error="no reply within 60s")
    budget.check()          # raises BudgetExceeded: 64 of the last 65 calls failed ...
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping

from medix_r1.errors import BudgetExceeded

DEFAULT_WINDOW = 200
DEFAULT_MIN_CALLS = 20


class ErrorBudget:
    """Stop when more than ``max_error_rate`` of the last ``window`` real calls failed (see module doc).

    ``max_error_rate=None`` never stops on the rate (``check(final=True)`` still stops when every call
    failed). ``what`` names the service in the message ("the reward's judge Qwen/... at http://..."), ``fix``
    says how to repair it and ``resume`` how to continue without losing work. ``error_type`` is the
    :class:`BudgetExceeded` subclass to raise (e.g. the judge's ``JudgeErrorBudgetExceeded``).
    """

    def __init__(self, what: str, max_error_rate: float | None = 0.1, *, window: int = DEFAULT_WINDOW,
                 min_calls: int = DEFAULT_MIN_CALLS, fix: str = "", resume: str = "",
                 error_type: type[BudgetExceeded] = BudgetExceeded):
        if max_error_rate is not None and not 0.0 <= max_error_rate <= 1.0:
            raise ValueError(f"max_error_rate must be between 0 and 1 (or None), got {max_error_rate}")
        if int(window) < 1:
            raise ValueError(f"the error budget's window must be at least 1 call, got {window}")
        if int(min_calls) < 1:
            raise ValueError(f"min_calls must be at least 1, got {min_calls}")
        self.what = what
        self.max_error_rate = max_error_rate
        self.window = int(window)
        self.min_calls = min(int(min_calls), self.window)
        self.fix = fix
        self.resume = resume
        self.error_type = error_type
        self.total_calls = 0
        self.total_failures = 0
        self.kinds: Counter = Counter()
        """Failures by kind since the start (e.g. ``timeout``, ``error``, ``unparseable``)."""
        self.last_error: str | None = None
        self._blocks: deque[list[int]] = deque()  # [calls, failures], oldest first
        self._calls = 0
        self._failures = 0
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------- feeding
    def record(self, calls: int = 1, failures: int = 0, *, error: str | None = None,
               kinds: Mapping[str, int] | None = None) -> None:
        """Add ``calls`` finished calls of which ``failures`` failed (no check)."""
        calls, failures = int(calls), int(failures)
        if calls < 0 or not 0 <= failures <= calls:
            raise ValueError(f"an error budget needs 0 <= failures <= calls, got {failures} of {calls}")
        if calls == 0:
            return
        with self._lock:
            self.total_calls += calls
            self.total_failures += failures
            if kinds:
                self.kinds.update({k: int(n) for k, n in kinds.items() if n})
            if error:
                self.last_error = error
            self._blocks.append([calls, failures])
            self._calls += calls
            self._failures += failures
            excess = self._calls - self.window
            while excess > 0:
                oldest = self._blocks[0]
                if oldest[0] <= excess:
                    self._blocks.popleft()
                    self._calls -= oldest[0]
                    self._failures -= oldest[1]
                    excess -= oldest[0]
                    continue
                keep = oldest[0] - excess
                kept_failures = round(oldest[1] * keep / oldest[0])
                self._calls -= excess
                self._failures -= oldest[1] - kept_failures
                oldest[0], oldest[1] = keep, kept_failures
                excess = 0

    def add(self, calls: int = 1, failures: int = 0, *, error: str | None = None,
            kinds: Mapping[str, int] | None = None) -> None:
        """:meth:`record` then :meth:`check`."""
        self.record(calls, failures, error=error, kinds=kinds)
        self.check()

    # ----------------------------------------------------------------------------------------- reading
    @property
    def calls(self) -> int:
        """Calls in the window (at most ``window``)."""
        return self._calls

    @property
    def failures(self) -> int:
        """Failed calls in the window."""
        return self._failures

    @property
    def rate(self) -> float:
        """The window's failure rate (0 when empty)."""
        return self._failures / self._calls if self._calls else 0.0

    def over(self) -> bool:
        """True when the window holds at least ``min_calls`` calls and its failure rate is over the budget."""
        return (self.max_error_rate is not None and self._calls >= self.min_calls
                and self.rate > self.max_error_rate)

    def all_failed(self) -> bool:
        return self.total_calls > 0 and self.total_failures == self.total_calls

    def check(self, final: bool = False) -> None:
        """Raise :class:`BudgetExceeded` when over the budget; with ``final``, also when every call failed."""
        if self.over() or (final and self.all_failed()):
            raise self.exceeded()

    def exceeded(self) -> BudgetExceeded:
        """The error to raise now (its message is built from the current counts)."""
        with self._lock:
            if self.over():
                head = (f"{self._failures} of the last {self._calls} calls failed ({self.rate:.1%}; the budget "
                        f"is {self.max_error_rate:.1%} of the last {self.window} calls)")
            else:
                head = f"all {self.total_calls} calls failed"
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
            what = (f"{self.what}: {head}; {self.total_failures} of {self.total_calls} calls failed since the "
                    f"start" + (f" ({kinds})" if kinds else "") + f". Last error: {self.last_error or 'unknown'}")
            fix = ". ".join(p.rstrip(". ") for p in (self.fix, self.resume) if p) or None
        return self.error_type(what, fix=fix)

    def as_dict(self) -> dict:
        return {"window_calls": self._calls, "window_failures": self._failures, "window_error_rate": self.rate,
                "calls": self.total_calls, "failures": self.total_failures, "kinds": dict(self.kinds),
                "max_error_rate": self.max_error_rate, "window": self.window}

    def __repr__(self) -> str:
        return (f"ErrorBudget({self.what!r}, max_error_rate={self.max_error_rate}, window={self.window}, "
                f"{self._failures}/{self._calls} in window)")


__all__ = ["DEFAULT_MIN_CALLS", "DEFAULT_WINDOW", "ErrorBudget"]
