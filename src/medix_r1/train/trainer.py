"""``MedixGRPOTrainer``: TRL's ``GRPOTrainer`` plus the few things medix-r1 needs and TRL lacks.

Every extension is small and overrides one documented hook; the GRPO algorithm itself is TRL's:

- DAPO dynamic sampling (:class:`~medix_r1.train.dynamic_sampling.DynamicSamplingMixin`, overriding
  ``_generate_and_score_completions`` and ``_calculate_rewards``);
- the group rule for failed verdicts and every process counted (:class:`RewardAccountingMixin`, overriding
  ``_calculate_rewards``, the one point where every process holds the gathered rewards of the round):
  a completion without a verdict gets its group's mean on that component
  (:func:`~medix_r1.train.rewards.fill_failed_verdicts`) before TRL's reward sum and advantages; the
  reward's counts (judge calls, failures, cache hits, ``None`` counts) are summed over processes; the
  judge's error budget is checked on those sums, so every process raises the same
  :class:`~medix_r1.errors.BudgetExceeded` at the same round;
- reward/judge counters in the logs (``log``): the summed counts since the previous log, and rates derived
  from them (``judge_requests``, judge error rate, cache hit rate, latency, ``judge_failed_groups``...), so
  they reach the console, ``metrics.jsonl`` and any ``report_to`` backend like TRL's own metrics;
- an image the processor rejects stops training with a message naming the sample and the image instead
  of a stack trace from deep inside the processor (``_generate_and_score_completions``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from trl import GRPOTrainer

from medix_r1.train.dataset import TrainingDataError
from medix_r1.train.dynamic_sampling import DynamicSamplingConfig, DynamicSamplingMixin
from medix_r1.train.rewards import (
    RewardSetup,
    count_into,
    fill_failed_verdicts,
    rates_from_counts,
    sum_counts,
)

log = logging.getLogger(__name__)


class RewardAccountingMixin:
    """Between TRL's reward gathering and its advantages: the failed-verdict group rule, the reward's
    counts summed over processes, and the global error budget (see the module doc)."""

    count_sources: tuple = ()
    reward_budget: Any = None
    _medix_fill: Any = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        from accelerate.utils import gather_object

        from medix_r1.models.loading import outside_zero3

        with outside_zero3():  # reward models load here, lazily: whole, not as ZeRO-3 partitions
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Every process is here for the same round: sum the reward's counts of this round over processes.
        local: dict[str, Any] = {}
        for source in self.count_sources:
            local.update(source())
        if self.accelerator.num_processes > 1:
            parts = gather_object([local])
        else:
            parts = [local]
        total = sum_counts(parts)
        last_error = total.pop("judge/last_error", None)
        count_into(self, {k: v for k, v in total.items() if not isinstance(v, str)})

        g = self.num_generations if self.model.training else self.num_generations_eval
        filled, mask = fill_failed_verdicts(rewards, g)
        self._medix_fill = (rewards, mask)
        groups = mask.view(-1, g, mask.shape[1]).any(dim=2).any(dim=1)
        count_into(self, {"judge_failed_groups": float(groups.sum()), "reward/filled_values": float(mask.sum())})

        if self.reward_budget is not None:
            calls = int(total.get("judge/model_calls", 0))
            failures = int(total.get("judge/model_failures", 0))
            kinds = {k: int(total.get(f"judge/{key}", 0)) for k, key in
                     (("timeout", "timeouts"), ("error", "errors"), ("unparseable", "unparseable"))}
            self.reward_budget.record(calls, failures, error=last_error, kinds=kinds)
            self.reward_budget.check()  # same sums on every process: all raise here, with the same message
        return filled

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self._restore_failed_in_logs()
        return out

    def _restore_failed_in_logs(self) -> None:
        """Logs and ``samples.md`` show a failed verdict as no value, not the group mean it was trained with."""
        if self._medix_fill is None:
            return
        import torch

        raw, mask = self._medix_fill
        self._medix_fill = None
        if not bool(mask.any()):
            return
        mode = "train" if self.model.training else "eval"
        n = raw.shape[0]
        for i, name in enumerate(self.reward_func_names):
            if not bool(mask[:, i].any()):
                continue
            column = self._logs["rewards"][name]
            start = len(column) - n
            for row in mask[:, i].nonzero(as_tuple=True)[0].tolist():
                if start + row >= 0:
                    column[start + row] = math.nan
            metrics = self._metrics[mode]
            values = raw[:, i]
            if metrics.get(f"rewards/{name}/mean"):
                metrics[f"rewards/{name}/mean"][-1] = torch.nanmean(values).item()
            if metrics.get(f"rewards/{name}/std"):
                kept = values[~torch.isnan(values)]
                metrics[f"rewards/{name}/std"][-1] = kept.std().item() if kept.numel() > 1 else 0.0


class MedixGRPOTrainer(DynamicSamplingMixin, RewardAccountingMixin, GRPOTrainer):
    """``GRPOTrainer`` with dynamic sampling, the failed-verdict group rule and reward statistics.

    Extra keyword arguments: ``dynamic_sampling`` (a :class:`DynamicSamplingConfig` or ``None``),
    ``rewards`` (the :class:`~medix_r1.train.rewards.RewardSetup` whose functions are ``reward_funcs``:
    its count sources, error budget and event loops) and ``metric_sources`` (callables returning
    ``{metric_name: value}`` read at each log on each process, for values where a local figure is right).
    """

    def __init__(self, *args: Any, dynamic_sampling: DynamicSamplingConfig | None = None,
                 metric_sources: list[Callable[[], dict[str, float]]] | None = None,
                 rewards: RewardSetup | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.dynamic_sampling = dynamic_sampling
        self.metric_sources = list(metric_sources or []) + list(rewards.metric_sources if rewards else [])
        self.count_sources = list(rewards.count_sources) if rewards else []
        self.reward_budget = rewards.budget if rewards else None
        if rewards is not None and getattr(self, "async_loop", None) is not None:
            rewards.loops.append(self.async_loop)  # the judge's connections live in TRL's reward loop
        self.check_dynamic_sampling_setup()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            for source in self.metric_sources:
                try:
                    logs.update(source())
                except Exception as exc:  # noqa: BLE001 - statistics must never stop training
                    log.warning("reward statistics source %r failed: %s", source, exc)
            counts, self._medix_counts = self._medix_counts or Counter(), Counter()
            logs.update(rates_from_counts(dict(counts), self.accelerator.num_processes))
            if counts.get("judge/requests"):
                logs["judge_failed_groups"] = counts.get("judge_failed_groups", 0.0)
                logs["reward/filled_values"] = counts.get("reward/filled_values", 0.0)
            seen = counts.get("dynamic_sampling/groups_seen", 0)
            if seen:
                logs["dynamic_sampling/frac_groups_dropped"] = counts.get("dynamic_sampling/groups_dropped", 0) / seen
        super().log(logs, start_time)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Resume weights correctly for models whose checkpoint keys differ from their module names.

        transformers 5 saves Qwen-VL (and other converted) models with the hub's key layout
        (``model.embed_tokens...``) while the modules are named ``model.language_model.embed_tokens...``;
        ``Trainer`` reloads a checkpoint with a plain ``load_state_dict(strict=False)``, which then matches no
        key and silently resumes from the *initial* weights (transformers 5.24). When the keys do not match,
        load the checkpoint through ``from_pretrained`` (which applies the key conversion) and copy it in.
        """
        import json
        from pathlib import Path

        target = model if model is not None else self.model
        folder = Path(resume_from_checkpoint)
        single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or _is_peft(target) or not (
                single.is_file() or index.is_file()):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        if single.is_file():
            from safetensors import safe_open

            with safe_open(str(single), framework="pt") as fh:
                saved = set(fh.keys())
        else:
            saved = set(json.loads(index.read_text())["weight_map"])
        own = set(target.state_dict())
        if saved <= own:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        log.info("loading %s through from_pretrained (its keys use the hub layout)", folder)
        fresh = type(target).from_pretrained(str(folder), dtype=next(target.parameters()).dtype)
        missing, unexpected = target.load_state_dict(fresh.state_dict(), strict=False)
        tied = set(getattr(target, "_tied_weights_keys", None) or [])
        real_missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
        if real_missing or unexpected:
            raise RuntimeError(f"cannot resume from {folder}: {len(real_missing)} weights missing "
                               f"(e.g. {real_missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        del fresh

    def _generate_and_score_completions(self, inputs):
        try:
            return super()._generate_and_score_completions(inputs)
        except (ValueError, TypeError, IndexError, RuntimeError) as exc:
            if _is_oom(exc):
                raise
            culprit = self._find_rejected_image(inputs)
            if culprit is None:
                raise
            raise TrainingDataError(culprit + f" (processor error: {type(exc).__name__}: {exc})") from exc

    def _find_rejected_image(self, inputs: list[dict]) -> str | None:
        """Run each image of the batch through the image processor alone; describe the first one it rejects."""
        image_processor = getattr(self.processing_class, "image_processor", None)
        if image_processor is None:
            return None
        for row in inputs:
            for k, image in enumerate(row.get("images") or []):
                try:
                    image_processor(images=[image], return_tensors="pt")
                except Exception as exc:  # noqa: BLE001 - any failure here is the answer we look for
                    size = getattr(image, "size", None)
                    return (f"sample id={row.get('id')} (source {row.get('source') or '?'}): image {k} "
                            f"(size {size}, mode {getattr(image, 'mode', '?')}) is rejected by "
                            f"{type(image_processor).__name__}: {exc}. Fix or drop the image; images below the "
                            "processor's minimum size can be upscaled with model.min_pixels")
        return None


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)
