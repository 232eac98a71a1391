"""The LLM judge: one interface (:class:`Judge`), two backends, versioned prompts, a verdict cache, a guard.

- :class:`OpenAIChatBackend`: any OpenAI-compatible chat endpoint (``vllm serve``, SGLang, a hosted API).
- :class:`LocalChatBackend`: an in-process transformers model; the embedded default is SmolLM2-135M-Instruct
  (weak, for offline runs and tests).
- :class:`VerdictCache`: SQLite, shared by training and evaluation, safe for several processes.
- :mod:`medix_r1.judge.prompts`: :class:`JudgePrompt` and its registry; :mod:`medix_r1.judge.guard`: the
  injection guard.

Heavy imports (httpx, torch, transformers) happen only when a backend is used.
"""

from medix_r1.clients.openai import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_JUDGE_URL,
    OpenAIChatBackend,
)
from medix_r1.judge.base import (
    NO_VERDICT_STATUSES,
    BackendError,
    ChatBackend,
    JudgeErrorBudgetExceeded,
    JudgeRequest,
    JudgeStats,
    Verdict,
    VerdictStatus,
)
from medix_r1.judge.cache import VerdictCache, default_cache_path, verdict_key
from medix_r1.judge.guard import GuardResult, InjectionGuard, detect_injection, is_injection
from medix_r1.judge.judge import Judge
from medix_r1.judge.local_backend import LocalChatBackend
from medix_r1.judge.prompts import (
    JUDGE_PROMPTS,
    JudgePrompt,
    get_prompt,
    parse_yes_no,
    register_prompt,
    reward_prompt_for,
)

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_JUDGE_MODEL",
    "DEFAULT_JUDGE_URL",
    "JUDGE_PROMPTS",
    "NO_VERDICT_STATUSES",
    "BackendError",
    "ChatBackend",
    "GuardResult",
    "InjectionGuard",
    "Judge",
    "JudgeErrorBudgetExceeded",
    "JudgePrompt",
    "JudgeRequest",
    "JudgeStats",
    "LocalChatBackend",
    "OpenAIChatBackend",
    "Verdict",
    "VerdictCache",
    "VerdictStatus",
    "default_cache_path",
    "detect_injection",
    "get_prompt",
    "is_injection",
    "make_backend",
    "parse_yes_no",
    "register_prompt",
    "reward_prompt_for",
    "verdict_key",
]


def make_backend(kind: str = "openai", *, url: str = DEFAULT_JUDGE_URL, model: str | None = None,
                 timeout: float = 60.0, concurrency: int = 64, max_retries: int = 3,
                 api_key_env: str = DEFAULT_API_KEY_ENV) -> ChatBackend:
    """Build a backend from CLI/config values: ``kind`` is ``"openai"`` or ``"local"``."""
    if kind == "local":
        return LocalChatBackend(model or "smollm2")
    if kind == "openai":
        return OpenAIChatBackend(url, model or DEFAULT_JUDGE_MODEL, timeout=timeout, concurrency=concurrency,
                                 max_retries=max_retries, api_key_env=api_key_env)
    raise ValueError(f"unknown judge backend {kind!r}; valid: openai, local")
