"""Batched chat generation with a loaded policy (evaluation and the local judge use it).

Conversations use the message format of :mod:`medix_r1.prompts.template`: each message's ``content`` is a
string or a list of ``{"type": "text", "text": ...}`` and ``{"type": "image"}`` parts, and the images for
conversation ``i`` are given in ``images[i]``, in placeholder order. For VLMs the processor renders the chat
template and expands image placeholders into image tokens; for text-only LMs the contents are flattened to
strings and image placeholders are dropped.

>>> policy = load_policy("embedded")                                          # doctest: +SKIP
>>> generate_chat(policy, [[{"role": "user", "content": "Name a bone."}]])    # doctest: +SKIP
['The femur ...']
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from medix_r1.models.loading import LoadedPolicy

logger = logging.getLogger(__name__)

Message = dict[str, Any]


def count_image_parts(conversation: Sequence[Message]) -> int:
    return sum(1 for m in conversation if not isinstance(m.get("content"), str)
               for part in m["content"] if part.get("type") in ("image", "image_url"))


def flatten_messages(conversation: Sequence[Message]) -> list[dict[str, str]]:
    """String contents for text-only models: text parts joined by newlines, image parts dropped."""
    out = []
    for m in conversation:
        content = m["content"]
        if not isinstance(content, str):
            content = "\n".join(p["text"] for p in content if p.get("type") == "text")
        out.append({"role": m["role"], "content": content})
    return out


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed sampling without disturbing the caller's global RNG state."""
    if seed is None:
        yield
        return
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _encode_vlm(policy: LoadedPolicy, convs: Sequence[Sequence[Message]], imgs: Sequence[list]) -> Any:
    processor = policy.processor
    texts = [processor.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False) for c in convs]
    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
    if any(imgs):
        # One list per conversation (possibly empty), so the processor knows whose image is whose.
        kwargs["images"] = [list(g) for g in imgs]
    return processor(**kwargs)


def _encode_text(policy: LoadedPolicy, convs: Sequence[Sequence[Message]]) -> Any:
    tok = policy.tokenizer
    texts = [tok.apply_chat_template(flatten_messages(c), add_generation_prompt=True, tokenize=False)
             for c in convs]
    # The chat template already wrote the BOS/role tokens.
    return tok(texts, padding=True, return_tensors="pt", add_special_tokens=False)


def generate_chat(policy: LoadedPolicy, conversations: Sequence[Sequence[Message]],
                  images: Sequence[Sequence[Any]] | None = None, *, max_new_tokens: int = 256,
                  temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                  batch_size: int = 8) -> list[str]:
    """Generate one reply per conversation; return only the new text, special tokens removed.

    Greedy when ``temperature == 0``, otherwise sampled with ``temperature`` and ``top_p`` (reproducible
    with ``seed``). Prompts are left-padded and run ``batch_size`` at a time.
    """
    import torch

    n = len(conversations)
    images = [list(g or []) for g in images] if images is not None else [[] for _ in range(n)]
    if len(images) != n:
        raise ValueError(f"generate_chat: {n} conversations but {len(images)} image lists; give one "
                         "(possibly empty) image list per conversation")
    for i, (conv, imgs) in enumerate(zip(conversations, images)):
        placeholders = count_image_parts(conv)
        if policy.is_vlm and placeholders != len(imgs):
            raise ValueError(f"generate_chat: conversation {i} has {placeholders} image placeholder(s) but "
                             f"{len(imgs)} image(s) were given for it")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"generate_chat: need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    if batch_size < 1:
        raise ValueError(f"generate_chat: batch_size must be >= 1, got {batch_size}")

    tok = policy.tokenizer
    tok.padding_side = "left"
    model = policy.model
    gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
    if temperature > 0:
        gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    else:
        gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

    outputs: list[str] = []
    start, new_tokens = time.perf_counter(), 0
    with _seeded(seed), torch.inference_mode():
        for lo in range(0, n, batch_size):
            convs, imgs = conversations[lo:lo + batch_size], images[lo:lo + batch_size]
            batch = _encode_vlm(policy, convs, imgs) if policy.is_vlm else _encode_text(policy, convs)
            batch = {k: (v.to(model.device, dtype=model.dtype) if v.is_floating_point() else v.to(model.device))
                     for k, v in batch.items() if isinstance(v, torch.Tensor)}
            out = model.generate(**batch, **gen_kwargs)
            new = out[:, batch["input_ids"].shape[1]:]
            new_tokens += int((new != tok.pad_token_id).sum())
            outputs.extend(tok.batch_decode(new, skip_special_tokens=True))
    elapsed = time.perf_counter() - start
    logger.debug("generated %d replies, %d tokens in %.1f s", n, new_tokens, elapsed)
    return outputs
