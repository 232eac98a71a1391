"""Kept so existing imports work: the OpenAI-compatible client lives in :mod:`medix_r1.clients.openai` (it serves
the evaluated policy as well as the judge)."""

from medix_r1.clients.openai import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_JUDGE_URL,
    OpenAIChatBackend,
)

__all__ = ["DEFAULT_API_KEY_ENV", "DEFAULT_JUDGE_MODEL", "DEFAULT_JUDGE_URL", "OpenAIChatBackend"]
