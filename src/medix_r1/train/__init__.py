"""Training: TRL ``GRPOTrainer`` wiring for GRPO / DAPO / GSPO / Dr. GRPO on vision-language models.

- :mod:`~medix_r1.train.recipe`            typed recipe YAML (model, data, reward, algorithm, trainer)
- :mod:`~medix_r1.train.presets`           algorithm presets as GRPOConfig settings
- :mod:`~medix_r1.train.dataset`           samples -> TRL rows (prompt, images, reward columns), lazily
- :mod:`~medix_r1.train.dynamic_sampling`  DAPO's group filtering and refill (an extension of TRL's trainer)
- :mod:`~medix_r1.train.trainer`           ``MedixGRPOTrainer`` (dynamic sampling, judge metrics, clear errors)
- :mod:`~medix_r1.train.callbacks`         console progress, metrics.jsonl, reward plot, sample completions
- :mod:`~medix_r1.train.run`               ``run_training`` and ``dry_run``

Heavy libraries (torch, TRL) load only when a function that needs them runs.
"""

from __future__ import annotations

from typing import Any

from medix_r1.train.recipe import Recipe, RecipeError, load_recipe

_LAZY = {
    "run_training": "medix_r1.train.run",
    "dry_run": "medix_r1.train.run",
    "RunResult": "medix_r1.train.run",
    "TrainingOOMError": "medix_r1.train.run",
    "TrainingDataError": "medix_r1.train.dataset",
    "DynamicSamplingConfig": "medix_r1.train.dynamic_sampling",
    "MedixGRPOTrainer": "medix_r1.train.trainer",
    "RewardSetup": "medix_r1.train.rewards",
    "JudgeUnavailableError": "medix_r1.train.rewards",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medix_r1.train' has no attribute {name!r}")


__all__ = ["DynamicSamplingConfig", "JudgeUnavailableError", "MedixGRPOTrainer", "Recipe", "RecipeError",
           "RewardSetup", "RunResult", "TrainingDataError", "TrainingOOMError", "dry_run", "load_recipe",
           "run_training"]
