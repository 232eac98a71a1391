"""The composite reward's total, defined once: ``medix-r1 score`` and the trainer both use
:func:`composite_total`.

The total is the weighted mean of the components that apply to the row::

    total = sum(w[c] * score[c] for c in applying) / sum(w[c] for c in applying)

- ``applying`` is the configured components, less ``modality`` when the row is text-only (the modality
  component is ``None`` exactly then: there is no tag to match). With the paper's weights (summing to 1) an
  image row's total is the plain weighted sum; a text-only row is divided by 0.955, so a perfect answer
  scores 1.0 on both kinds of row, and thresholds such as dynamic sampling's ``min_mean`` / ``max_mean``
  mean the same thing for both, and under any custom weights.
- Any other component that is ``None`` (the judge gave no verdict, the row has no reference) makes the
  total ``None``: a missing value is never replaced by 0 here. What the trainer does with such a row
  (its group rule) is decided in :mod:`medix_r1.train.rewards`, not here.

For the trainer: call it per completion with that completion's component values (a mapping, or the TRL
reward columns row by row) and the same weights that go to ``GRPOConfig.reward_weights``::

    from medix_r1.rewards.total import composite_total
    totals = [composite_total({c: cols[c][i] for c in cols}, config.weights, config.components)
              for i in range(n)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medix_r1.rewards.config import COMPONENTS

NONE_MEANS_NOT_APPLICABLE = frozenset({"modality"})
"""Components whose ``None`` means "does not apply to this row" (rather than "no value")."""


def applying_components(scores: Mapping[str, float | None],
                        components: Sequence[str] = COMPONENTS) -> list[str]:
    """The components that count towards this row's total."""
    return [c for c in components if not (c in NONE_MEANS_NOT_APPLICABLE and scores.get(c) is None)]


def composite_total(scores: Mapping[str, float | None], weights: Mapping[str, float],
                    components: Sequence[str] = COMPONENTS) -> float | None:
    """The row's total: the weighted mean over the components that apply (module docstring).

    >>> w = {"accuracy_llm": 0.5175, "accuracy_embed": 0.3375, "modality": 0.045, "format": 0.10}
    >>> composite_total({"accuracy_llm": 1, "accuracy_embed": 1, "modality": None, "format": 1}, w)
    1.0
    >>> round(composite_total({"accuracy_llm": 1, "accuracy_embed": 0, "modality": 1, "format": 1}, w), 4)
    0.6625
    >>> composite_total({"accuracy_llm": None, "accuracy_embed": 1, "modality": 1, "format": 1}, w) is None
    True
    """
    used = applying_components(scores, components)
    if not used or any(scores.get(c) is None for c in used):
        return None
    weight = sum(weights[c] for c in used)
    if weight <= 0:
        return None
    return sum(weights[c] * float(scores[c]) for c in used) / weight


__all__ = ["NONE_MEANS_NOT_APPLICABLE", "applying_components", "composite_total"]
