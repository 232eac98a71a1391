"""Algorithm presets: the GRPOConfig settings that make TRL's trainer run GRPO, DAPO, GSPO or Dr. GRPO.

A preset is only a dict of ``GRPOConfig`` fields (plus whether DAPO's dynamic sampling is on). A recipe's
``trainer`` section is applied on top, so every value here can be overridden one key at a time.

How each preset maps to TRL 1.16 (reference.md §4 for the numbers):

- ``grpo``    KL penalty with TRL's low-variance k3 estimator, ``beta=0.01``; clip 0.2 / 0.3 through
              ``epsilon`` / ``epsilon_high``; per-sequence mean loss (``loss_type="grpo"``).
- ``dapo``    no KL; clip-higher 0.2 / 0.28; token-level loss (``loss_type="dapo"``); dynamic sampling.
- ``gspo``    sequence-level importance ratio (``importance_sampling_level="sequence"``); clip 3e-4 / 4e-4;
              no KL; sequence-mean loss (``loss_type="grpo"``, as TRL recommends for GSPO).
- ``dr_grpo`` Dr. GRPO: no std scaling of advantages (``scale_rewards="none"``), a constant length
              normaliser (``loss_type="dr_grpo"``), no KL.
"""

from __future__ import annotations

from typing import Any

from medix_r1.registry import UnknownNameError, unknown_name_message

PRESETS: dict[str, dict[str, Any]] = {
    "grpo": {
        "beta": 0.01,
        "epsilon": 0.2,
        "epsilon_high": 0.3,
        "loss_type": "grpo",
        "importance_sampling_level": "token",
        "scale_rewards": "group",
    },
    "dapo": {
        "beta": 0.0,
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "loss_type": "dapo",
        "importance_sampling_level": "token",
        "scale_rewards": "group",
    },
    "gspo": {
        "beta": 0.0,
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
        "loss_type": "grpo",
        "importance_sampling_level": "sequence",
        "scale_rewards": "group",
    },
    "dr_grpo": {
        "beta": 0.0,
        "epsilon": 0.2,
        "epsilon_high": 0.2,
        "loss_type": "dr_grpo",
        "importance_sampling_level": "token",
        "scale_rewards": "none",
    },
}

# Presets whose algorithm includes DAPO's dynamic sampling (a recipe may still turn it on or off).
DYNAMIC_SAMPLING_DEFAULT: dict[str, bool] = {"grpo": False, "dapo": True, "gspo": False, "dr_grpo": False}


def preset_settings(name: str) -> dict[str, Any]:
    """The ``GRPOConfig`` fields of preset ``name`` (a copy). An unknown name lists the valid ones."""
    if name not in PRESETS:
        raise UnknownNameError(unknown_name_message("algorithm preset", name, PRESETS))
    return dict(PRESETS[name])
