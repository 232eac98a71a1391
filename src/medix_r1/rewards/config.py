"""The reward's configuration: mode, components, weights, judge, embedding, guard. Typed and checked early.

A recipe's ``reward:`` section maps onto :class:`RewardConfig` through :meth:`RewardConfig.from_dict`, which
rejects unknown keys with the nearest valid one (``judge.timout`` -> "did you mean 'timeout'?") and checks
every value, so a typo fails at start-up, not after an hour of training.

Defaults are the paper's: weights 0.5175 / 0.3375 / 0.045 / 0.10 (accuracy_llm / accuracy_embed / modality /
format, i.e. 0.9 x (0.575, 0.375, 0.05) + 0.1 format), binary embedding at 0.8, the injection guard on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from medix_r1.clients.openai import DEFAULT_API_KEY_ENV, DEFAULT_JUDGE_MODEL, DEFAULT_JUDGE_URL
from medix_r1.errors import UsageError
from medix_r1.registry import nearest

COMPONENTS: tuple[str, ...] = ("accuracy_llm", "accuracy_embed", "modality", "format")
PAPER_WEIGHTS: dict[str, float] = {"accuracy_llm": 0.5175, "accuracy_embed": 0.3375, "modality": 0.045,
                                   "format": 0.10}
MODES = ("paper", "default")
EMBED_SCORING = ("binary", "continuous")
JUDGE_BACKENDS = ("openai", "local")


class RewardConfigError(UsageError, ValueError):
    """A reward setting is unknown or invalid; the message names the key and how to fix it."""


def _unknown(section: str, key: str, valid) -> RewardConfigError:
    hint = nearest(key, valid)
    return RewardConfigError(f"unknown key {section}{key!r}; valid keys: {', '.join(sorted(valid))}"
                             + (f". Did you mean {hint!r}?" if hint else ""))


@dataclass
class JudgeConfig:
    """Which judge ``accuracy_llm`` asks, and how patiently."""

    backend: str = "openai"
    """``openai`` (any OpenAI-compatible server) or ``local`` (in-process transformers model)."""
    url: str = DEFAULT_JUDGE_URL
    model: str | None = None
    """Served model name (openai; default Qwen/Qwen3-4B-Instruct-2507) or model path/alias (local; smollm2)."""
    timeout: float = 60.0
    max_retries: int = 3
    concurrency: int = 64
    api_key_env: str = DEFAULT_API_KEY_ENV
    prompt: str | None = None
    """Judge prompt name; ``None`` picks by mode, few-shot setting and guard."""
    few_shot: bool | None = None
    """Use the short prompt with worked examples; ``None``: only for judges that prefer it (the local one)."""
    max_error_rate: float | None = 0.1
    """Stop with a clear error when more than this share of the last ``error_window`` judge model calls
    failed (``None``: never stop). Cache hits, duplicates and guarded answers are not calls."""
    error_window: int = 200
    """How many of the most recent judge model calls the error budget looks at (in training: summed over
    every process)."""
    cache: bool = True
    cache_path: str | None = None
    """Verdict cache file; default ``$MEDIX_CACHE/judge/verdicts.sqlite``."""

    @property
    def model_name(self) -> str:
        return self.model or (DEFAULT_JUDGE_MODEL if self.backend == "openai" else "smollm2")


@dataclass
class RewardConfig:
    """Everything that defines the composite reward. See docs/rewards.md for what each mode does."""

    mode: str = "default"
    """``paper`` reproduces the release's scoring; ``default`` adds the question, closed-question and
    laterality checks (docs/rewards.md lists every difference)."""
    components: list[str] = field(default_factory=lambda: list(COMPONENTS))
    weights: dict[str, float] = field(default_factory=lambda: dict(PAPER_WEIGHTS))
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    embedding_model: str = "auto"
    """``auto``: MedEmbed-large-v0.1 when loadable, else the bundled all-MiniLM-L6-v2; or a name/path."""
    embed_scoring: str = "binary"
    embed_threshold: float = 0.8
    injection_guard: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.judge, dict):
            self.judge = _judge_from_dict(self.judge)
        self.validate()

    # ----------------------------------------------------------------------------------------- checks
    def validate(self) -> RewardConfig:
        if self.mode not in MODES:
            raise RewardConfigError(f"reward mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if isinstance(self.components, str):
            self.components = [c.strip() for c in self.components.split(",") if c.strip()]
        if not self.components:
            raise RewardConfigError("reward components is empty; use any of " + ", ".join(COMPONENTS))
        for c in self.components:
            if c not in COMPONENTS:
                hint = nearest(c, COMPONENTS)
                raise RewardConfigError(f"unknown reward component {c!r}; valid: {', '.join(COMPONENTS)}"
                                        + (f". Did you mean {hint!r}?" if hint else ""))
        if len(set(self.components)) != len(self.components):
            raise RewardConfigError(f"reward components list a component twice: {self.components}")
        weights = dict(PAPER_WEIGHTS)
        for k, w in (self.weights or {}).items():
            if k not in COMPONENTS:
                raise _unknown("weights.", k, COMPONENTS)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                raise RewardConfigError(f"weights.{k} must be a finite number, got {w!r}")
            weights[k] = float(w)
        self.weights = weights
        if self.embed_scoring not in EMBED_SCORING:
            raise RewardConfigError(f"embed_scoring must be one of {', '.join(EMBED_SCORING)}, "
                                    f"got {self.embed_scoring!r}")
        if not -1.0 <= float(self.embed_threshold) <= 1.0:
            raise RewardConfigError(f"embed_threshold is a cosine, between -1 and 1; got {self.embed_threshold}")
        j = self.judge
        if j.backend not in JUDGE_BACKENDS:
            raise RewardConfigError(f"judge.backend must be one of {', '.join(JUDGE_BACKENDS)}, got {j.backend!r}")
        if not j.timeout or j.timeout <= 0:
            raise RewardConfigError(f"judge.timeout must be > 0 seconds, got {j.timeout}")
        if j.max_retries < 0 or j.concurrency < 1:
            raise RewardConfigError("judge.max_retries must be >= 0 and judge.concurrency >= 1")
        if j.max_error_rate is not None and not 0.0 <= j.max_error_rate <= 1.0:
            raise RewardConfigError(f"judge.max_error_rate must be between 0 and 1 (or null), "
                                    f"got {j.max_error_rate}")
        if isinstance(j.error_window, bool) or not isinstance(j.error_window, int) or j.error_window < 1:
            raise RewardConfigError(f"judge.error_window is a number of judge calls (>= 1), got {j.error_window!r}")
        if j.prompt is not None:
            from medix_r1.judge.prompts import JUDGE_PROMPTS

            if j.prompt not in JUDGE_PROMPTS:
                raise _unknown("judge.prompt = ", j.prompt, JUDGE_PROMPTS.names())
        return self

    # ----------------------------------------------------------------------------------------- I/O
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RewardConfig:
        """Build from a recipe's ``reward:`` mapping; unknown keys raise naming the nearest valid key."""
        data = dict(data or {})
        valid = {f.name for f in dataclasses.fields(cls)}
        for k in data:
            if k not in valid:
                raise _unknown("reward.", k, valid)
        if "judge" in data and data["judge"] is not None:
            if not isinstance(data["judge"], dict):
                raise RewardConfigError("reward.judge must be a mapping (backend, url, model, timeout, ...)")
            data["judge"] = _judge_from_dict(data["judge"])
        elif "judge" in data:
            data.pop("judge")
        if "weights" in data and not isinstance(data["weights"], dict):
            raise RewardConfigError("reward.weights must be a mapping of component -> weight")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def weight_list(self) -> list[float]:
        """The weights of :attr:`components`, in that order (TRL's ``reward_weights``)."""
        return [self.weights[c] for c in self.components]


def _judge_from_dict(d: dict) -> JudgeConfig:
    valid = {f.name for f in dataclasses.fields(JudgeConfig)}
    for k in d:
        if k not in valid:
            raise _unknown("reward.judge.", k, valid)
    return JudgeConfig(**d)
