"""Judge backend that runs a transformers causal LM in this process: the offline, embedded judge.

The default is the bundled SmolLM2-135M-Instruct (``medix_r1.models.bundled.smollm2_path()``). It is a weak
judge: on 24 labelled grading cases it scored ROC-AUC 0.54 zero-shot (it says NO to everything) and 0.75 with
four worked examples in the prompt. So the reward uses the few-shot prompts with it
(:attr:`prefers_few_shot`), and loading it logs a warning. It exists to exercise the whole reward path
offline and in CI, never to make claims about answer quality; use a served Qwen3 judge for that.

Requests that arrive together run as one left-padded batch, in a worker thread so the event loop stays free.
For prompts with a few fixed replies (YES/NO) the backend does not generate: one forward pass scores each
choice's first token and the likeliest choice is the reply (:meth:`LocalChatBackend.choose_batch`).
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
    "examples on 24 labelled cases). Its verdicts exercise the reward path; they say little about "
    "answer quality. Serve a real judge (e.g. `vllm serve Qwen/Qwen3-4B-Instruct-2507`) for real runs.")
_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct", "local")


class LocalChatBackend(ChatBackend):
    """An in-process chat model. ``model``: ``"smollm2"`` (bundled), any alias or folder that
    :func:`medix_r1.models.load_policy` takes, or a cached hub id.

    The model is loaded on first use. ``max_batch_size`` requests are generated together.
    """

    prefers_few_shot = True
    supports_choices = True

    def __init__(self, model: str | Path = "smollm2", *, device: str = "cpu", max_batch_size: int = 8,
                 batch_wait_s: float = 0.002, trust_remote_code: bool = False):
        self.model_spec = str(model)
        self.model_name = "smollm2-135m-instruct" if str(model).lower() in _ALIASES else str(model)
        self.device = device
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_wait_s = batch_wait_s
        self.trust_remote_code = trust_remote_code
        self._policy = None
        self._prefix_cache: dict[str, tuple[object, int]] = {}
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # one generate() at a time: the model is not re-entrant
        self._queues: dict[int, tuple[asyncio.AbstractEventLoop, list, list]] = {}

    def describe(self) -> str:
        return f"local judge {self.model_name!r} (transformers, {self.device})"

    def how_to_fix(self) -> str:
        return ("the local judge model failed to load or generate: check the model path and its log; or serve a "
                "judge and point medix-r1 at it: for medix-r1 score or eval, --judge-url and --judge-model; in a "
                "training recipe, reward.judge.url and reward.judge.model")

    # ----------------------------------------------------------------------------------------- loading
    def load(self) -> None:
        """Load the model now (otherwise on the first request), through the package's one model loader."""
        with self._load_lock:
            if self._policy is not None:
                return
            from medix_r1.models import load_policy

            spec = "smollm2" if self.model_spec.lower() in _ALIASES else self.model_spec
            try:
                policy = load_policy(spec, trust_remote_code=self.trust_remote_code, dtype="float32",
                                     device=self.device)
            except Exception as exc:  # loading raises many types (OSError, ValueError, ...): name the model
                raise BackendError(f"cannot load the local judge model {self.model_spec!r}: "
                                   f"{type(exc).__name__}: {exc}") from exc
            if policy.is_vlm:
                log.info("local judge %s is a VLM; it is used as a text-only chat model", self.model_name)
            if "smollm" in f"{self.model_name} {policy.source}".lower():
                log.warning(WEAK_JUDGE_WARNING, self.model_name)
            self._policy = policy

    async def check(self) -> None:
        await asyncio.to_thread(self.load)

    # ----------------------------------------------------------------------------------------- generation
    def generate_batch(self, conversations: list[list[dict]], max_tokens: int) -> list[str]:
        """Greedy replies for several chats at once (blocking)."""
        from medix_r1.models import generate_chat

        self.load()
        with self._gen_lock:
            replies = generate_chat(self._policy, conversations, max_new_tokens=max_tokens, temperature=0.0,
                                    batch_size=self.max_batch_size)
        return [r.strip() for r in replies]

    def choose_batch(self, conversations: list[list[dict]], choices: tuple[str, ...]) -> list[str]:
        """For each chat, the choice whose first token the model finds most likely as the reply's start.

        One forward pass instead of a generation loop, and the reply is always one of ``choices``: a small
        model's off-format replies ("The reference answer is...") become its preferred verdict instead of
        an unparseable one. Spelling variants (``YES``, ``Yes``, `` yes``) of a choice are pooled.

        The shared start of the chats (system message and worked examples: most of a few-shot prompt) is run
        once and its key/value cache reused, so each request costs only its own last turn.
        """
        import torch

        self.load()
        tok, model = self._policy.tokenizer, self._policy.model
        ids = self._choice_ids(tok, choices)
        groups: dict[str, list[tuple[int, str]]] = {}
        for i, conv in enumerate(conversations):
            prefix, suffix = self._split_prompt(tok, conv)
            groups.setdefault(prefix, []).append((i, suffix))
        out: list[str | None] = [None] * len(conversations)
        with self._gen_lock, torch.inference_mode():
            for prefix, items in groups.items():
                for lo in range(0, len(items), self.max_batch_size):
                    chunk = items[lo: lo + self.max_batch_size]
                    logp = self._last_logprobs(tok, model, prefix, [s for _, s in chunk])
                    scores = torch.stack([torch.logsumexp(logp[:, g], dim=-1) for g in ids], dim=-1)
                    for (i, _), k in zip(chunk, scores.argmax(dim=-1).tolist()):
                        out[i] = choices[k]
        return out  # type: ignore[return-value]

    @staticmethod
    def _choice_ids(tok, choices: tuple[str, ...]) -> list[list[int]]:
        ids = []
        for c in choices:
            variants = {c, c.capitalize(), c.lower(), " " + c, " " + c.capitalize(), " " + c.lower()}
            ids.append(sorted({tok.encode(v, add_special_tokens=False)[0] for v in variants}))
        firsts = [i for group in ids for i in group]
        if len(firsts) != len(set(firsts)):
            raise BackendError(f"choices {choices} share a first token in this tokenizer; use generation")
        return ids

    @staticmethod
    def _split_prompt(tok, conv: list[dict]) -> tuple[str, str]:
        """(shared prefix, own suffix) of a chat's prompt text; the prefix is every turn but the last."""
        from medix_r1.models.generation import flatten_messages

        msgs = flatten_messages(conv)
        full = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if len(msgs) > 1:
            prefix = tok.apply_chat_template(msgs[:-1], tokenize=False)
            if full.startswith(prefix):
                return prefix, full[len(prefix):]
        return "", full

    def _last_logprobs(self, tok, model, prefix: str, suffixes: list[str]):
        """Log-probabilities of the next token after each ``prefix + suffix`` (suffixes right-padded)."""
        import copy

        import torch

        enc = tok(suffixes, return_tensors="pt", padding="longest", padding_side="right",
                  add_special_tokens=False).to(model.device)
        n = len(suffixes)
        last = enc["attention_mask"].sum(dim=1) - 1
        if prefix:
            cache, plen = self._prefix_kv(tok, model, prefix)
            cache = copy.deepcopy(cache)
            cache.batch_repeat_interleave(n)
            mask = torch.cat([torch.ones(n, plen, dtype=enc["attention_mask"].dtype, device=model.device),
                              enc["attention_mask"]], dim=1)
            logits = model(input_ids=enc["input_ids"], attention_mask=mask, cache=cache, use_cache=True).logits
        else:
            logits = model(**enc).logits
        rows = logits[torch.arange(n, device=logits.device), last].float()
        return torch.log_softmax(rows, dim=-1)

    def _prefix_kv(self, tok, model, prefix: str):
        hit = self._prefix_cache.get(prefix)
        if hit is None:
            ids = tok(prefix, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
            cache = model(input_ids=ids, use_cache=True).cache
            hit = (cache, ids.shape[1])
            if len(self._prefix_cache) >= 8:  # a handful of prompts per run; keep memory bounded
                self._prefix_cache.pop(next(iter(self._prefix_cache)))
            self._prefix_cache[prefix] = hit
        return hit

    async def complete(self, messages: list[dict], *, max_tokens: int, temperature: float = 0.0,
                       choices=None) -> str:
        loop = asyncio.get_running_loop()
        entry = self._queues.get(id(loop))
        if entry is None or entry[0] is not loop:
            entry = (loop, [], [False])
            self._queues[id(loop)] = entry
        _, queue, running = entry
        fut = loop.create_future()
        queue.append((messages, (max_tokens, tuple(choices) if choices else None), fut))
        if not running[0]:
            running[0] = True
            loop.create_task(self._drain(queue, running))
        return await fut

    async def _drain(self, queue: list, running: list) -> None:
        """Take queued requests in batches (same settings) and run them in a worker thread."""
        try:
            while queue:
                await asyncio.sleep(self.batch_wait_s)  # let requests issued together join one batch
                settings = queue[0][1]
                batch = [q for q in queue if q[1] == settings][: self.max_batch_size]
                for q in batch:
                    queue.remove(q)
                live = [q for q in batch if not q[2].done()]
                if not live:
                    continue
                max_tokens, choices = settings
                try:
                    if choices:
                        replies = await asyncio.to_thread(self.choose_batch, [q[0] for q in live], choices)
                    else:
                        replies = await asyncio.to_thread(self.generate_batch, [q[0] for q in live], max_tokens)
                except Exception as exc:  # noqa: BLE001 - any failure must fail these requests (counted), never hang them
                    err = exc if isinstance(exc, BackendError) else BackendError(
                        f"local judge failed: {type(exc).__name__}: {exc}")
                    for q in live:
                        if not q[2].done():
                            q[2].set_exception(err)
                    continue
                for q, r in zip(live, replies):
                    if not q[2].done():
                        q[2].set_result(r)
        finally:
            running[0] = False
