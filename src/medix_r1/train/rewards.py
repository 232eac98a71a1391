"""The reward side of a training run: the recipe's ``reward`` section -> TRL reward functions + weights.

The composite reward itself lives in :mod:`medix_r1.rewards`; this module only wires it into training:

- :func:`check_reward_config` validates the section (``RewardConfig``'s strict validation) without loading
  any model, for ``--dry-run``;
- :func:`build_rewards` returns a :class:`RewardSetup`: the reward functions and weights for
  ``GRPOTrainer``, a ``check()`` that fails at start when the judge cannot be reached (saying how to start
  one), count sources (judge calls, failures, cache hits, ``None`` counts per component...) that the
  trainer sums over every process at each scoring round, and the judge's :class:`~medix_r1.budget.ErrorBudget`,
  which the trainer checks on those global sums so that every process stops at the same round with the same
  message;
- :func:`rates_from_counts` turns summed counts into the logged metrics (rates are derived last, from sums);
- :func:`fill_failed_verdicts` is the group rule for completions without a verdict (see docs/rewards.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medix_r1.errors import ServiceError

log = logging.getLogger(__name__)


class JudgeUnavailableError(ServiceError, RuntimeError):
    """The reward's judge cannot answer at the start of training; the message says how to start one."""


@dataclass
class RewardSetup:
    """What the trainer needs from the reward: functions (TRL's contract), weights, checks, statistics."""

    funcs: list[Callable]
    weights: list[float] | None = None
    metric_sources: list[Callable[[], dict[str, float]]] = field(default_factory=list)
    checks: list[Callable[[], None]] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    """Each returns ``None`` or a coroutine; a coroutine is run on every event loop the reward ran in."""
    description: dict[str, Any] = field(default_factory=dict)
    count_sources: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    """Counts since the previous call (numbers, summed over processes; ``*last_error`` strings kept)."""
    budget: Any = None
    """The :class:`~medix_r1.budget.ErrorBudget` the trainer checks on the global judge counts."""
    loops: list[Any] = field(default_factory=list)
    """Event loops the reward functions ran in (TRL's async-reward loop); :meth:`close` closes their pools."""

    def check(self) -> None:
        for check in self.checks:
            check()

    def close(self) -> None:
        """Release the judge's connections in every event loop that used them.

        Connection pools belong to the loop they were opened in (TRL runs async rewards in its own
        background loop); closing them from a fresh ``asyncio.run`` loop would close nothing. Each closer's
        coroutine is run on every loop in :attr:`loops` that still runs, then once in a fresh loop.
        """
        import asyncio

        for close in self.closers:
            for loop in [*self.loops, None]:
                try:
                    result = close()
                    if not asyncio.iscoroutine(result):
                        break  # a plain function: called once
                    if loop is None:
                        asyncio.run(result)
                    elif loop.is_running() and not loop.is_closed():
                        asyncio.run_coroutine_threadsafe(result, loop).result(timeout=30)
                    else:
                        result.close()
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


def build_rewards(section: dict[str, Any]) -> RewardSetup:
    """Build the composite reward of a recipe's ``reward`` section (the embedder and a local judge load lazily).

    The judge's own error check is off: one process cannot see the others' failures, and a rank that
    raised alone would leave the others hanging in the next collective. The trainer checks the returned
    ``budget`` on the counts of every process instead.
    """
    from medix_r1.budget import ErrorBudget
    from medix_r1.rewards import build_reward_functions
    from medix_r1.rewards.suite import build_judge

    config = _reward_config(section)
    judge = build_judge(config) if "accuracy_llm" in config.components else None
    budget = None
    if judge is not None:
        judge.budget = None
        jc = config.judge
        budget = ErrorBudget(
            f"the reward's judge ({judge.describe()})", jc.max_error_rate, window=jc.error_window,
            fix=_judge_fix(jc) + "; or loosen the budget with --set reward.judge.max_error_rate=R or a larger "
                "--set reward.judge.error_window=N",
            resume="Then continue from the last checkpoint: the same command with --resume (verdicts already "
                   "given are kept in the verdict cache)")
    funcs, weights = build_reward_functions(config, judge=judge)
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

    def counts() -> dict[str, Any]:
        last_error = suite.stats.judge.last_error
        out: dict[str, Any] = suite.stats.counts(reset=True)
        if last_error:
            out["judge/last_error"] = last_error
        return out

    return RewardSetup(funcs=list(funcs), weights=list(weights), count_sources=[counts], budget=budget,
                       checks=[judge_check], closers=[suite.aclose], description=_describe_config(config))


