"""The composite reward of MediX-R1: format, modality, LLM-judge accuracy, embedding accuracy.

Use :func:`build_reward_functions` for TRL (``reward_funcs`` and ``reward_weights``), or
:func:`score_completions` to score rows outside training. :class:`RewardConfig` holds the settings
(mode ``paper`` or ``default``, weights, judge, embedding, injection guard); docs/rewards.md explains the modes.
"""

from medix_r1.grading import closed_polarity, laterality_conflict
from medix_r1.rewards.checks import Prepared, prepare
from medix_r1.rewards.config import (
    COMPONENTS,
    PAPER_WEIGHTS,
    JudgeConfig,
    RewardConfig,
    RewardConfigError,
)
from medix_r1.rewards.embedding import BUNDLED_EMBEDDING, PAPER_EMBEDDING, Embedder, load_embedding_model
from medix_r1.rewards.inputs import RowReference, completion_text, completion_texts, row_references
from medix_r1.rewards.suite import (
    RewardStats,
    RewardSuite,
    build_judge,
    build_reward_functions,
    score_completions,
)
from medix_r1.rewards.total import composite_total

__all__ = [
    "BUNDLED_EMBEDDING",
    "COMPONENTS",
    "PAPER_EMBEDDING",
    "PAPER_WEIGHTS",
    "Embedder",
    "JudgeConfig",
    "Prepared",
    "RewardConfig",
    "RewardConfigError",
    "RewardStats",
    "RewardSuite",
    "RowReference",
    "build_judge",
    "build_reward_functions",
    "closed_polarity",
    "completion_text",
    "completion_texts",
    "composite_total",
    "laterality_conflict",
    "load_embedding_model",
    "prepare",
    "row_references",
    "score_completions",
]
