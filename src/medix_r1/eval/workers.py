"""What the eval phases share to run: a bounded worker pool, a progress bar, and the phases' error budget."""

from __future__ import annotations

import asyncio

from medix_r1.aio import gather_or_cancel
from medix_r1.eval.rundir import ErrorBudgetExceeded


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc=desc, unit="sample", dynamic_ncols=True, disable=not enabled,
               mininterval=0.5, smoothing=0.1)
    bar.set_postfix(errors=0, refresh=False)  # done/total, rate and ETA come with tqdm; errors so far here
    return bar


async def run_workers(n_workers: int, items: list, work) -> None:
    """Run ``work(item)`` over ``items`` with ``n_workers`` concurrent workers; the first exception cancels
    the rest and propagates (requests in flight are lost, finished ones are already on disk)."""
    it = iter(items)

    async def worker() -> None:
        for item in it:  # a shared iterator: each item is taken by exactly one worker
            await work(item)

    await gather_or_cancel([asyncio.ensure_future(worker()) for _ in range(max(1, min(n_workers, len(items))))])


class PhaseBudget:
    """Stop a phase when the share of failed requests goes over ``max_error_rate`` (after a minimum count),
    or when every request of the phase failed."""

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
                + (f" (budget {self.max_error_rate:.0%})" if over else "") + f". Last error: {self.last_error}",
                fix=f"{self.fix}. Finished samples are saved: rerun the same command to resume (raise "
                    "--max-error-rate to tolerate more failures)")


__all__ = ["PhaseBudget", "progress_bar", "run_workers"]
