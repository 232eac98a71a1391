"""Tiny random VLMs for tests (about 3.5 M parameters, built offline in about a second).

Qwen2-VL / Qwen2.5-VL / Qwen3-VL (and, to test those code paths, Idefics3 and SmolVLM) with the real
architectures (M-RoPE, the Qwen vision tower and merger, Qwen3-VL's deepstack, Idefics3's pixel shuffle) at
toy sizes, random weights, and a real tokenizer: SmolLM2's (from the bundled GGUF) plus the architecture's
image special tokens and a ChatML template. Their processors use the PIL image processor, so they work without
torchvision. Outputs are gibberish: use them to exercise code paths (loading, saving, generation, GRPO
steps), never to judge quality.

>>> from medix_r1.models import build_tiny_vlm, load_policy   # doctest: +SKIP
>>> policy = load_policy(str(build_tiny_vlm("qwen3_vl")))        # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medix_r1.models._build import build_once, save_model
from medix_r1.paths import cache_dir
from medix_r1.registry import UnknownNameError, unknown_name_message

logger = logging.getLogger(__name__)

TINY_VERSION = "tiny-v1"
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# Images are capped at 4 x 4 merged patches (16 image tokens) so tests stay fast.
MAX_MERGED_PATCHES = 16
MIN_MERGED_PATCHES = 4

_TEXT = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 4096, "tie_word_embeddings": True,
}
# M-RoPE splits the rotary half-dimension (head_dim 16 -> 8) into temporal/height/width sections.
_MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}

ARCHS: dict[str, dict[str, Any]] = {
    "qwen2_vl": {
        "config": "Qwen2VLConfig",
        "patch_size": 14,
        "text": {**_TEXT, "rope_parameters": _MROPE},
        "vision": {"depth": 2, "embed_dim": 64, "hidden_size": 64, "num_heads": 4, "mlp_ratio": 2,
                   "patch_size": 14},
    },
    "qwen2_5_vl": {
        "config": "Qwen2_5_VLConfig",
        "patch_size": 14,
        "text": {**_TEXT, "rope_parameters": _MROPE},
        "vision": {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
                   "out_hidden_size": 64, "patch_size": 14, "window_size": 112, "fullatt_block_indexes": [1]},
    },
    "qwen3_vl": {
        "config": "Qwen3VLConfig",
        "patch_size": 16,
        "text": {**_TEXT, "head_dim": 16, "rope_parameters": {**_MROPE, "mrope_interleaved": True}},
        "vision": {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
                   "out_hidden_size": 64, "patch_size": 16, "num_position_embeddings": 64,
                   "deepstack_visual_indexes": [0]},
    },
    # Idefics3 / SmolVLM: a Llama text model, a SigLIP-style vision tower; 64 px images, 16 px patches and
    # pixel shuffle 2 give 4 image tokens per image.
    "idefics3": {"config": "Idefics3Config", "image_size": 64, "patch_size": 16},
    "smolvlm": {"config": "SmolVLMConfig", "image_size": 64, "patch_size": 16},
}
_IDEFICS_TEXT = {**_TEXT, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}
_IDEFICS_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
ARCH_ALIASES = {"qwen2-vl": "qwen2_vl", "qwen2.5-vl": "qwen2_5_vl", "qwen2_5-vl": "qwen2_5_vl",
                "qwen3-vl": "qwen3_vl", "smolvlm2": "smolvlm"}


def canonical_arch(arch: str) -> str:
    arch = ARCH_ALIASES.get(arch, arch)
    if arch not in ARCHS:
        raise UnknownNameError(unknown_name_message("tiny VLM architecture", arch, ARCHS))
    return arch


def tiny_tokenizer() -> Any:
    """SmolLM2's tokenizer plus the Qwen vision special tokens and a Qwen-style chat template."""
    from medix_r1.models.bundled import smollm2_tokenizer
    from medix_r1.models.chat_templates import QWEN_VL_TEMPLATE

    tok = smollm2_tokenizer()
    tok.add_special_tokens({"extra_special_tokens": list(VISION_TOKENS)}, replace_extra_special_tokens=False)
    tok.chat_template = QWEN_VL_TEMPLATE
    return tok


def _qwen_parts(arch: str) -> tuple[Any, Any]:
    import transformers
    from transformers import Qwen2VLImageProcessorPil

    from medix_r1.models.processors import without_video

    spec = ARCHS[arch]
    tok = tiny_tokenizer()
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in zip(
        ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"), VISION_TOKENS)}
    text = {**spec["text"], "vocab_size": len(tok), "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    config = getattr(transformers, spec["config"])(
        text_config=text, vision_config=spec["vision"], tie_word_embeddings=True, **ids)
    unit = (spec["patch_size"] * 2) ** 2  # pixels per merged (2 x 2) patch
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=spec["patch_size"], merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": unit * MIN_MERGED_PATCHES, "longest_edge": unit * MAX_MERGED_PATCHES})
    processor_cls = without_video(getattr(transformers, spec["config"].replace("Config", "Processor")))
    processor = processor_cls(image_processor=image_processor, tokenizer=tok, chat_template=tok.chat_template)
    return config, processor


def _idefics_parts(arch: str) -> tuple[Any, Any]:
    import transformers

    from medix_r1.models.bundled import idefics3_processor, smollm2_tokenizer
    from medix_r1.models.chat_templates import IDEFICS3_SMOLLM2_TEMPLATE

    spec = ARCHS[arch]
    tok = smollm2_tokenizer()
    processor = idefics3_processor(tok, spec["image_size"], spec["patch_size"], 2, IDEFICS3_SMOLLM2_TEMPLATE,
                                   family=arch)
    text = {**_IDEFICS_TEXT, "model_type": "llama", "vocab_size": len(tok), "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    vision = {**_IDEFICS_VISION, "image_size": spec["image_size"], "patch_size": spec["patch_size"]}
    config = getattr(transformers, spec["config"])(
        text_config=text, vision_config=vision, scale_factor=2, tie_word_embeddings=True,
        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    return config, processor


def _build(out: Path, arch: str, seed: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText

    config, processor = (_idefics_parts if arch in ("idefics3", "smolvlm") else _qwen_parts)(arch)
    tok = processor.tokenizer
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    model.config._name_or_path = f"medix-r1/tiny-{arch}"
    save_model(model, out)
    processor.save_pretrained(str(out))
    return {"arch": arch, "seed": seed, "params": sum(p.numel() for p in model.parameters())}


def build_tiny_vlm(arch: str = "qwen2_5_vl", path: str | Path | None = None, seed: int = 0) -> Path:
    """Build (once) a tiny random VLM of ``arch`` and return its folder.

    ``arch``: ``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl`` (also ``qwen2.5-vl`` style spellings), or
    ``idefics3`` / ``smolvlm``.

    With ``path=None`` it is cached as ``$MEDIX_CACHE/models/tiny-<arch>`` (``-seed<N>`` appended for a
    non-zero seed); otherwise it is written to ``path``. Same arch and seed -> identical weights.
    """
    arch = canonical_arch(arch)
    if path is None:
        path = cache_dir("models") / (f"tiny-{arch}" + (f"-seed{seed}" if seed else ""))
    return build_once(Path(path), f"{TINY_VERSION}-{arch}-seed{seed}", lambda out: _build(out, arch, seed))
