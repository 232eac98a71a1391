"""DAPO's dynamic sampling, as a small extension of TRL's ``GRPOTrainer`` (TRL 1.16 has none).

A group (the ``num_generations`` completions of one prompt) whose rewards are all equal has zero advantage
everywhere, so it adds no policy gradient; a group that is (almost) always right or always wrong carries
almost none. DAPO drops such groups and refills the batch with fresh prompts, so every update sees groups
that discriminate. Here a group is dropped when its mean total reward (the weighted mean of the components
that apply, :func:`medix_r1.rewards.total.composite_total`) is ``<= min_mean`` or ``>= max_mean``
(0.01 / 0.99 as in the paper's recipes, docs/background.md §4), or when all its rewards are equal (``drop_equal``).

Where it hooks into TRL (no fork): :class:`DynamicSamplingMixin` overrides
``GRPOTrainer._generate_and_score_completions``, the one method that turns a generation batch of prompts
into a scored, padded tensor batch. In training it

1. calls TRL's method on the batch it was given (generation, rewards, advantages, logprobs: all TRL's code);
2. reads the rewards TRL just computed (captured by overriding ``_calculate_rewards``) and keeps the rows of
   the groups that pass the filter;
3. while the local batch is not full and fewer than ``max_tries`` rounds ran, draws fresh prompts
   (a separate, seeded shuffle of the training set; one disjoint slice per process) and repeats;
4. concatenates the kept rows, re-padding prompt tensors on the left and completion tensors on the right,
   recomputes ``num_items_in_batch`` and hands the batch back to TRL, which splits and buffers it as usual.

If the batch is still not full after ``max_tries`` rounds, ``on_exhausted="fill"`` tops it up with dropped
groups (they have little or no advantage, so they barely move the policy; a warning is logged) and
``on_exhausted="error"`` raises :class:`DynamicSamplingExhausted`.

Logged metrics, summed over every process since the previous log: ``dynamic_sampling/groups_seen``,
``dynamic_sampling/groups_dropped``, ``dynamic_sampling/groups_filled_with_dropped``, and their ratio
``dynamic_sampling/frac_groups_dropped`` (dropped / generated groups, all rounds); plus
``dynamic_sampling/rounds`` (the same on every process). TRL's reward metrics cover
every generated group, dropped ones included (what the policy actually produced).

Limits (documented, checked at start): the training set must be map-style (not streaming); each process's
generation batch must hold whole groups (``per_device_train_batch_size * steps_per_generation`` divisible by
``num_generations``); with ``scale_rewards="batch"`` the batch std is per round. Completions of dropped
groups also paid for their logprob passes; that is the price of filtering after TRL's scoring, not before.
In multi-process runs every process keeps generating until all processes are full, because TRL gathers
rewards across processes at each round.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from medix_r1.errors import UsageError
from medix_r1.train.rewards import count_into

log = logging.getLogger(__name__)

# Tensors padded on the left (prompts are left-padded by TRL); every other per-row tensor is padded on the right.
_LEFT_PADDED = frozenset({"prompt_ids", "prompt_mask"})
# Tensors whose first ``P`` columns belong to the prompt (left-padded) and the rest to the completion.
_PROMPT_THEN_COMPLETION = frozenset({"token_type_ids", "mm_token_type_ids"})
# Scalars TRL computes over the whole batch; recomputed after merging.
_BATCH_SCALARS = frozenset({"num_items_in_batch"})


class DynamicSamplingExhausted(UsageError, RuntimeError):
    """``max_tries`` rounds did not yield enough informative groups and ``on_exhausted="error"``."""


@dataclass(frozen=True)
class DynamicSamplingConfig:
    min_mean: float = 0.01
    max_mean: float = 0.99
    drop_equal: bool = True
    max_tries: int = 20
    on_exhausted: str = "fill"

    def __post_init__(self) -> None:
        if not self.min_mean < self.max_mean:
            raise ValueError(f"dynamic sampling: min_mean ({self.min_mean}) must be below max_mean ({self.max_mean})")
        if self.max_tries < 1:
            raise ValueError("dynamic sampling: max_tries must be at least 1")
        if self.on_exhausted not in ("fill", "error"):
            raise ValueError(f"dynamic sampling: on_exhausted must be 'fill' or 'error', got {self.on_exhausted!r}")


def check_batch_layout(per_device_train_batch_size: int, steps_per_generation: int, num_generations: int) -> None:
    """Dynamic sampling keeps or drops whole groups, so each process's generation batch must hold whole groups."""
    local = per_device_train_batch_size * steps_per_generation
    if local % num_generations:
        raise ValueError(
            f"dynamic sampling keeps or drops whole groups, so each process's generation batch "
            f"(per_device_train_batch_size x steps_per_generation = {per_device_train_batch_size} x "
            f"{steps_per_generation} = {local}) must be a multiple of num_generations ({num_generations}); "
            "adjust trainer.per_device_train_batch_size or trainer.steps_per_generation")


