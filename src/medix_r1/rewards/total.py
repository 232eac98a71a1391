"""The total reward of one completion, defined once: the weighted mean of the components that apply.

A component that does not apply to a row has no value (``None`` / ``NaN``): the modality of a text-only
question, every reference-based component of a row without a reference, an accuracy component whose judge
gave no verdict. The total divides by the weights of the components that *do* apply, so it stays on the
same 0..1 scale for a text-only row, an image row and any custom weights (with the paper's weights, which
sum to 1, an image row's total is the plain weighted sum). A row where no component applies (or only
components of weight 0) has no total.

Used by ``medix-r1 score`` (the ``total`` column) and by DAPO's dynamic sampling (``min_mean`` /
``max_mean`` compare group means of this total). TRL's own advantage uses its weighted ``nansum``; within a
group the components that apply are the same for every completion, so both give the same ordering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def total_reward(values: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """``sum(w * v) / sum(w)`` over the components with a value; ``None`` when none (of non-zero weight) has one.

    >>> total_reward([1.0, None, 0.0], [0.5, 0.3, 0.2])   # 0.5 / (0.5 + 0.2)
    0.7142857142857143
    >>> total_reward([None, None], [1.0, 1.0]) is None
    True
    """
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} component values for {len(weights)} weights")
    num = den = 0.0
    for v, w in zip(values, weights, strict=True):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        num += w * v
        den += w
    return num / den if den > 0 else None


def total_rewards(rewards_per_func, weights):
    """:func:`total_reward` for every row of a ``(rows, components)`` tensor (``NaN`` = no value).

    Returns a ``(rows,)`` float tensor, ``NaN`` where :func:`total_reward` is ``None``.
    """
    import torch

    r = rewards_per_func.detach().float()
    w = torch.as_tensor(weights, dtype=torch.float32, device=r.device).unsqueeze(0).expand_as(r)
    has = ~torch.isnan(r)
    num = torch.where(has, r * w, torch.zeros_like(r)).sum(dim=1)
    den = torch.where(has, w, torch.zeros_like(w)).sum(dim=1)
    out = num / den.clamp(min=1e-12)
    out[den <= 0] = torch.nan
    return out


__all__ = ["total_reward", "total_rewards"]
