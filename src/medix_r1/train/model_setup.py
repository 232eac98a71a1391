"""Model options of a recipe applied to a loaded policy: vision freezing, LoRA, image pixel bounds.

- :func:`freeze_vision_tower` stops gradients to the vision encoder; the projector/merger that maps image
  features into the language model stays trainable (it has to adapt to the fine-tuned LM).
- :func:`lora_config` builds the peft ``LoraConfig`` handed to TRL (TRL wraps the model); adapters go on
  the language model only unless ``model.lora.include_vision``.
- :func:`apply_pixel_bounds` (defined in :mod:`medix_r1.models.processors`) sets a Qwen-VL processor's
  image-area bounds to the recipe's, so the dataset's resizing (:func:`medix_r1.train.dataset.fit_pixels`)
  and the processor agree.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from medix_r1.models.processors import apply_pixel_bounds  # noqa: F401 - moved; kept importable here
from medix_r1.train.recipe import LoraSection

log = logging.getLogger(__name__)

# Vision encoders by family: Qwen-VL ``visual``, Idefics3/SmolVLM ``vision_model``, LLaVA-style ``vision_tower``.
VISION_MODULE = re.compile(r"(^|\.)(visual|vision_model|vision_tower|vision_encoder)\.")
# Parts of (or next to) the vision module that connect it to the LM and stay trainable when it is frozen.
CONNECTOR = re.compile(r"(^|\.)(merger|deepstack_merger_list|connector|multi_modal_projector|mm_projector)\.")
LORA_EXCLUDE_VISION = r".*(visual|vision_model|vision_tower|vision_encoder).*"


def vision_parameters(model: Any) -> list[tuple[str, Any]]:
    """``(name, parameter)`` of the vision encoder, connector excluded."""
    return [(n, p) for n, p in model.named_parameters() if VISION_MODULE.search(n) and not CONNECTOR.search(n)]


def freeze_vision_tower(model: Any) -> int:
    """Freeze the vision encoder; returns how many parameters were frozen. Raises if none is found."""
    params = vision_parameters(model)
    if not params:
        raise ValueError(f"model.freeze_vision is set but {type(model).__name__} has no recognisable vision "
                         "tower (modules named visual / vision_model / vision_tower); unset it for text-only models")
    n = 0
    for _, p in params:
        p.requires_grad_(False)
        n += p.numel()
    log.info("froze the vision tower: %d parameters in %d tensors", n, len(params))
    return n


def lora_config(section: LoraSection) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=list(section.target_modules),
        exclude_modules=None if section.include_vision else LORA_EXCLUDE_VISION,
        task_type="CAUSAL_LM",
    )


def _numel(p: Any) -> int:
    # Under DeepSpeed ZeRO-3 a parameter holds only this process's shard (numel() is 0); ds_numel is its size.
    return int(getattr(p, "ds_numel", 0) or p.numel())


def count_parameters(model: Any) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts of the whole model, also when ZeRO-3 has partitioned it."""
    total = sum(_numel(p) for p in model.parameters())
    trainable = sum(_numel(p) for p in model.parameters() if p.requires_grad)
    return total, trainable
