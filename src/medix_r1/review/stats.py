"""Win rates with a 95% Wilson interval and Cohen's kappa for blind A/B votes. Pure functions, no I/O.

A vote's ``outcome`` is stated in terms of the two runs, not the on-screen letters (which are shuffled per
reviewer): ``"x"`` (the review's first run won), ``"y"``, ``"tie"`` or ``"both_wrong"``.

How outcomes enter a run's win rate (docs/app.md says the same):

- a win counts 1, a loss 0, a tie one half (both answers judged equally good);
- "both wrong" is left out of the win rate (neither answer earned a preference) and reported as its own count;
- the interval is the Wilson score interval at 95% (z = 1.96) on ``n = wins + losses + ties`` with the
  tie-adjusted proportion; it stays inside [0, 1] and is sensible for the small samples a doctor study has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OUTCOMES = ("x", "y", "tie", "both_wrong")
Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion ``successes / n`` (``None`` when ``n`` is 0).

    >>> lo, hi = wilson_interval(8, 10)
    >>> round(lo, 4), round(hi, 4)
    (0.4902, 0.9433)
    """
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class WinRate:
    """The first run's record against the second over some votes (the second's is the mirror image)."""

    wins: int
    losses: int
    ties: int
    both_wrong: int

    @property
    def n(self) -> int:
        """Votes that enter the win rate (both-wrong votes do not)."""
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float | None:
        return (self.wins + 0.5 * self.ties) / self.n if self.n else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson_interval(self.wins + 0.5 * self.ties, self.n)

    def mirrored(self) -> WinRate:
        return WinRate(self.losses, self.wins, self.ties, self.both_wrong)


def win_rate(outcomes: Iterable[str]) -> WinRate:
    """Count outcomes (see the module doc) into the first run's :class:`WinRate`."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        if o not in counts:
            raise ValueError(f"unknown vote outcome {o!r}; expected one of {', '.join(OUTCOMES)}")
        counts[o] += 1
    return WinRate(counts["x"], counts["y"], counts["tie"], counts["both_wrong"])


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (``None`` when undefined: no items, or
    both raters used one and the same label throughout, so chance agreement is 1).

    >>> cohen_kappa(["x", "x", "y", "y"], ["x", "y", "y", "y"])
    0.5
    """
    if len(first) != len(second):
        raise ValueError("cohen_kappa needs two label lists of the same length")
    n = len(first)
    if n == 0:
        return None
    labels = sorted(set(first) | set(second))
    observed = sum(a == b for a, b in zip(first, second)) / n
    expected = sum((first.count(c) / n) * (second.count(c) / n) for c in labels)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


__all__ = ["OUTCOMES", "Z95", "WinRate", "cohen_kappa", "wilson_interval", "win_rate"]