def count_into(trainer: Any, counts: dict[str, float]) -> None:
    """Add counts (already summed over processes) to ``trainer._medix_counts``, logged and reset at each log."""
    from collections import Counter

    if getattr(trainer, "_medix_counts", None) is None:
        trainer._medix_counts = Counter()
    trainer._medix_counts.update({k: v for k, v in counts.items() if v})


def _judge_fix(jc) -> str:
    """How to repair the reward's judge, naming only recipe keys and ``train`` flags."""
    if jc.backend == "local":
        return (f"the in-process judge {jc.model_name} failed (run with -v for its errors), or use a judge server "
                "with --set reward.judge.backend=openai")
    return (f"is the judge server at {jc.url} running and serving {jc.model_name}? Start one with `vllm serve "
            f"{jc.model_name} --port 8000`, or point the recipe at yours with --set reward.judge.url=URL")


def sum_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add count dicts (one per process); string values (``*last_error``) keep the first process's."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            if isinstance(v, str):
                out.setdefault(k, v)
            else:
                out[k] = out.get(k, 0) + v
    return out


def rates_from_counts(c: dict[str, Any], n_processes: int = 1) -> dict[str, float]:
    """The logged metrics of counts summed over processes: the counts themselves, then rates of those sums.

    ``judge/error_rate`` is failed judge model calls / judge model calls (the error budget's measure);
    ``judge/cache_hit_rate`` is cache hits / verdict lookups; ``reward/<c>/none_frac`` the share of
    completions without a value. Timings are per process (the sum divided by ``n_processes``).
    """
    out: dict[str, float] = {}
    for k, v in c.items():
        if isinstance(v, str):
            continue
        if k.startswith(("judge/", "reward/shortcut/", "dynamic_sampling/")) and not k.endswith("_s"):
            out[k] = v
        elif k.startswith("time/"):
            out[k] = v / max(n_processes, 1)
        elif k.startswith("reward/") and k.endswith("/none"):
            comp = k[len("reward/"):-len("/none")]
            n = c.get(f"reward/{comp}/n", 0) + v
            if n:
                out[f"reward/{comp}/none_frac"] = v / n
    calls = c.get("judge/model_calls", 0)
    if "judge/requests" in c:
        out["judge/error_rate"] = c.get("judge/model_failures", 0) / calls if calls else 0.0
        out["judge/cache_hit_rate"] = c.get("judge/cache_hits", 0) / c["judge/requests"] if c["judge/requests"] \
            else 0.0
        out["judge/mean_latency_s"] = c.get("judge/latency_total_s", 0.0) / calls if calls else 0.0
    out.pop("judge/latency_total_s", None)
    return out


def fill_failed_verdicts(rewards_per_func, num_generations: int):
    """The group rule for a completion whose component has no value while others in its group have one.

    Within each group (``num_generations`` consecutive rows) and each component, a ``NaN`` next to real
    values is a failed verdict (a component that does not apply, such as the modality of a text-only
    question, is ``NaN`` for the whole group). It is filled with the mean of that component over the
    group's other completions, so it adds nothing to the group's spread on that component and cannot push
    the other completions up or down; the rest of its reward (format, modality...) still counts.

    Returns ``(filled, mask)``: the filled copy and a boolean mask of the filled cells.

    >>> import torch
    >>> r = torch.tensor([[1.0], [1.0], [1.0], [float("nan")]])
    >>> fill_failed_verdicts(r, 4)[0].view(-1).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    import torch

    rows, k = rewards_per_func.shape
    if rows % num_generations:
        raise ValueError(f"{rows} rewards do not split into groups of {num_generations}")
    grouped = rewards_per_func.view(-1, num_generations, k)
    nan = torch.isnan(grouped)
    partial = nan.any(dim=1, keepdim=True) & ~nan.all(dim=1, keepdim=True)
    mask = nan & partial
    if not bool(mask.any()):
        return rewards_per_func, mask.view(rows, k)
    mean = torch.nanmean(grouped, dim=1, keepdim=True).expand_as(grouped)
    filled = torch.where(mask, mean, grouped)
    return filled.view(rows, k), mask.view(rows, k)
