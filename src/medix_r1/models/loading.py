"""Load a policy (model + processor + tokenizer) by alias, local folder or hub id, and save it back.

One entry point for training, evaluation and the local judge::

    policy = load_policy("embedded")                      # the bundled demo VLM (SmolLM2 + random vision)
    policy = load_policy("Qwen/Qwen2.5-VL-7B-Instruct")   # a hub id (needs hub access or a warm HF cache)
    policy = load_policy("runs/demo/checkpoint-20")       # a folder saved by TRL or by save_policy
    save_policy(policy, "runs/demo/final")                # reloads with load_policy("runs/demo/final")

Vision-language models load with ``AutoModelForImageTextToText`` and their processor (through the
torchvision-free fix of :mod:`medix_r1.models.processors` when torchvision is unusable); text-only causal LMs
load with ``AutoModelForCausalLM`` and use their tokenizer as the processor. Weights load from safetensors
only, and remote code is off unless asked for. A folder holding only a PEFT adapter (``adapter_config.json``)
loads its base model, then the adapter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError
from medix_r1.registry import nearest

logger = logging.getLogger(__name__)


def _embedded() -> Path:
    from medix_r1.models.bundled import embedded_policy_path

    return embedded_policy_path()


def _smollm2() -> Path:
    from medix_r1.models.bundled import smollm2_path

    return smollm2_path()


def _tiny(arch: str) -> Callable[[], Path]:
    def build() -> Path:
        from medix_r1.models.tiny import build_tiny_vlm

        return build_tiny_vlm(arch)

    return build


# Names that resolve to models built offline from what packages ship (see bundled.py and tiny.py).
ALIASES: dict[str, Callable[[], Path]] = {
    "embedded": _embedded,
    "smollm2": _smollm2,
    "tiny-qwen2.5-vl": _tiny("qwen2_5_vl"),
    "tiny-qwen3-vl": _tiny("qwen3_vl"),
    "tiny-qwen2-vl": _tiny("qwen2_vl"),
    "tiny-idefics3": _tiny("idefics3"),
    "tiny-smolvlm": _tiny("smolvlm"),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class PolicyNotFoundError(InputError, FileNotFoundError):
    """``load_policy`` got a name that is neither an alias, a model folder, nor a reachable hub id."""


@dataclass
class LoadedPolicy:
    """A loaded policy.

    ``processor`` is what to give TRL as ``processing_class``: the multimodal processor for VLMs, the
    tokenizer for text-only models. ``family`` is the config's ``model_type`` (``qwen2_5_vl``, ``qwen3_vl``,
    ``idefics3``, ``llama`` ...). ``name`` is what the caller asked for; ``source`` the folder or hub id
    the weights came from.
    """

    model: Any
    processor: Any
    tokenizer: Any
    is_vlm: bool
    name: str
    family: str
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def resolve_policy_source(name_or_path: str | os.PathLike) -> str:
    """Turn an alias, a folder or a hub id into what ``from_pretrained`` takes; fail clearly otherwise."""
    name = os.fspath(name_or_path)
    if name in ALIASES:
        return str(ALIASES[name]())
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return str(path)
        checkpoints = sorted(p.name for p in path.glob("checkpoint-*") if p.is_dir())
        hint = (f" It holds training checkpoints ({', '.join(checkpoints[-3:])}): pass one of them."
                if checkpoints else " Save a model there with save_policy() or save_pretrained().")
        raise PolicyNotFoundError(f"policy folder {path} has no config.json (and no adapter_config.json).{hint}")
    if path.exists():
        raise PolicyNotFoundError(f"policy path {path} is a file; give the model's folder instead.")
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or not _HUB_ID.match(name):
        raise PolicyNotFoundError(_not_found_message(name, "no such folder"))
    return name  # a hub id; from_pretrained resolves it (and _load_config explains failures)


def _not_found_message(name: str, why: str) -> str:
    aliases = ", ".join(ALIASES)
    hint = nearest(name, ALIASES)
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    return (f"cannot load policy {name!r}: {why}. Give a local model folder (with config.json), a hub id "
            f"such as Qwen/Qwen2.5-VL-7B-Instruct" + (" (HF_HUB_OFFLINE is set: only models already in the "
            "local Hugging Face cache load)" if offline else "") + f", or an alias: {aliases}."
            + (f" Did you mean {hint!r}?" if hint else ""))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _load_config(source: str, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        why = f"not found locally or on the hub ({_first_line(err)})"
        raise PolicyNotFoundError(_not_found_message(source, why)) from err


def config_is_vlm(config: Any) -> bool:
    """True for image-text-to-text models (Qwen-VL, Idefics3/SmolVLM, ...); False for text-only LMs."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    auto_map = getattr(config, "auto_map", None) or {}
    return (config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
            or getattr(config, "vision_config", None) is not None
            or "AutoModelForImageTextToText" in auto_map or "AutoModelForVision2Seq" in auto_map)


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype or "auto"
    resolved = getattr(torch, str(dtype), None)
    if isinstance(resolved, torch.dtype):
        return resolved
    raise ValueError(f"unknown dtype {dtype!r}; use 'auto', 'float32', 'bfloat16' or 'float16'")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _zero3_enabled() -> bool:
    try:
        from transformers.integrations import is_deepspeed_zero3_enabled
    except ImportError:
        return False
    return bool(is_deepspeed_zero3_enabled())


