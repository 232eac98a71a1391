"""``MedixGRPOTrainer``: TRL's ``GRPOTrainer`` plus the few things medix-r1 needs and TRL lacks.

Every extension is small and overrides one documented hook; the GRPO algorithm itself is TRL's:

- DAPO dynamic sampling (:class:`~medix_r1.train.dynamic_sampling.DynamicSamplingMixin`, overriding
  ``_generate_and_score_completions`` and ``_calculate_rewards``);
- reward/judge counters in the logs (``log``): each reward-stats provider's ``metrics()`` (judge error rate,
  cache hit rate, latency, injections...) is merged into every logged row, so they reach the console,
  ``metrics.jsonl`` and any ``report_to`` backend like TRL's own metrics;
- an image the processor rejects stops training with a message naming the sample and the image instead
  of a stack trace from deep inside the processor (``_generate_and_score_completions``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from trl import GRPOTrainer

from medix_r1.train.dataset import TrainingDataError
from medix_r1.train.dynamic_sampling import DynamicSamplingConfig, DynamicSamplingMixin

log = logging.getLogger(__name__)


class MedixGRPOTrainer(DynamicSamplingMixin, GRPOTrainer):
    """``GRPOTrainer`` with dynamic sampling and reward statistics.

    Extra keyword arguments: ``dynamic_sampling`` (a :class:`DynamicSamplingConfig` or ``None``) and
    ``metric_sources`` (callables returning ``{metric_name: value}``, read at each log; e.g. the judge's
    counters since the previous log).
    """

    def __init__(self, *args: Any, dynamic_sampling: DynamicSamplingConfig | None = None,
                 metric_sources: list[Callable[[], dict[str, float]]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.dynamic_sampling = dynamic_sampling
        self.metric_sources = list(metric_sources or [])
        self.check_dynamic_sampling_setup()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:
            for source in self.metric_sources:
                try:
                    logs.update(source())
                except Exception as exc:  # noqa: BLE001 - statistics must never stop training
                    log.warning("reward statistics source %r failed: %s", source, exc)
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
