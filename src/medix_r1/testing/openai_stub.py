"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

It plays a judge or a generator without any model: a reply function decides what each request gets back, a
per-request latency and a number of concurrent slots simulate a real server's speed and capacity (requests
beyond capacity queue), and faults can be injected to test failure handling.

Endpoints: ``POST /v1/chat/completions`` (``n`` choices supported) and ``GET /v1/models``. Usage::

    from medix_r1.testing.openai_stub import StubChatServer, StubFault

    def reply(messages, request):                     # the last user message decides
        return "YES" if "liver" in messages[-1]["content"] else "NO"

    with StubChatServer(reply, latency=0.1, capacity=64) as server:
        backend = OpenAIChatBackend(server.url, model=server.model)
        ...
        assert server.request_count == 10

Faults: a reply function may return a :class:`StubFault` instead of text (``StubFault.http(500)``,
``StubFault.hang()``, ``StubFault.garbage()`` for an unparseable body, ``StubFault.drop()`` to close the
connection without answering); ``faults=[...]`` applies a list of faults to the first requests, in order;
setting ``server.fault`` applies one to every request until it is set back to ``None``. For a refused
connection use :func:`refused_url` (a port nothing listens on) or stop the server.

The server runs an asyncio loop in a daemon thread (HTTP/1.1 with keep-alive, hand-parsed: it is a test
double, not a web server). For benchmarks where the server must not share the client's interpreter (and its
GIL), run it in another process: ``python -m medix_r1.testing.openai_stub --latency 0.1 --capacity 64``
prints its URL and serves until killed; :func:`stub_subprocess` wraps that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Self

ReplyFn = Callable[[list[dict], dict], "str | StubFault"]


@dataclass(frozen=True)
class StubFault:
    """A failure the stub server can produce instead of a reply."""

    kind: str  # "http" | "hang" | "garbage" | "drop"
    status: int = 500
    body: str = ""

    @classmethod
    def http(cls, status: int = 500, body: str = "") -> StubFault:
        """Answer with this HTTP status (and an error body)."""
        return cls("http", status, body or json.dumps({"error": {"message": f"stub error {status}"}}))

    @classmethod
    def hang(cls) -> StubFault:
        """Never answer (until the server stops): the client's timeout must fire."""
        return cls("hang")

    @classmethod
    def garbage(cls) -> StubFault:
        """HTTP 200 with a body that is not a chat completion."""
        return cls("garbage", 200, "<html>this is not JSON</html>")

    @classmethod
    def drop(cls) -> StubFault:
        """Close the connection without answering."""
        return cls("drop")


