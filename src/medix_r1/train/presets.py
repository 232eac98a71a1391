"""Algorithm presets: the GRPOConfig settings that make TRL's trainer run GRPO, DAPO, GSPO or Dr. GRPO.

A preset is only a dict of ``GRPOConfig`` fields (plus whether DAPO's dynamic sampling is on). A recipe's
``trainer`` section is applied on top, so every value here can be overridden one key at a time.

How each preset maps to TRL 1.16, and where it departs from TRL's defaults to follow the paper's recipes:

- ``grpo``    KL penalty ``beta=0.01`` with the k3 ("low-variance") estimator as the paper uses it:
              ``use_bias_correction_kl=False``, because TRL 1.16 defaults to multiplying k3 by the importance
              ratio (DeepSeek-V3.2's unbiased variant), which changes the KL gradient even on-policy. TRL does
              not clamp k3 to [-10, 10] as some RL libraries do. Clip 0.2 / 0.3 through ``epsilon`` /
              ``epsilon_high``. Token-level loss (``loss_type="dapo"``: token losses summed and divided by the
              number of completion tokens of the optimizer step), the aggregation the paper describes; TRL's
              ``loss_type="grpo"`` is a per-sequence mean, which weights a short completion's tokens more.
- ``dapo``    no KL; clip-higher 0.2 / 0.28; token-level loss (``loss_type="dapo"``); dynamic sampling.
- ``gspo``    sequence-level importance ratio (``importance_sampling_level="sequence"``); clip 3e-4 / 4e-4;
              no KL; sequence-mean loss (``loss_type="grpo"``): the paper's GSPO recipe states a
              sequence-mean loss, the one exception to its token-level loss.
- ``dr_grpo`` Dr. GRPO: no std scaling of advantages (``scale_rewards="none"``), a constant length
              normaliser (``loss_type="dr_grpo"``), no KL. Not one of the paper's recipes.

Every preset sets ``vllm_importance_sampling_correction=False``. With ``use_vllm`` TRL 1.16 otherwise
multiplies the loss by a correction for the difference between vLLM's sampling log-probabilities and the
trainer's (``sequence_mask`` mode: sequences whose ratio exceeds 3 are dropped from the loss). The paper's
recipes describe no such correction: the PPO ratio is taken against log-probabilities the trainer recomputes
for the rollout, which TRL also does here (``steps_per_generation`` > ``gradient_accumulation_steps``).
``--set trainer.vllm_importance_sampling_correction=true`` turns TRL's correction back on. Without vLLM
the setting has no effect.
"""

from __future__ import annotations

from typing import Any

from medix_r1.registry import UnknownNameError, unknown_name_message

PRESETS: dict[str, dict[str, Any]] = {
    "grpo": {
        "beta": 0.01,
        "use_bias_correction_kl": False,
        "epsilon": 0.2,
        "epsilon_high": 0.3,
        "loss_type": "dapo",
        "importance_sampling_level": "token",
        "scale_rewards": "group",
        "vllm_importance_sampling_correction": False,
    },
    "dapo": {
        "beta": 0.0,
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "loss_type": "dapo",
        "importance_sampling_level": "token",
        "scale_rewards": "group",
        "vllm_importance_sampling_correction": False,
    },
    "gspo": {
        "beta": 0.0,
        "epsilon": 3e-4,
        "epsilon_high": 4e-4,
        "loss_type": "grpo",
        "importance_sampling_level": "sequence",
        "scale_rewards": "group",
        "vllm_importance_sampling_correction": False,
    },
    "dr_grpo": {
        "beta": 0.0,
        "epsilon": 0.2,
        "epsilon_high": 0.2,
        "loss_type": "dr_grpo",
        "importance_sampling_level": "token",
        "scale_rewards": "none",
        "vllm_importance_sampling_correction": False,
    },
}

# Presets whose algorithm includes DAPO's dynamic sampling (a recipe may still turn it on or off).
DYNAMIC_SAMPLING_DEFAULT: dict[str, bool] = {"grpo": False, "dapo": True, "gspo": False, "dr_grpo": False}


def preset_settings(name: str) -> dict[str, Any]:
    """The ``GRPOConfig`` fields of preset ``name`` (a copy). An unknown name lists the valid ones."""
    if name not in PRESETS:
        raise UnknownNameError(unknown_name_message("algorithm preset", name, PRESETS))
    return dict(PRESETS[name])
