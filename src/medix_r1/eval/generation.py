"""Eval generation: how a sample becomes a chat prompt, and the three generator backends.

Prompts (:func:`build_messages`): by default a plain prompt (no training template): the images, then the
question with MCQ options as ``Choices:`` lines ``A. ...``, then the task's instruction if it has one.
``template="medix"`` (or another template name) uses the MediX training template instead. Either way an
optional system prompt comes first. The ``paper`` protocol (:mod:`medix_r1.eval.protocol`) is the release's
prompt: no system prompt, no template, no instruction, a blank line before ``Choices:``.

Backends, all behind :class:`Generator` (``name``, ``batch_size``, ``concurrency``, ``generate(batch)``):

- :class:`ChatGenerator`: any :class:`~medix_r1.clients.base.ChatBackend`; with
  :class:`~medix_r1.clients.openai.OpenAIChatBackend` that is any OpenAI-compatible endpoint (``vllm serve``...),
  one request per sample, ``concurrency`` in flight, images as base64 JPEG data URLs;
- :class:`TransformersGenerator`: in-process transformers through :func:`medix_r1.models.generate_chat`
  (any model :func:`medix_r1.models.load_policy` loads), batched, in a worker thread;
- :class:`VLLMGenerator`: vLLM's offline engine (the ``gpu`` extra; imported only when used).

Greedy decoding and 2,048 new tokens by default (reference protocol).
"""

from __future__ import annotations

import abc
import asyncio
import base64
import hashlib
import importlib.util
import io
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from medix_r1.data.schema import Sample
from medix_r1.errors import ServiceError, UsageError
from medix_r1.eval.protocol import DEFAULT, Protocol
from medix_r1.eval.taskspec import PromptSpec
from medix_r1.prompts import PromptTemplate, get_template

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 2048
PLAIN_PROMPT_VERSION = "plain-v1"
PAPER_PROMPT_VERSION = "paper-v1"
_PLAIN = PromptTemplate()  # only its question_text() is used: one definition of the "Choices:" lines


# --------------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class PromptOptions:
    """Run-level prompt settings. ``template=None`` is the reference protocol's plain prompt."""

    template: str | None = None
    system_prompt: str | None = None
    protocol: Protocol = DEFAULT

    def __post_init__(self) -> None:
        if not self.protocol.allows_template and (self.template or self.system_prompt):
            flag = "--template" if self.template else "--system-prompt"
            raise UsageError(f"the {self.protocol.name} protocol has no training template and no system prompt",
                             where=flag, fix=f"drop {flag}, or use --protocol default")

    @property
    def version(self) -> str:
        if not self.protocol.allows_template:
            return PAPER_PROMPT_VERSION
        base = get_template(self.template).version if self.template else PLAIN_PROMPT_VERSION
        if self.system_prompt:
            base += "+sys-" + hashlib.sha256(self.system_prompt.encode()).hexdigest()[:8]
        return base

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "system_prompt": self.system_prompt, "version": self.version}


def paper_question_text(sample: Sample) -> str:
    """The release's text of a question: ``question + "\\n\\nChoices:" + "\\nA. opt"...``; the options keep
    their letters (an empty option was skipped when the task was loaded).

    >>> paper_question_text(Sample(id="1", question="Which organ?", answer="Liver",
    ...                            options={"A": "Liver", "C": "Lung"}))
    'Which organ?\\n\\nChoices:\\nA. Liver\\nC. Lung'
    """
    text = sample.question
    if sample.options:
        text += "\n\nChoices:" + "".join(f"\n{k}. {v}" for k, v in sample.options.items())
    return text


def question_text(sample: Sample, protocol: Protocol = DEFAULT) -> str:
    """The question as the generator reads it (with its choices), which the judge sees as well."""
    return paper_question_text(sample) if protocol.blank_line_before_choices else _PLAIN.question_text(sample)


def shown_images(task: str, images: list, protocol: Protocol = DEFAULT) -> list:
    """The images a prompt shows: all of them, or the first only for the protocol's first-image tasks."""
    if images and any(task.startswith(p) for p in protocol.first_image_only):
        return images[:1]
    return images


