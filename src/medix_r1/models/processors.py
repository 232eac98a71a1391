"""Processors that work without torchvision, and saving them so they load again.

The CPU torch wheel used offline cannot import torchvision from PyPI (``operator torchvision::nms does not
exist``). transformers 5.x then has no video processor, and the Qwen2/2.5/3-VL and SmolVLM processors refuse
to build without one; ``AutoProcessor.from_pretrained`` fails (or, for a folder whose processor class it
cannot resolve, silently returns the bare tokenizer). Images still work: the PIL image processors
(``Qwen2VLImageProcessorPil``, ``Idefics3ImageProcessorPil`` ...) need no torchvision.

:func:`without_video` makes a subclass of such a processor class that takes no video processor. It reports
the base class's name (``__name__``), so what it saves (``processor_config.json``, ``tokenizer_config.json``)
names the real class and loads with plain ``AutoProcessor`` on a machine with torchvision, and it pickles by
its own qualified name (``NoVideo<Base>``), which this module resolves on import.

:func:`load_processor` picks ``AutoProcessor`` when it can work and the subclass otherwise.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_PREFIX = "NoVideo"


@functools.cache
def torchvision_usable() -> bool:
    """True when torchvision imports cleanly next to this torch (a broken install counts as unusable)."""
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # noqa: BLE001 - ImportError, or RuntimeError from a wheel built for another torch
        if not isinstance(err, ModuleNotFoundError):
            logger.info("torchvision is installed but unusable (%s); using the PIL image processors", err)
        return False
    return True


def needs_video_processor(processor_cls: type) -> bool:
    return "video_processor" in processor_cls.get_attributes()


class _NoVideoProcessor:
    """Stands in for the missing video processor: images work, a video gets a clear error.

    Some processors read video defaults even for image-only calls (SmolVLM's ``apply_chat_template``
    reads ``video_processor.num_frames`` and ``.fps``); ``None`` keeps their own defaults.
    """

    num_frames = None
    fps = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("video inputs need a video processor, which needs a working torchvision; "
                           "this processor was built without one (images and text only)")


@functools.cache
def without_video(base: type) -> type:
    """A subclass of processor class ``base`` that needs no video processor (images and text only)."""
    if not needs_video_processor(base):
        return base

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, image_seq_len=None,
                 **kwargs):
        # image_seq_len is named here (not left in **kwargs) so from_pretrained passes it through for
        # SmolVLM; the Qwen processors swallow it in their **kwargs.
        if image_seq_len is not None:
            kwargs["image_seq_len"] = image_seq_len
        base.__init__(self, image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                      chat_template=chat_template, **kwargs)

    # A class attribute, not an instance one: it is not serialised by to_dict()/save_pretrained().
    cls = type(base.__name__, (base,), {"__init__": __init__, "__module__": __name__,
                                        "video_processor": _NoVideoProcessor()})
    cls.__qualname__ = _PREFIX + base.__name__
    globals()[cls.__qualname__] = cls
    return cls


def __getattr__(name: str) -> Any:
    """Resolve ``NoVideo<Base>`` for pickle in a fresh process."""
    if name.startswith(_PREFIX):
        import transformers

        base = getattr(transformers, name[len(_PREFIX):], None)
        if base is not None:
            return without_video(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def processor_class_for(config: Any) -> type | None:
    """The processor class transformers maps ``config.model_type`` to, or None for text-only models."""
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(getattr(config, "model_type", None))
    if isinstance(name, tuple):
        name = next((n for n in name if n), None)
    cls = getattr(transformers, name, None) if name else None
    if cls is not None and not (isinstance(cls, type) and hasattr(cls, "get_attributes")):
        return None  # a dummy object standing for a class whose backend is missing
    return cls


def load_processor(source: str | Path, config: Any, *, trust_remote_code: bool = False) -> Any:
    """Load the processor of a VLM folder or hub id, without torchvision when it is unusable."""
    from transformers import AutoProcessor, ProcessorMixin

    base = processor_class_for(config)
    no_video = base is not None and needs_video_processor(base)
    if no_video and not torchvision_usable():
        logger.info("torchvision unusable: loading %s without its video processor", base.__name__)
        processor = without_video(base).from_pretrained(str(source))
    else:
        try:
            processor = AutoProcessor.from_pretrained(str(source), trust_remote_code=trust_remote_code)
        except (OSError, ValueError, TypeError, AttributeError) as err:
            if not no_video:
                raise
            # A folder saved without a video processor (tiny test models, checkpoints made offline) on a
            # machine whose torchvision works: load it the way it was saved.
            logger.info("AutoProcessor failed for %s (%s); loading it without a video processor", source, err)
            processor = without_video(base).from_pretrained(str(source))
    if isinstance(processor, ProcessorMixin):
        return processor
    raise RuntimeError(
        f"{source}: AutoProcessor returned a {type(processor).__name__}, not a multimodal processor. "
        "The folder's processor_config.json / preprocessor_config.json is missing or names an unknown "
        "processor class; re-save the policy with medix_r1.models.save_policy.")


def uses_pixel_area_bounds(image_processor: Any) -> bool:
    """True for the Qwen2-VL family's image processors (Qwen2-VL, Qwen2.5-VL, Qwen3-VL), whose
    ``size["shortest_edge"]`` / ``size["longest_edge"]`` are pixel AREAS (min / max pixels). Every other
    image processor (Idefics3, SmolVLM, LLaVA ...) means edge LENGTHS in pixels by the same keys."""
    return any(".qwen2_vl." in (cls.__module__ or "") for cls in type(image_processor).__mro__)


def apply_pixel_bounds(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Give a Qwen-VL image processor the recipe's image-area bounds (``model.min_pixels`` / ``max_pixels``).

    Other processors are left as they are: their ``size`` holds edge lengths, and writing an area there
    (262,144 for 512 x 512) would make them resize to absurd sizes. Their images are still kept within the
    bounds by the training dataset, which resizes each image before the processor sees it."""
    ip = getattr(processor, "image_processor", None)
    if ip is None or not uses_pixel_area_bounds(ip):
        return
    if min_pixels is not None and hasattr(ip, "min_pixels"):
        ip.min_pixels = min_pixels
    if max_pixels is not None and hasattr(ip, "max_pixels"):
        ip.max_pixels = max_pixels
    size = getattr(ip, "size", None)
    if isinstance(size, dict):  # transformers 4.x and saved configs: a plain dict
        new = dict(size)
        if min_pixels is not None:
            new["shortest_edge"] = min_pixels
        if max_pixels is not None:
            new["longest_edge"] = max_pixels
        try:
            ip.size = new
        except Exception:  # noqa: BLE001 - some processors freeze their size; the dataset bounds still apply
            logger.debug("could not set %s.size", type(ip).__name__)
    elif hasattr(size, "shortest_edge") and hasattr(size, "longest_edge"):  # transformers 5: a SizeDict
        if min_pixels is not None:
            size.shortest_edge = min_pixels
        if max_pixels is not None:
            size.longest_edge = max_pixels
