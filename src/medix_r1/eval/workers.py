"""What the eval phases share to run: a bounded worker pool and a progress bar (the error budget is the
project's one :class:`medix_r1.budget.ErrorBudget`)."""

from __future__ import annotations

import asyncio

from medix_r1.aio import gather_or_cancel


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


__all__ = ["progress_bar", "run_workers"]