def refused_url() -> str:
    """The ``/v1`` URL of a loopback port that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class StubChatServer:
    """Scripted OpenAI-compatible chat server (see the module docstring).

    ``reply``: a string (always that), or ``fn(messages, request_json) -> str | StubFault``; default "YES".
    ``latency``: seconds per request (or ``fn(messages, request_json) -> float``), spent holding a slot.
    ``capacity``: concurrent slots (``None``: unlimited); requests beyond it wait for a slot.
    ``record``: keep every request body in :attr:`requests` (turn off for long benchmarks).
    """

    def __init__(self, reply: str | ReplyFn | None = None, *, latency: float | Callable = 0.0,
                 capacity: int | None = None, faults: Iterable[StubFault | None] = (),
                 model: str = "stub-judge", host: str = "127.0.0.1", port: int = 0, record: bool = True,
                 list_models: bool = True):
        self.reply = reply if reply is not None else "YES"
        self.latency = latency
        self.capacity = capacity
        self.model = model
        self.host = host
        self.port = port
        self.record = record
        self.list_models = list_models
        """False: ``/v1/models`` lists nothing, as a server that loads models on demand does."""
        self.fault: StubFault | None = None
        self._faults: deque[StubFault | None] = deque(faults)
        self.requests: list[dict] = []
        self.request_count = 0
        self.completed_count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._writers: set = set()
        self._stop_event: asyncio.Event | None = None
        self._sem: asyncio.Semaphore | None = None

    # ----------------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="stub-chat-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise RuntimeError(f"stub server failed to start: {self._start_error}") from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving: hanging requests are released, connections closed; the port then refuses."""
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            fut.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_counters(self) -> None:
        self.requests.clear()
        self.request_count = self.completed_count = self.max_in_flight = 0

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._stop_event = asyncio.Event()
            self._sem = asyncio.Semaphore(self.capacity) if self.capacity else None
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, backlog=4096))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 - reported by start(), which raises in the caller's thread
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        self._stop_event.set()
        self._server.close()
        for w in list(self._writers):
            w.close()
        await asyncio.sleep(0)

    # ----------------------------------------------------------------------------------------- HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    method, path, _version = line.decode("latin-1").split()
                except ValueError:
                    break
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                result = await self._route(method, path.split("?")[0], body)
                if result is None:  # drop
                    break
                status, payload = result
                data = payload.encode("utf-8")
                reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, str] | None:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return 200, json.dumps({"object": "list", "data": [
                {"id": self.model, "object": "model", "owned_by": "medix-r1-stub"}] if self.list_models else []})
        if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
            try:
                req = json.loads(body or b"{}")
                messages = req["messages"]
            except (ValueError, KeyError, TypeError):
                return 400, json.dumps({"error": {"message": "body must be JSON with 'messages'"}})
            return await self._chat(req, messages)
        return 404, json.dumps({"error": {"message": f"no route {method} {path}"}})

    async def _chat(self, req: dict, messages: list[dict]) -> tuple[int, str] | None:
        self.request_count += 1
        if self.record:
            self.requests.append(req)
        fault = self.fault if self.fault is not None else (self._faults.popleft() if self._faults else None)
        if fault is not None and fault.kind == "hang":
            await self._stop_event.wait()
            return None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with (self._sem if self._sem is not None else contextlib.nullcontext()):
                latency = self.latency(messages, req) if callable(self.latency) else self.latency
                if latency:
                    await asyncio.sleep(latency)
                if fault is None:
                    replies = []
                    for _ in range(max(1, int(req.get("n") or 1))):
                        try:
                            r = self.reply if isinstance(self.reply, str) else self.reply(messages, req)
                        except Exception as exc:  # noqa: BLE001 - a broken reply function is a 500, like a server bug
                            r = StubFault.http(500, json.dumps({"error": {"message": repr(exc)}}))
                        if isinstance(r, StubFault):
                            fault = r
                            break
                        replies.append(str(r))
        finally:
            self.in_flight -= 1
        if fault is not None:
            if fault.kind == "drop":
                return None
            if fault.kind == "hang":
                await self._stop_event.wait()
                return None
            return fault.status, fault.body
        self.completed_count += 1
        prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))
        return 200, json.dumps({
            "id": f"chatcmpl-stub-{self.request_count}", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model", self.model),
            "choices": [{"index": i, "message": {"role": "assistant", "content": r}, "finish_reason": "stop"}
                        for i, r in enumerate(replies)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": sum(len(r.split()) for r in replies),
                      "total_tokens": prompt_tokens + sum(len(r.split()) for r in replies)},
        })


@contextlib.contextmanager
def stub_subprocess(reply: str = "YES", *, latency: float = 0.0, capacity: int | None = None,
                    model: str = "stub-judge") -> Iterator[str]:
    """Run a stub server with a constant reply in a child process; yields its ``/v1`` URL."""
    # -c rather than -m: the package __init__ already imports this module, which -m would warn about
    cmd = [sys.executable, "-c", "import sys; from medix_r1.testing.openai_stub import main; sys.exit(main())",
           "--reply", reply, "--latency", str(latency), "--model", model] + (
        ["--capacity", str(capacity)] if capacity else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"stub server process did not start (printed {url!r})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Scripted OpenAI-compatible chat server on 127.0.0.1 (for tests "
                                             "and benchmarks). Prints its /v1 URL, then serves until killed.")
    ap.add_argument("--reply", default="YES", help="the reply to every chat request (default YES)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per request, holding a slot")
    ap.add_argument("--capacity", type=int, default=None, help="concurrent slots (default unlimited)")
    ap.add_argument("--model", default="stub-judge", help="the model id /v1/models lists")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = ap.parse_args(argv)
    server = StubChatServer(args.reply, latency=args.latency, capacity=args.capacity, model=args.model,
                            port=args.port, record=False).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
