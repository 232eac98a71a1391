"""Small asyncio helpers shared by the judge and evaluation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


async def gather_or_cancel(tasks: Sequence[asyncio.Future]) -> list:
    """``asyncio.gather`` that, when one task fails (or the caller is cancelled), cancels the others and waits
    for them before re-raising, so no request keeps running behind an error such as an exhausted budget."""
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
