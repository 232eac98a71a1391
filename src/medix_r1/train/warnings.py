"""Warnings filters for training: deprecation notices transformers and TRL print at every step.

They are about the libraries' own internal calls (nothing a recipe can change) and would repeat on every
optimizer step, burying the messages that matter.
"""

from __future__ import annotations

import warnings

# (message regex, category): each is a call inside TRL 1.16 / transformers 5.24, not in medix-r1 or a recipe.
_STEP_WARNINGS = [
    (r".*gradient_checkpointing.*deprecated", FutureWarning),
]


def quiet_step_warnings() -> None:
    """Hide the per-step library deprecation warnings (see the module docstring)."""
    for message, category in _STEP_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