# --------------------------------------------------------------------------------------------- the filter
def group_keep_mask(rewards: torch.Tensor, num_generations: int, config: DynamicSamplingConfig) -> torch.Tensor:
    """Which groups to keep, from the total reward of each completion (``NaN`` = could not be scored).

    ``rewards`` holds consecutive groups of ``num_generations`` completions. A group is dropped when its mean
    (over scored completions) is ``<= min_mean`` or ``>= max_mean``, when ``drop_equal`` and all its scored
    rewards are equal, or when none of its completions could be scored.

    >>> cfg = DynamicSamplingConfig()
    >>> group_keep_mask(torch.tensor([0., 0., 1., 0.5, 1., 1.]), 2, cfg).tolist()
    [False, True, False]
    """
    if rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {num_generations}")
    grouped = rewards.detach().float().view(-1, num_generations)
    scored = ~torch.isnan(grouped)
    n_scored = scored.sum(dim=1)
    filled = torch.where(scored, grouped, torch.zeros_like(grouped))
    mean = filled.sum(dim=1) / n_scored.clamp(min=1)
    keep = (n_scored > 0) & (mean > config.min_mean) & (mean < config.max_mean)
    if config.drop_equal:
        hi = torch.where(scored, grouped, torch.full_like(grouped, -math.inf)).max(dim=1).values
        lo = torch.where(scored, grouped, torch.full_like(grouped, math.inf)).min(dim=1).values
        keep &= ~torch.isclose(hi, lo) & (n_scored > 1)
    return keep


# --------------------------------------------------------------------------------------------- batch surgery
def _batch_size(batch: dict[str, Any]) -> int:
    for key in ("prompt_ids", "completion_ids"):
        if key in batch:
            return batch[key].shape[0]
    raise ValueError("scored batch has neither prompt_ids nor completion_ids")


def select_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """Keep ``rows`` of a scored batch in *split* form (``trl.trainer.utils.split_pixel_values_by_grid``).

    Every per-row value (tensor with one row per completion, or a list with one item per completion) is
    indexed; batch-wide scalars are left out (the caller recomputes them).
    """
    n = _batch_size(batch)
    index = torch.tensor(rows, dtype=torch.long)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key in _BATCH_SCALARS or value is None:
            continue
        if isinstance(value, torch.Tensor):
            if value.ndim == 0:
                continue
            if value.shape[0] != n:
                raise ValueError(f"dynamic sampling cannot split {key!r} of shape {tuple(value.shape)} by row "
                                 f"(batch has {n} rows); this model's inputs are not supported with it yet")
            out[key] = value.index_select(0, index.to(value.device))
        elif isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"dynamic sampling cannot split {key!r} ({len(value)} items for {n} rows)")
            out[key] = [value[i] for i in rows]
        else:
            raise TypeError(f"dynamic sampling: unexpected batch value {key!r} of type {type(value).__name__}")
    return out


def _pad_to(t: torch.Tensor, shape: tuple[int, ...], value: float, left: bool) -> torch.Tensor:
    if tuple(t.shape[1:]) == tuple(shape):
        return t
    pad: list[int] = []
    for dim in range(t.ndim - 1, 0, -1):  # F.pad lists the last dimension first
        extra = shape[dim - 1] - t.shape[dim]
        pad.extend([extra, 0] if (left and dim == 1) else [0, extra])
    return torch.nn.functional.pad(t, pad, value=value)