def build_messages(sample: Sample, task_prompt: PromptSpec | None = None,
                   options: PromptOptions | None = None, n_images: int | None = None) -> list[dict[str, Any]]:
    """Chat messages for one sample, with ``{"type": "image"}`` placeholders where the images go
    (``n_images`` of them when the protocol shows fewer images than the sample has).

    >>> msgs = build_messages(Sample(id="1", question="Which organ?", answer="Liver", options=["Liver", "Lung"]))
    >>> msgs[-1]["content"][-1]["text"]
    'Which organ?\\nChoices:\\nA. Liver\\nB. Lung'
    """
    task_prompt = task_prompt or PromptSpec()
    options = options or PromptOptions()
    if not options.protocol.allows_template:  # the paper's prompt: images, then the question text, nothing else
        content = [{"type": "image"} for _ in range(n_images if n_images is not None else len(sample.images))]
        content.append({"type": "text", "text": paper_question_text(sample)})
        return [{"role": "user", "content": content}]
    system = options.system_prompt or task_prompt.system
    if options.template or task_prompt.style == "template":
        template = get_template(options.template or "medix")
        if system:
            template = template.with_overrides(system_prompt=system)
        messages = template.render(sample)
        if task_prompt.instruction:
            last = messages[-1]["content"]
            last[-1] = {"type": "text", "text": f"{last[-1]['text']}\n{task_prompt.instruction}"}
        return messages
    text = _PLAIN.question_text(sample)
    if task_prompt.instruction:
        text = f"{text}\n{task_prompt.instruction}"
    content: list[dict[str, Any]] = [{"type": "image"}
                                     for _ in range(n_images if n_images is not None else len(sample.images))]
    content.append({"type": "text", "text": text})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return messages


def image_data_url(image: Any, *, quality: int = 90) -> str:
    """A PIL image as a ``data:image/jpeg;base64,...`` URL (what OpenAI-compatible servers accept)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_roundtrip(image: Any, quality: int) -> Any:
    """The image as a server decodes it after a JPEG upload at ``quality`` (for in-process generators)."""
    from PIL import Image

    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def to_openai_messages(messages: list[dict[str, Any]], images: list[Any], *,
                       jpeg_quality: int = 90) -> list[dict[str, Any]]:
    """Replace image placeholders (in order) by ``image_url`` parts; text-only messages become strings."""
    it = iter(images)
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        parts = []
        for p in content:
            if p.get("type") == "image":
                try:
                    img = next(it)
                except StopIteration:
                    raise ValueError("more image placeholders than images") from None
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(img, quality=jpeg_quality)}})
            else:
                parts.append(p)
        if all(p.get("type") == "text" for p in parts):
            out.append({"role": m["role"], "content": "\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": m["role"], "content": parts})
    return out


# --------------------------------------------------------------------------------------------- generators
@dataclass
class GenRequest:
    """One prompt to answer: chat messages with image placeholders, and the decoded images in order."""

    task: str
    id: str
    messages: list[dict[str, Any]]
    images: list[Any] = field(default_factory=list)


class Generator(abc.ABC):
    """Something that answers eval prompts. ``generate`` gets ``batch_size`` requests at a time, and at most
    ``concurrency`` calls run at once; it returns one reply per request or raises for the whole batch."""

    name: str = "model"
    backend: str = ""
    batch_size: int = 1
    concurrency: int = 1
    jpeg_quality: int = 90
    """JPEG quality of images sent over HTTP (the paper protocol sets 75)."""
    top_p: float | None = None
    """Sent with each request when set (the paper protocol sets 1.0)."""

    @abc.abstractmethod
    async def generate(self, batch: list[GenRequest], *, max_new_tokens: int, temperature: float) -> list[str]:
        ...

    def configure(self, protocol: Protocol) -> None:
        """Take the protocol's image encoding and sampling settings."""
        self.jpeg_quality = protocol.jpeg_quality
        self.top_p = protocol.top_p

    async def prepare(self) -> None:
        """Load or reach the model before any sample is sent; raise a clear error when it cannot be used."""

    async def aclose(self) -> None:
        """Release connections or models."""

    def describe(self) -> str:
        return f"{self.backend} generator for {self.name!r}"

    def how_to_fix(self) -> str:
        return "check the model backend's logs"

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "describe": self.describe()}


