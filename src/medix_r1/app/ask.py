"""The Ask tab's work: open an uploaded image, stream a policy's reply, parse it, score it against a reference.

- :func:`open_upload`: PNG / JPEG as they are; DICOM windowed and reduced the way the bundled data builder
  does (:func:`medix_r1.data.build_bundled.dicom_to_image` then ``shrink``).
- :class:`PolicyPool`: loads a policy on first use (never at app start) and keeps the last one; the
  embedded demo policy by default, a run's checkpoint, a local folder or hub id through
  :func:`medix_r1.models.load_policy` (``trust_remote_code`` only when asked).
- :func:`stream_reply`: yields the reply as it grows, from an in-process policy (``TextIteratorStreamer``)
  or an OpenAI-compatible endpoint (server-sent events).
- :func:`score_reply`: the composite reward of one reply through :func:`medix_r1.rewards.score_completions`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError, ServiceError, UsageError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"


def open_upload(path: str | Path):
    """An uploaded file as an RGB PIL image, and a note on how it was read (the DICOM window)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(132)
    if path.suffix.lower() in (".dcm", ".dicom") or head[128:132] == b"DICM":
        import pydicom

        from medix_r1.data.build_bundled import dicom_to_image, shrink

        try:
            ds = pydicom.dcmread(str(path))
            img, info = dicom_to_image(ds)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for a bad file
            raise InputError(f"cannot read this DICOM file: {exc}", where=path.name,
                             fix="upload a DICOM image with pixel data, or a PNG / JPEG") from None
        img = shrink(img)
        return img.convert("RGB"), f"DICOM {getattr(ds, 'Modality', '?')}, window {info.get('window', '?')}"
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"not an image this app can read ({exc})", where=path.name,
                         fix="upload a PNG, JPEG or DICOM file") from None
    return img.convert("RGB"), f"{img.format or 'image'} {img.width}x{img.height}"


_IMPORT_LOCK = threading.Lock()


def import_model_libraries() -> None:
    """Import torch and transformers (seconds of CPU on a small machine). The app calls it in the background
    once the page is up, so the first Ask spends its time loading the policy, not importing; the policy itself
    still loads on first use. One lock: transformers' lazy imports are not safe from two threads at once."""
    with _IMPORT_LOCK:
        try:
            import torch  # noqa: F401
            from transformers import AutoConfig, AutoModelForImageTextToText, TextIteratorStreamer  # noqa: F401

            import medix_r1.models.loading  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - the policy load that follows reports it properly
            log.info("importing the model libraries failed: %s", exc)


class PolicyPool:
    """One loaded in-process policy at a time, loaded on first use, shared by all sessions."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._policy = None
        self.load_seconds: float | None = None

    def get(self, source: str, trust_remote_code: bool = False):
        import_model_libraries()  # waits for the background import instead of racing it
        from medix_r1.models import embedded_policy_path, load_policy

        key = (source, trust_remote_code)
        with self._lock:
            if self._key != key:
                self._policy = None  # free the old one before loading the next
                if self.threads:
                    import torch

                    torch.set_num_threads(self.threads)
                t0 = time.perf_counter()
                target = str(embedded_policy_path()) if source == EMBEDDED else source
                try:
                    self._policy = load_policy(target, trust_remote_code=trust_remote_code)
                except Exception as exc:  # noqa: BLE001 - shown in the page, with the loader's own message
                    raise UsageError(f"cannot load policy {source!r}: {exc}",
                                     fix="pick the embedded policy, a run's checkpoint, a model folder or a "
                                         "hub id that is in the local cache") from None
                self._key = key
                self.load_seconds = time.perf_counter() - t0
                log.info("loaded policy %s in %.1f s", source, self.load_seconds)
            return self._policy

    def warm(self, source: str = EMBEDDED) -> None:
        """Start loading in the background (the Ask tab calls this when an image is uploaded)."""
        threading.Thread(target=self._warm, args=(source,), daemon=True).start()

    def _warm(self, source: str) -> None:
        try:
            self.get(source)
        except Exception as exc:  # noqa: BLE001 - the Ask button reports it properly
            log.info("background load of %s failed: %s", source, exc)


def build_messages(question: str, has_image: bool, template: str = "medix") -> list[dict]:
    """The training template's chat messages for one question (the policy was trained on this shape)."""
    from medix_r1.data import Sample
    from medix_r1.prompts import get_template

    sample = Sample(id="ask", question=question, answer="-", images=["upload"] if has_image else [])
    return get_template(template).render(sample)


