"""Judge backend that runs a transformers causal LM in this process: the offline, embedded judge.

The default is the bundled SmolLM2-135M-Instruct (``medix_r1.models.bundled.smollm2_path()``). It is a weak
judge: on 24 labelled grading cases it scored ROC-AUC 0.54 zero-shot (it says NO to everything) and 0.75 with
four worked examples in the prompt (offline.md). So the reward uses the few-shot prompts with it
(:attr:`prefers_few_shot`), and loading it logs a warning. It exists to exercise the whole reward path
offline and in CI, never to make claims about answer quality; use a served Qwen3 judge for that.

Requests that arrive together are generated as one left-padded batch (greedy), which is several times
faster on CPU than one at a time. Generation runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from medix_r1.judge.base import BackendError, ChatBackend

log = logging.getLogger(__name__)

WEAK_JUDGE_WARNING = (
    "the local judge %s is a weak judge (SmolLM2-135M-Instruct: ROC-AUC 0.54 zero-shot, 0.75 with 4 worked "
    "examples on 24 labelled cases, offline.md). Its verdicts exercise the reward path; they say little about "
    "answer quality. Serve a real judge (e.g. `vllm serve Qwen/Qwen3-4B-Instruct-2507`) for real runs.")
_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct", "local")


def resolve_local_model(model: str | Path) -> str:
    """Map ``"smollm2"`` to the bundled SmolLM2 folder; pass paths and hub ids through."""
    if str(model).lower() in _ALIASES:
        try:
            from medix_r1.models.bundled import smollm2_path
        except ImportError as exc:
            raise BackendError(f"the bundled SmolLM2 judge is not available ({exc}); pass a model path "
                               f"or hub id to the local judge instead") from exc
        return str(smollm2_path())
    return str(model)


class LocalChatBackend(ChatBackend):
    """An in-process chat model. ``model``: ``"smollm2"`` (bundled), a folder, or a hub id (cached).

    The model is loaded on first use. ``max_batch_size`` requests are generated together.
    """

    prefers_few_shot = True

    def __init__(self, model: str | Path = "smollm2", *, device: str = "cpu", max_batch_size: int = 8,
                 batch_wait_s: float = 0.002, trust_remote_code: bool = False):
        self.model_spec = str(model)
        self.model_name = "smollm2-135m-instruct" if str(model).lower() in _ALIASES else str(model)
        self.device = device
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_wait_s = batch_wait_s
        self.trust_remote_code = trust_remote_code
        self._model = None
        self._tokenizer = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # one generate() at a time: the model is not re-entrant
        self._queues: dict[int, tuple[asyncio.AbstractEventLoop, list, list]] = {}

    def describe(self) -> str:
        return f"local judge {self.model_name!r} (transformers, {self.device})"

    def how_to_fix(self) -> str:
        return ("the local judge model failed to load or generate: check the model path and its log; or serve a "
                "judge and pass --judge-url/--judge-model")

    # ----------------------------------------------------------------------------------------- loading
    def load(self) -> None:
        """Load tokenizer and model now (otherwise on the first request)."""
        with self._load_lock:
            if self._model is not None:
                return
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                path = resolve_local_model(self.model_spec)
                tok = AutoTokenizer.from_pretrained(path, trust_remote_code=self.trust_remote_code)
                tok.padding_side = "left"
                if tok.pad_token is None:
                    tok.pad_token = tok.eos_token
                model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=self.trust_remote_code,
                                                             dtype=torch.float32)
                model.to(self.device).eval()
            except BackendError:
                raise
            except Exception as exc:  # loading raises many types (OSError, ValueError, ...): name the model
                raise BackendError(f"cannot load the local judge model {self.model_spec!r}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            if "smollm" in self.model_name.lower() or "smollm" in str(path).lower():
                log.warning(WEAK_JUDGE_WARNING, self.model_name)
            self._tokenizer, self._model = tok, model

    async def check(self) -> None:
        await asyncio.to_thread(self.load)

    # ----------------------------------------------------------------------------------------- generation
    def generate_batch(self, conversations: list[list[dict]], max_tokens: int) -> list[str]:
        """Greedy replies for several chats at once (blocking)."""
        import torch

        self.load()
        tok, model = self._tokenizer, self._model
        texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in conversations]
        with self._gen_lock, torch.inference_mode():
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return [s.strip() for s in tok.batch_decode(new, skip_special_tokens=True)]

    async def complete(self, messages: list[dict], *, max_tokens: int, temperature: float = 0.0) -> str:
        loop = asyncio.get_running_loop()
        entry = self._queues.get(id(loop))
        if entry is None or entry[0] is not loop:
            entry = (loop, [], [False])
            self._queues[id(loop)] = entry
        _, queue, running = entry
        fut = loop.create_future()
        queue.append((messages, max_tokens, fut))
        if not running[0]:
            running[0] = True
            loop.create_task(self._drain(queue, running))
        return await fut

    async def _drain(self, queue: list, running: list) -> None:
        """Take queued requests in batches (same max_tokens) and generate them in a worker thread."""
        try:
            while queue:
                await asyncio.sleep(self.batch_wait_s)  # let requests issued together join one batch
                max_tokens = queue[0][1]
                batch = [q for q in queue if q[1] == max_tokens][: self.max_batch_size]
                for q in batch:
                    queue.remove(q)
                live = [q for q in batch if not q[2].done()]
                if not live:
                    continue
                try:
                    replies = await asyncio.to_thread(self.generate_batch, [q[0] for q in live], max_tokens)
                except BackendError as exc:
                    for q in live:
                        if not q[2].done():
                            q[2].set_exception(exc)
                    continue
                except Exception as exc:  # a generation bug must fail these requests, not hang them
                    err = BackendError(f"local judge generation failed: {type(exc).__name__}: {exc}")
                    for q in live:
                        if not q[2].done():
                            q[2].set_exception(err)
                    continue
                for q, r in zip(live, replies):
                    if not q[2].done():
                        q[2].set_result(r)
        finally:
            running[0] = False