class ChatGenerator(Generator):
    """Generation through a :class:`~medix_r1.judge.base.ChatBackend` (e.g. an OpenAI-compatible endpoint)."""

    backend = "openai"

    def __init__(self, chat_backend: Any, *, concurrency: int = 16, name: str | None = None):
        self.chat = chat_backend
        self.name = name or chat_backend.model_name
        self.concurrency = max(1, int(concurrency))
        self.batch_size = 1

    async def generate(self, batch: list[GenRequest], *, max_new_tokens: int, temperature: float) -> list[str]:
        out = []
        for req in batch:
            # JPEG + base64 of large images takes milliseconds: off the event loop, like the decoding.
            messages = (await asyncio.to_thread(to_openai_messages, req.messages, req.images,
                                                jpeg_quality=self.jpeg_quality) if req.images
                        else to_openai_messages(req.messages, req.images))
            out.append(await self.chat.complete(messages, max_tokens=max_new_tokens, temperature=temperature))
        return out

    def configure(self, protocol: Protocol) -> None:
        super().configure(protocol)
        if self.top_p is not None and hasattr(self.chat, "extra_body"):
            self.chat.extra_body["top_p"] = self.top_p  # sent with every request of this backend

    async def prepare(self) -> None:
        url = getattr(self.chat, "base_url", None)
        if url:
            await check_endpoint(self.chat, role="generator")

    async def aclose(self) -> None:
        await self.chat.aclose()

    def describe(self) -> str:
        return f"chat endpoint {self.chat.describe() if hasattr(self.chat, 'describe') else self.name}"

    def how_to_fix(self) -> str:
        url = getattr(self.chat, "base_url", None)
        return (f"is the model server running at {url}, serving {self.name!r}? (e.g. `vllm serve MODEL "
                f"--host 127.0.0.1 --port 8001`; pass --model-url and --model to match)" if url
                else "check the chat backend")


_ROLE_FLAGS = {"generator": ("--model-url", "--model", "model server"),
               "judge": ("--judge-url", "--judge-model", "judge server")}
DEFAULT_EVAL_JUDGE = "Qwen/Qwen3-14B"  # the release eval kit's judge


async def check_endpoint(backend: Any, *, role: str) -> list[str]:
    """GET ``/models`` of an OpenAI-compatible backend and check it serves the requested model.

    Raises :class:`~medix_r1.errors.ServiceError` naming the role's own flags (``--model-url``/``--model``
    for the generator, ``--judge-url``/``--judge-model`` for the judge). Returns the served model ids.
    """
    import httpx

    url_flag, model_flag, what = _ROLE_FLAGS[role]
    base = backend.base_url
    start = ("`vllm serve MODEL --host 127.0.0.1 --port 8001`" if role == "generator"
             else f"`vllm serve {DEFAULT_EVAL_JUDGE} --host 127.0.0.1 --port 8000`, or use --judge local")
    from medix_r1.clients.base import BackendError
    from medix_r1.clients.openai import shared_ssl_context

    headers = backend._headers() if hasattr(backend, "_headers") else {}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=min(backend.timeout, 10.0),
                                     verify=shared_ssl_context()) as client:
            resp = await client.get("/models")
    except (httpx.HTTPError, OSError) as exc:
        raise ServiceError(f"cannot reach the {what} at {base} ({type(exc).__name__}: {exc or 'no answer'})",
                           where=url_flag, fix=f"start it (e.g. {start}) or pass the right {url_flag}") from None
    if resp.status_code >= 400:
        raise ServiceError(f"the {what} at {base} answered HTTP {resp.status_code} to GET /models: "
                           f"{resp.text[:160]}", where=url_flag, fix=f"check {url_flag} (it ends in /v1)")
    try:
        served = [m.get("id") for m in resp.json().get("data", [])]
    except (ValueError, AttributeError):
        return []  # some proxies do not list models; the first request will tell
    if served and backend.model_name not in served:
        raise ServiceError(f"the {what} at {base} serves {', '.join(map(repr, served))}, not "
                           f"{backend.model_name!r}", where=model_flag,
                           fix=f"pass {model_flag} {served[0]}, or serve {backend.model_name} there")
    try:
        if not served:  # the client must learn that this server loads models on demand (it lists none)
            await backend.check()
    except BackendError as exc:
        raise ServiceError(f"the {what} at {base}: {exc.what}", where=url_flag,
                           fix=f"check {url_flag} and {model_flag}") from None
    return served