def stream_local(policy, question: str, image, *, max_new_tokens: int = 128,
                 threads: int | None = None) -> Iterator[str]:
    """Yield the growing reply of an in-process policy (greedy), generating with ``threads`` CPU threads."""
    import torch
    from transformers import TextIteratorStreamer

    from medix_r1.models.generation import flatten_messages

    messages = build_messages(question, image is not None and policy.is_vlm)
    if policy.is_vlm:
        text = policy.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if image is not None:
            kwargs["images"] = [[image]]
        batch = policy.processor(**kwargs)
    else:
        tok = policy.tokenizer
        text = tok.apply_chat_template(flatten_messages(messages), add_generation_prompt=True, tokenize=False)
        batch = tok([text], return_tensors="pt", add_special_tokens=False)
    model = policy.model
    batch = {k: (v.to(model.device, dtype=model.dtype) if v.is_floating_point() else v.to(model.device))
             for k, v in batch.items() if isinstance(v, torch.Tensor)}
    streamer = TextIteratorStreamer(policy.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if threads:  # OpenMP's thread count is per thread: set it where generation runs
                torch.set_num_threads(threads)
            with torch.inference_mode():
                model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                               top_p=None, top_k=None, pad_token_id=policy.tokenizer.pad_token_id, streamer=streamer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            failure.append(exc)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    reply = ""
    for piece in streamer:
        reply += piece
        yield reply
    thread.join()
    if failure:
        raise ServiceError(f"generation failed: {failure[0]}")


def stream_openai(url: str, model: str, question: str, image, *, max_new_tokens: int = 128,
                  timeout: float = 120.0) -> Iterator[str]:
    """Yield the growing reply of an OpenAI-compatible chat endpoint (``stream: true``)."""
    import base64
    import io

    import httpx

    messages = build_messages(question, image is not None)
    if image is not None:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        for m in messages:
            if isinstance(m["content"], list):
                m["content"] = [{"type": "image_url", "image_url": {"url": data_url}} if p.get("type") == "image"
                                else p for p in m["content"]]
    headers = {}
    if os.environ.get("MEDIX_MODEL_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['MEDIX_MODEL_API_KEY']}"
    body = {"model": model, "messages": messages, "max_tokens": max_new_tokens, "temperature": 0.0,
            "stream": True}
    reply = ""
    try:
        with httpx.stream("POST", url.rstrip("/") + "/chat/completions", json=body, headers=headers,
                          timeout=timeout) as resp:
            if resp.status_code != 200:
                resp.read()
                raise ServiceError(f"the endpoint answered HTTP {resp.status_code}: {resp.text[:200]}", where=url)
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                resp.read()  # a server that ignores "stream" answers with one JSON body
                yield resp.json()["choices"][0]["message"]["content"] or ""
                return
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                delta = (json.loads(data).get("choices") or [{}])[0].get("delta", {}).get("content")
                if delta:
                    reply += delta
                    yield reply
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach the endpoint: {exc}", where=url,
                           fix="check that the server runs and that the URL ends in /v1") from None


def score_reply(reply: str, reference: str, question: str, *, modality: str | None = None,
                judge_url: str | None = None, judge_model: str | None = None) -> dict:
    """The composite reward of one reply: each component, the judge's raw reply and status (the guard's
    decision shows as status ``injection``), and the total."""
    import_model_libraries()  # the judge and the embedder import transformers: not alongside the background import
    from medix_r1.rewards import JudgeConfig, RewardConfig, score_completions

    judge = (JudgeConfig(backend="openai", url=judge_url, model=judge_model or None, max_retries=0)
             if judge_url else JudgeConfig(backend="local", model=judge_model or None))
    config = RewardConfig(judge=judge)
    row = {"completion": reply, "reference": reference.strip(), "question": question}
    if modality:
        row["modality"] = modality
    return score_completions([row], config, details=True)[0]


__all__ = ["EMBEDDED", "PolicyPool", "build_messages", "open_upload", "score_reply", "stream_local",
           "stream_openai"]
