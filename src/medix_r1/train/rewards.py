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
            except Exception as exc:  # noqa: BLE001 - closing must not hide the training outcome
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

    return RewardConfig.from_dict(section or {})


def check_reward_config(section: dict[str, Any]) -> dict[str, Any]:
    """Validate the recipe's ``reward`` section (no model loaded); returns its resolved form."""
    from medix_r1.train.recipe import RecipeError

    try:
        config = _reward_config(section)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"reward: {exc}") from exc
    return _describe_config(config)


def _describe_config(config: Any) -> dict[str, Any]:
    d = config.to_dict()
    d["weights_list"] = config.weight_list()
    return d


# Keys of ``RewardStats.snapshot()`` worth logging per step; its per-component means duplicate TRL's own
# ``rewards/<component>/mean`` (which cover exactly the scored batch) and are left out.
def _stats_keys(key: str) -> bool:
    return key.startswith(("judge/", "time/", "reward/shortcut/")) or key.endswith("/none_frac")


def build_rewards(section: dict[str, Any]) -> RewardSetup:
    """Build the composite reward of a recipe's ``reward`` section (judge and embedder load lazily)."""
    from medix_r1.rewards import build_reward_functions

    config = _reward_config(section)
    funcs, weights = build_reward_functions(config)
    suite = funcs[0].suite

    def judge_check() -> None:
        try:
            suite.check()
        except Exception as exc:
            from medix_r1.judge.base import BackendError

            if isinstance(exc, (BackendError, OSError, TimeoutError)):
                judge = config.judge
                # The backend's generic hint names score/eval flags; train's own hint follows instead.
                how = getattr(getattr(suite.judge, "backend", None), "how_to_fix", None)
                detail = str(exc).replace(how(), "").strip().rstrip(".") if callable(how) else str(exc)
                raise JudgeUnavailableError(
                    f"the reward's judge cannot answer ({detail}). Judge: {judge.backend} {judge.model_name} "
                    f"at {judge.url if judge.backend == 'openai' else 'in-process'}. Start one with "
                    f"`vllm serve {judge.model_name} --host 0.0.0.0 --port 8000` on a GPU (see "
                    "docs/training.md for multi-node layouts), point reward.judge.url at it, or use the "
                    "embedded judge with reward.judge.backend: local (weak; for trying things out)") from exc
            raise

    def stats() -> dict[str, float]:
        return {k: v for k, v in suite.stats.snapshot(reset=True).items() if _stats_keys(k)}

    def close() -> None:
        import asyncio

        asyncio.run(suite.aclose())

    return RewardSetup(funcs=list(funcs), weights=list(weights), metric_sources=[stats],
                       checks=[judge_check], closers=[close], description=_describe_config(config))