def openai_generator(base_url: str, model: str, *, concurrency: int = 16, timeout: float = 600.0,
                     max_retries: int = 2, api_key_env: str = "MEDIX_MODEL_API_KEY") -> ChatGenerator:
    """A generator for any OpenAI-compatible endpoint (the API key, if any, comes from ``api_key_env``)."""
    from medix_r1.clients.openai import OpenAIChatBackend

    # No chat_template_kwargs for the policy: its own chat template decides whether it thinks.
    backend = OpenAIChatBackend(base_url, model, api_key_env=api_key_env, timeout=timeout,
                                max_retries=max_retries, concurrency=concurrency, disable_thinking=False,
                                role="policy")
    return ChatGenerator(backend, concurrency=concurrency, name=model)


class TransformersGenerator(Generator):
    """In-process generation with a policy loaded by :func:`medix_r1.models.load_policy` (or given loaded)."""

    backend = "transformers"

    def __init__(self, model: Any, *, batch_size: int = 4, trust_remote_code: bool = False,
                 name: str | None = None, seed: int | None = 0):
        self._policy = None if isinstance(model, str) else model
        self._spec = model if isinstance(model, str) else None
        self.name = name or (model if isinstance(model, str) else getattr(model, "name", "policy"))
        self.batch_size = max(1, int(batch_size))
        self.concurrency = 1  # one model, one batch at a time
        self.trust_remote_code = trust_remote_code
        self.seed = seed  # only matters when sampling (temperature > 0): the same run samples the same text

    @property
    def policy(self):
        if self._policy is None:
            from medix_r1.models import load_policy

            self._policy = load_policy(self._spec, trust_remote_code=self.trust_remote_code)
        return self._policy

    def _run(self, batch: list[GenRequest], max_new_tokens: int, temperature: float) -> list[str]:
        from medix_r1.models import generate_chat

        policy = self.policy
        images = [r.images for r in batch]
        if self.simulate_upload:  # the paper's JPEG upload, as a server would decode it
            images = [[jpeg_roundtrip(im, self.jpeg_quality) for im in ims] for ims in images]
        kwargs = {"top_p": self.top_p} if self.top_p is not None and temperature > 0 else {}
        return generate_chat(policy, [r.messages for r in batch], images,
                             max_new_tokens=max_new_tokens, temperature=temperature, batch_size=self.batch_size,
                             seed=self.seed, **kwargs)

    simulate_upload = False

    def configure(self, protocol: Protocol) -> None:
        super().configure(protocol)
        self.simulate_upload = protocol.name == "paper"

    def _load(self) -> None:
        from medix_r1.models.loading import PolicyNotFoundError

        try:
            self.policy  # noqa: B018 - loads the model
        except PolicyNotFoundError as exc:
            raise UsageError(f"cannot find the model to evaluate: {exc}", where="--model",
                             fix="pass a model alias (`embedded`), a model folder or a hub id; for a served "
                                 "model add --model-url") from None

    async def prepare(self) -> None:
        await asyncio.to_thread(self._load)

    async def generate(self, batch: list[GenRequest], *, max_new_tokens: int, temperature: float) -> list[str]:
        return await asyncio.to_thread(self._run, batch, max_new_tokens, temperature)

    def describe(self) -> str:
        return f"in-process transformers model {self.name!r}"

    def how_to_fix(self) -> str:
        return "see the error above (out of memory? a bad image for this processor?); rerun with -v for details"


class GeneratorUnavailable(UsageError, RuntimeError):
    """A generation backend cannot be used here (e.g. vLLM is not installed); the message says what to do."""


def _vllm_installed() -> bool:
    if sys.modules.get("vllm") is not None:
        return True
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


