"""`medix-r1 score` loses no work and says what went wrong (issues 9 and 10): rows appended as they finish,
reruns that continue, Ctrl-C, unwritable outputs, Parquet and empty inputs, all-failed judges; and the
OpenAI-compatible client's fixes (422 fallback, unknown model on an unpinned server, seed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medix_r1.cli import main
from medix_r1.clients.openai import OpenAIChatBackend
from medix_r1.judge import BackendError
from medix_r1.testing import StubChatServer
from medix_r1.testing.openai_stub import StubFault

GOOD = "<CT_SCAN><thinking>looked</thinking><answer>{}</answer>"


def rows(n, late_from=None):
    return [{"id": f"r{i}", "completion": GOOD.format(f"late answer {i}" if late_from is not None and i >= late_from
                                                     else f"answer {i}"),
             "reference": "<CT_SCAN> Liver"} for i in range(n)]


def write(path, items):
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def score(inp, out, server, *extra):
    return main(["score", "--input", str(inp), "--output", str(out), "--components", "format,accuracy_llm",
                 "--judge-url", server.url, "--judge-model", server.model, "--no-cache", "--no-progress",
                 "--judge-concurrency", "4", *extra])


def test_rows_without_a_verdict_are_scored_again_by_a_rerun(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(inp, rows(300, late_from=260))

    def flaky(messages, request):
        return StubFault.http(400) if "late answer" in messages[-1]["content"] else "YES"

    with StubChatServer(flaky) as server:
        assert score(inp, out, server, "--max-judge-error-rate", "1") == 0
    assert "40 row(s) got no judge verdict; rerun the same command" in capsys.readouterr().out
    first = read(out)
    assert [r["id"] for r in first] == [f"r{i}" for i in range(300)]  # input order at the end
    assert sum(r["rewards"]["accuracy_llm"] is None for r in first) == 40
    with StubChatServer("YES") as server:
        assert score(inp, out, server) == 0
        assert server.request_count == 40  # only the rows without a verdict
    assert all(r["rewards"]["accuracy_llm"] == 1.0 for r in read(out))
    assert "260 kept from an earlier run" in capsys.readouterr().out


def test_a_rerun_refuses_a_changed_input_or_other_settings(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    items = rows(5)
    write(inp, items)
    with StubChatServer("YES") as server:
        assert score(inp, out, server) == 0
        before = out.read_text()
        items[2]["completion"] = GOOD.format("edited")
        write(inp, items)
        assert score(inp, out, server) == 2
        err = capsys.readouterr().err
        assert "the input changed" in err and "id=r2" in err and "Traceback" not in err
        write(inp, rows(5))
        assert score(inp, out, server, "--mode", "paper") == 2
        err = capsys.readouterr().err
        assert "other settings" in err and "mode" in err
    assert out.read_text() == before  # nothing lost


def test_unwritable_output_is_found_before_any_work(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    write(inp, rows(3))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with StubChatServer("YES") as server:
        assert score(inp, blocker / "out.jsonl", server) == 2
        assert server.request_count == 0
    err = capsys.readouterr().err
    assert "--output" in err and "cannot write" in err and "Traceback" not in err


def test_empty_input_is_an_error(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n")
    with StubChatServer("YES") as server:
        assert score(inp, out, server) == 2
    assert "no rows to score" in capsys.readouterr().err


def test_parquet_input_works_and_binary_jsonl_is_a_clear_error(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    inp, out = tmp_path / "in.parquet", tmp_path / "out.jsonl"
    pq.write_table(pa.Table.from_pylist(rows(4)), inp)
    with StubChatServer("YES") as server:
        assert score(inp, out, server) == 0
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(inp.read_bytes())
        assert score(bad, tmp_path / "out2.jsonl", server) == 2
    assert [r["rewards"]["accuracy_llm"] for r in read(out)] == [1.0] * 4
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "Traceback" not in err and "UnicodeDecodeError" not in err


def test_no_verdict_at_all_exits_3_even_for_a_few_rows(tmp_path, capsys):
    """Regression (issue 10): five unparseable replies used to exit 0 (the budget waited for 20 calls)."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(inp, rows(5))
    with StubChatServer("I am not sure") as server:
        assert score(inp, out, server, "--max-judge-error-rate", "1") == 3
    err = capsys.readouterr().err
    assert "no judged row got a verdict" in err and "rerun" in err and "--judge-url" in err
    assert len(read(out)) == 5  # kept, and a rerun scores them again


def test_ctrl_c_keeps_finished_rows_and_says_how_to_resume(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write(inp, rows(300, late_from=296))

    def slow_late(messages, request):
        return 30.0 if "late answer" in messages[-1]["content"] else 0.0

    with StubChatServer("YES", latency=slow_late) as server:
        cmd = [sys.executable, "-m", "medix_r1.cli", "score", "--input", str(inp), "--output", str(out),
               "--components", "format,accuracy_llm", "--judge-url", server.url, "--judge-model", server.model,
               "--no-cache", "--no-progress", "--judge-concurrency", "16"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ})
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 256):
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130
    assert "rerun the same command to continue" in err and "Traceback" not in err
    assert len(read(out)) >= 256
    with StubChatServer("YES") as server:
        assert score(inp, out, server) == 0
        assert server.request_count <= 300 - 256
    assert len(read(out)) == 300


# ------------------------------------------------------------------------------------------------ the client
def _complete(backend, **kw):
    async def go():
        try:
            return await backend.complete([{"role": "user", "content": "hi"}], max_tokens=4, **kw)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_a_422_naming_chat_template_kwargs_drops_it_at_once():
    def strict(messages, request):
        if "chat_template_kwargs" in request:
            return StubFault.http(422, '{"detail": "Unexpected fields in the request: {\'chat_template_kwargs\'}"}')
        return "YES"

    with StubChatServer(strict) as server:
        backend = OpenAIChatBackend(server.url, server.model, max_retries=0, backoff_s=5)
        t0 = time.perf_counter()
        assert _complete(backend) == "YES"
        assert time.perf_counter() - t0 < 3  # resent at once, no backoff, and max_retries=0 still succeeds
        assert server.request_count == 2 and not backend.disable_thinking


def test_unknown_model_on_an_unpinned_server_is_permanent():
    # what `transformers serve` without a pinned model answers for a model it cannot load
    plain_500 = StubFault("http", 500, "Internal Server Error")
    with StubChatServer(lambda messages, request: plain_500, list_models=False) as server:
        backend = OpenAIChatBackend(server.url, "no/such-model", max_retries=3, backoff_s=0.01)

        async def go():
            try:
                await backend.check()  # passes: the server lists no models
                await backend.complete([{"role": "user", "content": "hi"}], max_tokens=4)
            finally:
                await backend.aclose()

        with pytest.raises(BackendError, match="no/such-model"):
            asyncio.run(go())
        assert server.request_count == 1  # not retried


def test_seed_is_sent_only_when_sampling():
    with StubChatServer("ok") as server:
        _complete(OpenAIChatBackend(server.url, server.model, seed=7), temperature=0.7)
        _complete(OpenAIChatBackend(server.url, server.model, seed=7), temperature=0.0)
        _complete(OpenAIChatBackend(server.url, server.model), temperature=0.7, seed=3)
        assert [r.get("seed") for r in server.requests] == [7, None, 3]
