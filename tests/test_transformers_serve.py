"""`medix-r1 score` against a real OpenAI-compatible server: `transformers serve` with the bundled SmolLM2 on
127.0.0.1 (CPU). One server for the module, a handful of rows.

What `transformers serve` 5.24 does, as this test relies on: it takes `chat_template_kwargs`, answers one
request at a time, and a pinned server rejects another model name with HTTP 400. The judge here is weak
(135M parameters): the test checks what is sent and how each reply is read, not whether verdicts are right.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from medix_r1.cli import main
from medix_r1.judge.prompts import parse_yes_no
from medix_r1.models.bundled import smollm2_path
from medix_r1.testing import StubChatServer

ROWS = [
    {"id": "a", "completion": "<CT_SCAN><thinking>dense organ</thinking><answer>The liver</answer>",
     "reference": "<CT_SCAN> Liver", "question": "Which organ?"},
    {"id": "b", "completion": "<X_RAY><thinking>air</thinking><answer>Right pneumothorax</answer>",
     "reference": "<X_RAY> Pleural effusion", "question": "What is the finding?"},
    {"id": "c", "completion": "<MRI_SCAN><thinking>bright</thinking><answer>Demyelination</answer>",
     "reference": "<MRI_SCAN> Multiple sclerosis", "question": "What is the diagnosis?"},
    {"id": "d", "completion": "<ULTRASOUND><thinking>stones</thinking><answer>Gallstones</answer>",
     "reference": "<ULTRASOUND> Cholelithiasis", "question": "What is seen?"},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    exe = shutil.which("transformers") or os.path.join(os.path.dirname(sys.executable), "transformers")
    model = str(smollm2_path())
    port = _free_port()
    proc = subprocess.Popen([exe, "serve", model, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > 180:
                pytest.fail("transformers serve did not come up within 180 s")
            time.sleep(0.5)
        yield url, model
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_score_through_transformers_serve_sends_and_reads(served, tmp_path, capsys):
    url, model = served
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, ROWS[:3])

    def forward(messages, request):  # a recording proxy in front of the real server
        r = httpx.post(f"{url}/chat/completions", json=request, timeout=120)
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"]

    with StubChatServer(forward, model=model) as proxy:
        rc = main(["score", "--input", str(inp), "--output", str(out), "--components", "format,accuracy_llm",
                   "--judge-url", proxy.url, "--judge-model", model, "--few-shot", "--no-cache", "--details",
                   "--judge-concurrency", "1", "--judge-timeout", "120",
                   "--no-progress", "--max-judge-error-rate", "1"])
        sent = list(proxy.requests)
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(sent) == 3  # no exact match here: every row is judged, once
    for body in sent:
        assert body["model"] == model and body["max_tokens"] == 4 and body["temperature"] == 0
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert "seed" not in body  # greedy: nothing to seed
        assert [m["role"] for m in body["messages"]][:2] == ["system", "user"]  # the few-shot prompt
    for row in scored:
        det, value = row["reward_details"], row["rewards"]["accuracy_llm"]
        assert value == parse_yes_no(det["judge_raw"])  # None for a reply that is not a verdict
        assert det["judge_status"] == ("ok" if value is not None else "unparseable")
    got_verdict = any(r["rewards"]["accuracy_llm"] is not None for r in scored)
    assert rc == (0 if got_verdict else 3)


def test_score_talks_to_transformers_serve_directly(served, tmp_path, capsys):
    url, model = served
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, ROWS[3:])
    rc = main(["score", "--input", str(inp), "--output", str(out), "--components", "format,accuracy_llm",
               "--judge-url", url, "--judge-model", model, "--few-shot", "--no-cache", "--no-progress",
               "--judge-concurrency", "1", "--judge-timeout", "120",
               "--max-judge-error-rate", "1"])
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in scored] == ["d"]
    got_verdict = any(r["rewards"]["accuracy_llm"] is not None for r in scored)
    assert rc == (0 if got_verdict else 3), capsys.readouterr().err


def test_a_pinned_server_refuses_another_model_once(served, tmp_path, capsys):
    url, _ = served
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, ROWS[:1])
    t0 = time.monotonic()
    rc = main(["score", "--input", str(inp), "--output", str(out), "--components", "accuracy_llm",
               "--judge-url", url, "--judge-model", "Qwen/Qwen3-4B-Instruct-2507", "--no-cache", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3 and "Traceback" not in err
    assert "smollm2" in err  # the check names what the server does serve
    assert time.monotonic() - t0 < 30