_NO_VLLM = ("the vLLM backend needs vLLM on a GPU machine: pip install 'medix-r1[gpu]'; or serve the model "
            "(e.g. `vllm serve MODEL`) and pass --model-url")


class VLLMGenerator(Generator):
    """vLLM's offline engine: the whole batch goes to ``LLM.chat`` (vLLM schedules it). GPU only."""

    backend = "vllm"

    def __init__(self, model: str, *, batch_size: int = 256, tensor_parallel_size: int = 1,
                 trust_remote_code: bool = False, max_model_len: int | None = None,
                 engine_kwargs: dict[str, Any] | None = None):
        self.name = model
        self.batch_size = max(1, int(batch_size))
        self.concurrency = 1
        self._kwargs = {"model": model, "tensor_parallel_size": tensor_parallel_size,
                        "trust_remote_code": trust_remote_code, **(engine_kwargs or {})}
        if max_model_len:
            self._kwargs["max_model_len"] = max_model_len
        self._llm = None
        if not _vllm_installed():  # fail now, not after loading every task's data
            raise GeneratorUnavailable(_NO_VLLM, where="--backend vllm")

    def _engine(self):
        if self._llm is None:
            try:
                import vllm
            except ImportError as exc:
                raise GeneratorUnavailable(f"{_NO_VLLM} (import failed: {exc})", where="--backend vllm") from exc
            self._vllm = vllm
            self._llm = vllm.LLM(**self._kwargs)
        return self._llm

    def _run(self, batch: list[GenRequest], max_new_tokens: int, temperature: float) -> list[str]:
        llm = self._engine()
        extra = {"top_p": self.top_p} if self.top_p is not None else {}
        params = self._vllm.SamplingParams(temperature=temperature, max_tokens=max_new_tokens, **extra)
        convs = [to_openai_messages(r.messages, r.images, jpeg_quality=self.jpeg_quality) for r in batch]
        outputs = llm.chat(convs, params, use_tqdm=False)
        return [o.outputs[0].text if o.outputs else "" for o in outputs]

    async def generate(self, batch: list[GenRequest], *, max_new_tokens: int, temperature: float) -> list[str]:
        return await asyncio.to_thread(self._run, batch, max_new_tokens, temperature)

    def describe(self) -> str:
        return f"vLLM offline engine for {self.name!r}"


def make_generator(model: Any, *, backend: str = "auto", model_url: str | None = None, concurrency: int = 16,
                   batch_size: int | None = None, trust_remote_code: bool = False, timeout: float = 600.0,
                   max_retries: int = 2) -> Generator:
    """Build a generator: ``backend`` is ``openai`` (needs ``model_url``), ``transformers``, ``vllm`` or
    ``auto`` (openai when a URL is given, else transformers). ``model`` may also be a loaded policy or a
    ready :class:`Generator`."""
    if isinstance(model, Generator):
        return model
    if backend == "auto":
        backend = "openai" if model_url else "transformers"
    if backend == "openai":
        if not model_url:
            raise UsageError("the openai generator needs the server's URL", where="--backend openai",
                             fix="add --model-url (e.g. http://127.0.0.1:8001/v1)")
        return openai_generator(model_url, str(model), concurrency=concurrency, timeout=timeout,
                                max_retries=max_retries)
    if backend == "transformers":
        return TransformersGenerator(model, batch_size=batch_size or 4, trust_remote_code=trust_remote_code)
    if backend == "vllm":
        return VLLMGenerator(str(model), batch_size=batch_size or 256, trust_remote_code=trust_remote_code)
    raise UsageError(f"unknown generation backend {backend!r}", where="--backend",
                     fix="use one of: auto, openai, transformers, vllm")


__all__ = [
    "DEFAULT_EVAL_JUDGE",
    "DEFAULT_MAX_NEW_TOKENS",
    "ChatGenerator",
    "GenRequest",
    "Generator",
    "GeneratorUnavailable",
    "PromptOptions",
    "TransformersGenerator",
    "VLLMGenerator",
    "build_messages",
    "check_endpoint",
    "image_data_url",
    "jpeg_roundtrip",
    "make_generator",
    "openai_generator",
    "paper_question_text",
    "question_text",
    "shown_images",
    "to_openai_messages",
]
