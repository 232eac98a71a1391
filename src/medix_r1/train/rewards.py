"""The reward side of a training run: the recipe's ``reward`` section -> TRL reward functions + weights.

The composite reward itself lives in :mod:`medix_r1.rewards`; this module only wires it into training:

- :func:`check_reward_config` validates the section (``RewardConfig``'s strict validation) without loading
  any model, for ``--dry-run``;
- :func:`build_rewards` returns a :class:`RewardSetup`: the reward functions and weights for
  ``GRPOTrainer``, a ``check()`` that fails at start when the judge cannot be reached (saying how to start
  one), and metric sources that put the judge's error rate, cache hit rate, latency and injection count
  into every logged step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class JudgeUnavailableError(RuntimeError):
    """The reward's judge cannot answer at the start of training; the message says how to start one."""


@dataclass
class RewardSetup:
    """What the trainer needs from the reward: functions (TRL's contract), weights, checks, statistics."""

    funcs: list[Callable]
    weights: list[float] | None = None
    metric_sources: list[Callable[[], dict[str, float]]] = field(default_factory=list)
    checks: list[Callable[[], None]] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        for check in self.checks:
            check()

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception as exc:  # closing must not hide the training outcome
                log.debug("reward close failed: %s", exc)

    def describe(self) -> dict[str, Any]:
        return dict(self.description)


def simple_reward_setup(funcs: list[Callable], weights: list[float] | None = None) -> RewardSetup:
    """Plain reward functions (tests, benchmarks): no judge, no statistics."""
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    return RewardSetup(funcs=list(funcs), weights=weights,
                       description={"functions": names, "weights": weights})


def _reward_config(section: dict[str, Any]):
    from medix_r1.rewards import RewardConfig

    if hasattr(RewardConfig, "from_dict"):
        return RewardConfig.from_dict(section or {})
    return RewardConfig(**(section or {}))


def check_reward_config(section: dict[str, Any]) -> dict[str, Any]:
    """Validate the recipe's ``reward`` section; returns its resolved form (with ``weights_list``)."""
    from medix_r1.train.recipe import RecipeError

    try:
        config = _reward_config(section)
    except (ValueError, TypeError, KeyError) as exc:
        raise RecipeError(f"reward: {exc}") from exc
    return _describe_config(config)


def _describe_config(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        d = config.to_dict()
    else:
        import dataclasses

        d = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    weights = getattr(config, "component_weights", None)
    if callable(weights):
        weights = weights()
    if isinstance(weights, dict):
        d["weights_list"] = list(weights.values())
    return d


def build_rewards(section: dict[str, Any]) -> RewardSetup:
    """Build the composite reward of a recipe's ``reward`` section."""
    from medix_r1.rewards import build_reward_functions

    config = _reward_config(section)
    funcs, weights = build_reward_functions(config)
    setup = RewardSetup(funcs=list(funcs), weights=list(weights) if weights is not None else None,
                        description=_describe_config(config))
    return setup
