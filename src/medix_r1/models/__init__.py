"""Policies: load by alias / folder / hub id, save, generate, and build offline models.

- :func:`load_policy` / :func:`save_policy` / :class:`LoadedPolicy` (``loading.py``): one way to get a model,
  its processor and tokenizer, for VLMs (Qwen2/2.5/3-VL, SmolVLM/Idefics3) and text-only causal LMs.
- :func:`generate_chat` (``generation.py``): batched chat generation with images, for eval and the judge.
- :func:`smollm2_path` / :func:`embedded_policy_path` (``bundled.py``): real SmolLM2-135M-Instruct from a
  package-shipped GGUF, and the embedded demo VLM built on it (random vision tower: it cannot see).
- :func:`build_tiny_vlm` (``tiny.py``): tiny random Qwen-VL models for tests.

Importing this package is cheap: torch and transformers load only when a function is called.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ALIASES": "loading",
    "LoadedPolicy": "loading",
    "PolicyNotFoundError": "loading",
    "load_policy": "loading",
    "save_policy": "loading",
    "generate_chat": "generation",
    "smollm2_path": "bundled",
    "embedded_policy_path": "bundled",
    "MissingBundledModelError": "bundled",
    "build_tiny_vlm": "tiny",
}

__all__ = ["ALIASES", "LoadedPolicy", "MissingBundledModelError", "PolicyNotFoundError", "build_tiny_vlm",
           "embedded_policy_path", "generate_chat", "load_policy", "save_policy", "smollm2_path"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
