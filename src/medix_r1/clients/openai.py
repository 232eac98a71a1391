"""Judge backend for any OpenAI-compatible chat endpoint: ``vllm serve``, SGLang, or a hosted API.

Async (httpx) with bounded concurrency, a per-request deadline, and retries with exponential backoff and
jitter for transient failures (timeouts, refused or dropped connections, HTTP 408/429/5xx). A permanent
failure (another 4xx, a body that is not a chat completion) is not retried. Every failure surfaces as
``TimeoutError`` or :class:`~medix_r1.judge.base.BackendError`; the :class:`~medix_r1.judge.Judge` turns it into
a counted, uncached ``Verdict(score=None)``.

The paper's judge, started on the judge host::

    vllm serve Qwen/Qwen3-4B-Instruct-2507 --port 8000 --max-model-len 8192

Thinking is switched off per request with ``chat_template_kwargs={"enable_thinking": False}`` (vLLM, SGLang
and ``transformers serve`` accept it; set ``disable_thinking=False`` for hosted APIs that reject unknown
fields - a 400 or 422 naming the field also switches it off, and the request is resent at once).

``seed`` is sent with every request that samples (temperature above 0), so a sampled generation can be
repeated; greedy requests (the judge) need none.

A server that lists no models (``transformers serve`` started without a model loads whatever it is asked
for) answers a model it cannot load with a plain-text HTTP 500; when that is the first reply this backend
gets, it is a permanent error naming the model, not a transient one retried four times.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
from urllib.parse import urlsplit

from medix_r1.clients.base import BackendError, ChatBackend

log = logging.getLogger(__name__)

DEFAULT_JUDGE_URL = "http://127.0.0.1:8000/v1"
DEFAULT_JUDGE_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_API_KEY_ENV = "MEDIX_JUDGE_API_KEY"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# httpcore's connection pool scans all its connections for every request it places (quadratic in the pool
# size): one pool of 64 connections spent 85% of the time there and ran 7x slower than the judge allowed
# (benchmarks/reward_throughput.py). Several small pools, each request taking a free slot, avoid that.
_CONNECTIONS_PER_POOL = 8


@functools.cache
def shared_ssl_context():
    """One TLS context for every connection pool of the process: building one loads the CA bundle, which
    takes tens of milliseconds (hundreds on a busy machine), and each pool would otherwise build its own."""
    import httpx

    return httpx.create_ssl_context()


class _Transient(Exception):
    """A failure worth retrying (kept apart so the last one can be reported)."""


class _Resend(Exception):
    """The server rejected an optional field, now dropped: send the request again at once."""


class OpenAIChatBackend(ChatBackend):
    """Chat completions over HTTP. One instance can be used from several event loops in turn (each loop gets
    its own connection pool), which is what sync wrappers built on ``asyncio.run`` need.

    >>> backend = OpenAIChatBackend(model="Qwen/Qwen3-4B-Instruct-2507")   # doctest: +SKIP
    >>> await backend.complete([{"role": "user", "content": "Say YES"}], max_tokens=4)  # doctest: +SKIP
    'YES'
    """

    def __init__(self, base_url: str = DEFAULT_JUDGE_URL, model: str = DEFAULT_JUDGE_MODEL, *,
                 api_key_env: str = DEFAULT_API_KEY_ENV, timeout: float = 60.0, max_retries: int = 3,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, concurrency: int = 64,
                 disable_thinking: bool = True, extra_body: dict | None = None, seed: int | None = None,
                 role: str = "judge"):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.concurrency = int(concurrency)
        self.disable_thinking = disable_thinking
        self.extra_body = dict(extra_body or {})
        self.seed = seed
        self.role = role
        """What the server is for, in messages: ``judge`` or ``policy`` (the model under evaluation)."""
        self._pools: dict[int, _LoopPools] = {}
        self._lists_no_models = False  # set by check(): the server loads models on demand
        self._answered = False  # a chat completion came back at least once
        self._plain_http = _plain_http_target(self.base_url)

    # ----------------------------------------------------------------------------------------- plumbing
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _pool(self) -> _LoopPools:
        """The running event loop's connection pools (created on first use in that loop)."""
        import httpx

        loop = asyncio.get_running_loop()
        entry = self._pools.get(id(loop))
        if entry is None or entry.loop is not loop:
            # Pools of loops that have since closed cannot be closed any more; drop them.
            self._pools = {k: v for k, v in self._pools.items() if not v.loop.is_closed()}
            slots: asyncio.Queue = asyncio.Queue()
            if self._plain_http is not None:
                # plain http (a local or cluster server): one lean keep-alive connection per slot
                clients = [httpx.AsyncClient(base_url=self.base_url, headers=self._headers(),
                                             timeout=httpx.Timeout(self.timeout), verify=shared_ssl_context())]
                for _ in range(self.concurrency):
                    slots.put_nowait(_Conn(*self._plain_http))
            else:
                n_pools = -(-self.concurrency // _CONNECTIONS_PER_POOL)
                per = -(-self.concurrency // n_pools)
                clients = [httpx.AsyncClient(base_url=self.base_url, headers=self._headers(),
                                             timeout=httpx.Timeout(self.timeout), verify=shared_ssl_context(),
                                             limits=httpx.Limits(max_connections=per,
                                                                 max_keepalive_connections=per))
                           for _ in range(n_pools)]
                for k in range(self.concurrency):
                    slots.put_nowait(clients[k % n_pools])
            entry = _LoopPools(loop, clients, slots)
            self._pools[id(loop)] = entry
        return entry

    def _payload(self, messages: list[dict], max_tokens: int, temperature: float,
                 seed: int | None = None) -> dict:
        body = {"model": self.model_name, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature}
        seed = self.seed if seed is None else seed
        if temperature > 0 and seed is not None:
            body["seed"] = int(seed)
        if self.disable_thinking:
            body["chat_template_kwargs"] = {"enable_thinking": False}
        body.update(self.extra_body)
        return body

    def describe(self) -> str:
        return f"OpenAI-compatible {self.role} {self.model_name!r} at {self.base_url}"

    def how_to_fix(self) -> str:
        """What to check, naming no command-line flag (each command adds its own)."""
        start = (f"; the paper's judge is started with `vllm serve {DEFAULT_JUDGE_MODEL} --port 8000`"
                 if self.role == "judge" else "")
        key = f"; set ${self.api_key_env} if the server needs a key" if self.api_key_env else ""
        return (f"check that the {self.role} server at {self.base_url} is running and serves "
                f"{self.model_name!r}, and read its log for the failed requests{start}{key}")

    # ----------------------------------------------------------------------------------------- API
    async def complete(self, messages: list[dict], *, max_tokens: int, temperature: float = 0.0,
                       seed: int | None = None) -> str:
        """The reply's text. ``seed`` (or the backend's ``seed``) is sent when ``temperature > 0``."""
        pools = self._pool()
        client = await pools.slots.get()  # waiting for a slot does not count against the request's deadline
        try:
            last: Exception | None = None
            attempt = 0
            while attempt <= self.max_retries:
                if attempt:
                    delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                    await asyncio.sleep(delay * (0.5 + random.random()))
                attempt += 1
                try:
                    async with asyncio.timeout(self.timeout):
                        return await self._post(client, messages, max_tokens, temperature, seed)
                except _Resend:
                    attempt -= 1  # the request changed (a field dropped); sending it again is not a retry
                    continue
                except TimeoutError as exc:
                    last = exc
                except _Transient as exc:
                    last = exc
                log.debug("request failed (attempt %d/%d): %s", attempt, self.max_retries + 1, last)
            if isinstance(last, TimeoutError):
                raise TimeoutError(f"no reply within {self.timeout:g}s after {self.max_retries + 1} attempt(s) "
                                   f"({self.describe()})")
            raise BackendError(f"{last} after {self.max_retries + 1} attempt(s) ({self.describe()})")
        finally:
            pools.slots.put_nowait(client)

    async def _post(self, client, messages, max_tokens, temperature, seed=None) -> str:
        body = self._payload(messages, max_tokens, temperature, seed)
        if isinstance(client, _Conn):
            resp = await self._post_plain(client, body)
        else:
            resp = await self._post_httpx(client, body)
        if (resp.status_code in (400, 422) and "chat_template_kwargs" in resp.text
                and "chat_template_kwargs" in body):
            if self.disable_thinking:
                log.warning("%s rejects chat_template_kwargs (HTTP %d); sending requests without it from now on",
                            self.describe(), resp.status_code)
                self.disable_thinking = False
            raise _Resend()
        if (resp.status_code == 500 and self._lists_no_models and not self._answered
                and not resp.text.lstrip().startswith("{")):
            raise BackendError(
                f"{self.base_url} lists no models and answered HTTP 500 ({resp.text[:80]!r}) to the first "
                f"request for model {self.model_name!r}: a server that loads models on demand could not load "
                f"it", where=f"{self.base_url}/chat/completions",
                fix="check the model name, or start the server with the model pinned (e.g. `transformers serve "
                    "MODEL`, `vllm serve MODEL`)")
        if resp.status_code in _RETRY_STATUS:
            raise _Transient(f"HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400:
            raise BackendError(f"HTTP {resp.status_code} from {self.base_url}/chat/completions: {resp.text[:300]}")
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"response is not a chat completion ({type(exc).__name__}): "
                               f"{resp.text[:200]!r}") from exc
        self._answered = True
        return content if isinstance(content, str) else ""

    async def _post_httpx(self, client, body: dict):
        import httpx

        try:
            return await client.post("/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc) or type(exc).__name__) from exc
        except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
            raise _Transient(f"{type(exc).__name__}: {exc or 'connection failed'}") from exc

    async def _post_plain(self, conn: _Conn, body: dict) -> _Reply:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            status, data = await conn.post(self._plain_http[2] + "/chat/completions", payload, self._headers())
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
        return _Reply(status, data)

    async def check(self) -> None:
        """GET ``/models`` and check the model is served. Raises :class:`BackendError` saying how to fix it."""
        import httpx

        client = self._pool().clients[0]
        try:
            async with asyncio.timeout(min(self.timeout, 10.0)):
                resp = await client.get("/models")
        except (httpx.HTTPError, TimeoutError) as exc:
            raise BackendError(f"cannot reach {self.describe()}: {type(exc).__name__}: {exc}. "
                               f"{self.how_to_fix()}") from exc
        if resp.status_code >= 400:
            raise BackendError(f"{self.base_url}/models answered HTTP {resp.status_code}: {resp.text[:200]}. "
                               f"{self.how_to_fix()}")
        try:
            served = [m.get("id") for m in resp.json().get("data", [])]
        except (ValueError, AttributeError):
            return  # some proxies do not list models; the first request will tell
        self._lists_no_models = not served
        if served and self.model_name not in served:
            raise BackendError(f"{self.base_url} serves {served}, not {self.model_name!r}",
                               where=f"{self.base_url}/models",
                               fix=f"ask for {served[0]!r} instead, or start the server with {self.model_name}")

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._pools.pop(id(loop), None)
        if entry is not None:
            for client in entry.clients:
                await client.aclose()
            while not entry.slots.empty():
                slot = entry.slots.get_nowait()
                if isinstance(slot, _Conn):
                    slot.close()

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model_name!r})"


class _LoopPools:
    """One event loop's httpx clients and a queue of free request slots over them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clients: list, slots: asyncio.Queue):
        self.loop = loop
        self.clients = clients
        self.slots = slots


def _plain_http_target(base_url: str) -> tuple[str, int, str] | None:
    """``(host, port, path prefix)`` for a plain ``http://`` URL; ``None`` (httpx handles it) otherwise."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.query:
        return None
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


class _Reply:
    """The part of a response the backend reads, from the lean transport (httpx's responses look alike)."""

    def __init__(self, status: int, data: bytes):
        self.status_code = status
        self._data = data

    @property
    def text(self) -> str:
        return self._data.decode("utf-8", "replace")

    def json(self):
        return json.loads(self._data)


class _Conn:
    """One keep-alive HTTP/1.1 connection for chat requests to a plain-http server.

    httpx spends about a millisecond of CPU per request in its pool and stream layers; at a simulated judge
    of 100 ms and 64 slots (640 requests a second) that alone kept ``medix-r1 score`` at 2x the capacity
    bound (benchmarks/reward_throughput.py --cli). This writes the request and reads a Content-Length or
    chunked response directly. A kept-alive connection the server has closed is reopened once.
    """

    def __init__(self, host: str, port: int, _prefix: str = ""):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, payload: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(payload)}",
                "Connection: keep-alive", *(f"{k}: {v}" for k, v in headers.items())]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload
        for attempt in range(2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(request)
                await self.writer.drain()
                return await self._read()
            except (OSError, EOFError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:
                    raise
            except BaseException:
                self.close()  # a cancelled or timed-out request leaves the stream mid-response
                raise
        raise AssertionError("unreachable")

    async def _read(self) -> tuple[int, bytes]:
        reader = self.reader
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            data = await reader.readexactly(int(fields["content-length"]))
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            data = b"".join(parts)
        else:
            data = await reader.read()
            self.close()
            return status, data
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data