def concat_rows(parts: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Concatenate batches from :func:`select_rows`, padding prompts on the left and completions on the right."""
    parts = [p for p in parts if p and _batch_size(p) > 0]
    if not parts:
        raise ValueError("nothing to concatenate")
    if len(parts) == 1:
        return dict(parts[0])
    keys = list(parts[0])
    for p in parts[1:]:
        if list(p) != keys:
            raise ValueError(f"scored batches have different fields: {sorted(keys)} vs {sorted(p)}")
    out: dict[str, Any] = {}
    prompt_widths = [p["prompt_ids"].shape[1] for p in parts] if "prompt_ids" in keys else None
    for key in keys:
        values = [p[key] for p in parts]
        if isinstance(values[0], list):
            out[key] = [v for vs in values for v in vs]
            continue
        value = 0
        if key in ("prompt_ids", "completion_ids"):
            value = pad_token_id
        if key in _PROMPT_THEN_COMPLETION and prompt_widths is not None:
            p_max = max(prompt_widths)
            heads = [v[:, :w] for v, w in zip(values, prompt_widths, strict=True)]
            tails = [v[:, w:] for v, w in zip(values, prompt_widths, strict=True)]
            c_max = max(t.shape[1] for t in tails)
            out[key] = torch.cat([
                torch.cat([_pad_to(h, (p_max,), 0, left=True), _pad_to(t, (c_max,), 0, left=False)], dim=1)
                for h, t in zip(heads, tails, strict=True)
            ], dim=0)
            continue
        shape = tuple(max(v.shape[d] for v in values) for d in range(1, values[0].ndim))
        out[key] = torch.cat([_pad_to(v, shape, value, left=key in _LEFT_PADDED) for v in values], dim=0)
    return out


# --------------------------------------------------------------------------------------------- the trainer hook
class DynamicSamplingMixin:
    """Mix into ``trl.GRPOTrainer`` (before it in the bases) to filter groups and refill batches.

    Set ``self.dynamic_sampling`` to a :class:`DynamicSamplingConfig` to turn it on (``None``: plain TRL).
    """

    dynamic_sampling: DynamicSamplingConfig | None = None
    _medix_last_rewards: torch.Tensor | None = None
    _medix_refill_iter: Iterator[list[dict]] | None = None

    # TRL computes and gathers the per-function rewards here; keep a reference for the filter.
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._medix_last_rewards = rewards_per_func
        return rewards_per_func

    def check_dynamic_sampling_setup(self) -> None:
        """Fail early, with the fix, on setups the refill cannot handle."""
        if self.dynamic_sampling is None:
            return
        from datasets import IterableDataset

        if isinstance(self.train_dataset, IterableDataset):
            raise TypeError("dynamic sampling needs a map-style training set (not streaming): load the data "
                             "without streaming, or turn it off with algorithm.dynamic_sampling.enabled=false")
        check_batch_layout(self.args.per_device_train_batch_size, self.args.steps_per_generation,
                           self.num_generations)

    def _local_total_rewards(self, n_local: int) -> torch.Tensor:
        """The total reward (:func:`medix_r1.rewards.total.composite_total`: the weighted mean of the components
        that apply) of this process's completions from the last scoring round, so that ``min_mean`` /
        ``max_mean`` mean the same for text-only and image rows and under any weights. ``NaN`` where the
        total has no value (e.g. the judge failed on every completion of the group)."""
        from medix_r1.rewards.total import composite_total

        rewards = self._medix_last_rewards.detach().float().cpu()
        start = self.accelerator.process_index * n_local
        names = list(getattr(self, "reward_func_names", None) or [f"reward_{i}" for i in range(rewards.shape[1])])
        weights = dict(zip(names, self.reward_weights.tolist(), strict=True))
        totals = []
        for row in rewards[start:start + n_local].tolist():
            scores = {n: None if math.isnan(v) else v for n, v in zip(names, row, strict=True)}
            t = composite_total(scores, weights, names)
            totals.append(math.nan if t is None else t)
        return torch.tensor(totals)

    def _refill_batches(self) -> Iterator[list[dict]]:
        """Endless fresh generation batches: a seeded shuffle of the train set, one disjoint slice per process."""
        ds = self.train_dataset
        g = self.num_generations
        local_prompts = self.args.per_device_train_batch_size * self.args.steps_per_generation // g
        n_proc, rank = self.accelerator.num_processes, self.accelerator.process_index
        # Same seed on every process (disjoint slices); a different stream after a resume.
        seed = int(self.args.seed) + 7919 * (1 + int(self.state.global_step))
        epoch = 0
        while True:
            perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
            step = local_prompts * n_proc
            for start in range(0, len(perm) - step + 1, step):
                chunk = perm[start + rank * local_prompts: start + (rank + 1) * local_prompts]
                yield [ds[int(i)] for i in chunk for _ in range(g)]
            if len(perm) < step:  # tiny datasets: sample with replacement across epochs
                yield [ds[int(perm[(rank * local_prompts + j) % len(perm)])]
                       for j in range(local_prompts) for _ in range(g)]
            epoch += 1

    def _any_process_needs_more(self, need: bool) -> bool:
        flag = torch.tensor([1.0 if need else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.gather(flag).sum().item() > 0)

    def _generate_and_score_completions(self, inputs):
        if self.dynamic_sampling is None or not self.model.training:
            return super()._generate_and_score_completions(inputs)
        from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

        cfg = self.dynamic_sampling
        g = self.num_generations
        n_local = len(inputs)
        if n_local % g:
            raise ValueError(f"dynamic sampling: a local generation batch of {n_local} rows is not whole groups "
                             f"of {g}; see check_dynamic_sampling_setup()")
        target = n_local // g
        kept: list[dict[str, Any]] = []
        spare: list[dict[str, Any]] = []
        n_kept = n_spare = seen = dropped = rounds = 0
        batch_inputs = inputs
        while True:
            rounds += 1
            scored = super()._generate_and_score_completions(batch_inputs)
            keep = group_keep_mask(self._local_total_rewards(len(batch_inputs)), g, cfg)
            split = split_pixel_values_by_grid(scored)
            groups_keep = [i for i in range(len(keep)) if keep[i]][: target - n_kept]
            groups_drop = [i for i in range(len(keep)) if not keep[i]]
            if groups_keep:
                kept.append(select_rows(split, [i * g + j for i in groups_keep for j in range(g)]))
                n_kept += len(groups_keep)
            if cfg.on_exhausted == "fill" and n_spare < target and groups_drop:
                take = groups_drop[: target - n_spare]
                spare.append(select_rows(split, [i * g + j for i in take for j in range(g)]))
                n_spare += len(take)
            seen += len(keep)
            dropped += int((~keep).sum())
            if not self._any_process_needs_more(n_kept < target) or rounds >= cfg.max_tries:
                break
            if self._medix_refill_iter is None:
                self._medix_refill_iter = self._refill_batches()
            batch_inputs = next(self._medix_refill_iter)

        filled = 0
        if n_kept < target:
            if cfg.on_exhausted == "error":
                raise DynamicSamplingExhausted(
                    f"dynamic sampling kept {n_kept} of {target} groups after {rounds} rounds "
                    f"(every group's mean reward was <= {cfg.min_mean} or >= {cfg.max_mean}, or all equal). "
                    "Raise algorithm.dynamic_sampling.max_tries, widen min_mean/max_mean, or set "
                    "on_exhausted: fill")
            filled = target - n_kept
            log.warning("dynamic sampling: only %d of %d groups were informative after %d rounds; filling the "
                        "batch with %d dropped group(s)", n_kept, target, rounds, filled)
            need = filled
            for part in spare:
                rows = _batch_size(part)
                take = min(rows // g, need)
                if take:
                    kept.append(select_rows(part, list(range(take * g))))
                    need -= take
        merged = concat_rows(kept, pad_token_id=self._tokenizer.pad_token_id)
        merged = unsplit_pixel_values_by_grid(merged)
        loss_mask = merged["completion_mask"]
        if "tool_mask" in merged:
            loss_mask = loss_mask * merged["tool_mask"]
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()

        # Sums over processes (rounds are the same on every process); rates are derived at log time.
        counts = torch.tensor([float(seen), float(dropped), float(filled)], device=self.accelerator.device)
        seen_all, dropped_all, filled_all = self.accelerator.gather(counts).view(-1, 3).sum(dim=0).tolist()
        count_into(self, {"dynamic_sampling/groups_seen": seen_all, "dynamic_sampling/groups_dropped": dropped_all,
                          "dynamic_sampling/groups_filled_with_dropped": filled_all})
        self._metrics["train"]["dynamic_sampling/rounds"].append(float(rounds))
        return merged