@contextlib.contextmanager
def outside_zero3() -> Iterator[None]:
    """Load models inside this block as whole, ordinary models even while DeepSpeed ZeRO-3 is on.

    Once the trainer arguments enable ZeRO-3, every ``from_pretrained`` partitions its weights over the
    processes (``deepspeed.zero.Init``). That is right for the policy, which DeepSpeed then runs, and wrong for
    the models the rewards load lazily in each process (the embedder, an in-process judge): used outside
    DeepSpeed, their partitioned weights are empty (``RuntimeError: 'weight' must be 2-D``).
    """
    try:
        import transformers.integrations.deepspeed as hf_deepspeed
    except ImportError:
        yield
        return
    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def _device_map(device: str | None) -> str | None:
    """The ``device_map`` for ``from_pretrained``: none under DeepSpeed ZeRO-3, ``device`` (or the default) else.

    Under ZeRO-3 ``from_pretrained`` partitions each weight over the processes as it loads
    (``deepspeed.zero.Init``), and transformers refuses any ``device_map`` there, even ``"cpu"``.
    """
    if _zero3_enabled():
        if device not in (None, "cpu"):
            logger.info("DeepSpeed ZeRO-3 is on: ignoring device=%r, DeepSpeed places the weight shards", device)
        return None
    return device or _default_device()


def _weights_error(name: str, source: str, loader: str, err: BaseException) -> PolicyNotFoundError:
    """Explain a failed weight load; the .bin hint only when the folder really lacks safetensors."""
    first = _first_line(err)
    folder = Path(source)
    has_bin = folder.is_dir() and any(folder.glob("*.bin"))
    has_safetensors = folder.is_dir() and any(folder.glob("*.safetensors"))
    if has_bin and not has_safetensors:
        fix = ("medix-r1 loads safetensors only and this folder holds .bin weights: convert them once with "
               "from_pretrained(..., use_safetensors=False) then save_pretrained(..., safe_serialization=True).")
    elif "device_map" in first:
        fix = ("This is a placement conflict, not a problem with the weights: load_policy passes no device_map "
               "under DeepSpeed ZeRO-3; make sure the trainer arguments (GRPOConfig) are built before the model.")
    else:
        fix = "Check that the folder (or hub snapshot) holds the complete model: config.json and its *.safetensors."
    return PolicyNotFoundError(f"cannot load the weights of policy {name!r} from {source} with {loader}: "
                               f"{first}. {fix}")


def _prepare_tokenizer(tok: Any) -> Any:
    # Decoder-only generation pads on the left; a model without a pad token reuses its EOS.
    tok.padding_side = "left"
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy(name_or_path: str | os.PathLike, *, trust_remote_code: bool = False, dtype: Any = "auto",
                device: str | None = None) -> LoadedPolicy:
    """Load a policy by alias (see :data:`ALIASES`: ``embedded``, ``smollm2``, ``tiny-qwen2.5-vl``,
    ``tiny-qwen3-vl``, ...), local folder, or hub id.

    ``dtype`` is ``"auto"`` (the checkpoint's dtype), a name like ``"bfloat16"``, or a ``torch.dtype``.
    ``device`` defaults to CUDA when available, else CPU; for FSDP training pass ``device="cpu"`` and let the
    trainer shard and place the model (:func:`medix_r1.train.model_setup.policy_device` decides). Under
    DeepSpeed ZeRO-3 (the trainer arguments built first) ``device`` is ignored: the weights load partitioned. ``trust_remote_code`` stays off unless the model
    needs custom code and you trust its source.
    """
    name = os.fspath(name_or_path)
    source = resolve_policy_source(name)
    adapter = Path(source) / "adapter_config.json"
    if Path(source).is_dir() and adapter.is_file() and not (Path(source) / "config.json").is_file():
        return _load_adapter(name, Path(source), trust_remote_code=trust_remote_code, dtype=dtype, device=device)

    torch_dtype = _torch_dtype(dtype)
    config = _load_config(source, trust_remote_code)
    is_vlm = config_is_vlm(config)
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    auto = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
    try:
        # device_map puts the weights straight on the device (no full CPU copy of a large model first);
        # under ZeRO-3 there is none (see _device_map).
        model = auto.from_pretrained(source, config=config, dtype=torch_dtype, use_safetensors=True,
                                     trust_remote_code=trust_remote_code, device_map=_device_map(device))
    except (OSError, ValueError) as err:
        raise _weights_error(name, source, auto.__name__, err) from err
    model.eval()
    if is_vlm:
        from medix_r1.models.processors import load_processor

        processor = load_processor(source, config, trust_remote_code=trust_remote_code)
        tokenizer = _prepare_tokenizer(processor.tokenizer)
    else:
        processor = tokenizer = _prepare_tokenizer(
            AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code))
    logger.info("loaded policy %s (%s, %s) from %s on %s", name, config.model_type,
                "VLM" if is_vlm else "text-only", source, model.device)
    return LoadedPolicy(model=model, processor=processor, tokenizer=tokenizer, is_vlm=is_vlm, name=name,
                        family=config.model_type, source=source)


def _load_adapter(name: str, folder: Path, **kwargs: Any) -> LoadedPolicy:
    from peft import PeftModel

    base_name = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base_name:
        raise PolicyNotFoundError(f"{folder}/adapter_config.json has no base_model_name_or_path; "
                                  "cannot tell which model the adapter belongs to.")
    base = load_policy(base_name, **kwargs)
    base.model = PeftModel.from_pretrained(base.model, str(folder))
    base.model.eval()
    base.name, base.source = name, str(folder)
    base.extras["adapter_base"] = base_name
    return base


def save_policy(policy: LoadedPolicy, out_dir: str | os.PathLike) -> Path:
    """Save model (safetensors) and processor so that ``load_policy(out_dir)`` reloads the same policy.

    Processors built without torchvision save under their real class name, so the folder also loads with
    plain ``AutoProcessor`` where torchvision works.
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(str(out), safe_serialization=True)
    policy.processor.save_pretrained(str(out))
    logger.info("saved policy %s to %s", policy.name, out)
    return out
