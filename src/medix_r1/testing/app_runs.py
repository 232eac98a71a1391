"""Run folders for the app's tests, screenshots and latency benchmark, written by the library's own writers.

- :func:`make_eval_run`: a real ``medix-r1 eval`` run (generate, judge, score) of a scripted policy against a
  scripted judge, both :class:`~medix_r1.testing.openai_stub.StubChatServer` on 127.0.0.1 (no model), on the
  bundled demo test split or any task list.
- :func:`make_training_run`: ``metrics.jsonl`` written by the trainer's own
  :class:`~medix_r1.train.callbacks.MetricsJsonlCallback` from TRL-style log dicts, and ``samples.jsonl`` by
  its :func:`~medix_r1.train.callbacks.write_samples_table` (in the run and in ``checkpoint-N``), as a real
  GRPO run leaves them; no model is trained, so it takes milliseconds.
- :func:`make_image_task`: a canonical JSONL task of N image questions with small PNGs (the 1,000-sample
  paging benchmark).
- :class:`AppProcess`: ``medix-r1 app`` in a subprocess on a free 127.0.0.1 port, ready when it says so.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from medix_r1.testing.openai_stub import StubChatServer
from medix_r1.testing.simulate import judge_reply, policy_reply


def modality_policy(messages: list[dict], request: dict | None = None) -> str:
    """A scripted policy that names the imaging technique a demo question asks about, else says "Yes"."""
    text = json.dumps(messages[-1].get("content"))
    answer = "Computed tomography" if "modality" in text or "technique" in text else "Yes"
    return f"<CT_SCAN><thinking>Bone is bright, air is dark.</thinking><answer>{answer}</answer>"


def make_eval_run(out: str | Path, policy: Callable = policy_reply, *, tasks=("medix-demo",), model: str = "policy",
                  data_dirs=None) -> Path:
    from medix_r1.eval import run_eval
    from medix_r1.eval.generation import openai_generator
    from medix_r1.eval.judge_phase import JudgeSettings
    from medix_r1.judge import OpenAIChatBackend

    out = Path(out)
    with StubChatServer(policy, model=model) as pol, StubChatServer(judge_reply, model="judge") as jud:
        judge = JudgeSettings(backend=OpenAIChatBackend(jud.url, jud.model, max_retries=0, timeout=10), cache=None)
        gen = openai_generator(pol.url, pol.model, max_retries=0, timeout=10, concurrency=32)
        run_eval(list(tasks), gen, judge, out, data_dirs=data_dirs, progress=False, bootstrap=100, charts=False)
    return out


def make_training_run(out: str | Path, steps: int = 8, save_every: int = 4) -> Path:
    from medix_r1.train.callbacks import MetricsJsonlCallback, write_samples_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "resolved_recipe.yaml").write_text("model: embedded\n", encoding="utf-8")
    cb = MetricsJsonlCallback(out / "metrics.jsonl")
    args, control = SimpleNamespace(), SimpleNamespace()
    state = SimpleNamespace(is_world_process_zero=True, global_step=0, epoch=0.0)
    cb.on_train_begin(args, state, control)
    for step in range(1, steps + 1):
        state.global_step, state.epoch = step, step / steps
        rise = 1 - math.exp(-step / 3)
        logs = {"loss": 0.1 / step, "reward": 0.5 + 1.5 * rise, "rewards/format_reward/mean": 0.4 + 0.6 * rise,
                "rewards/modality_reward/mean": 0.2 + 0.5 * rise, "rewards/accuracy_llm_reward/mean": 0.1 + 0.3 * rise,
                "rewards/accuracy_embed_reward/mean": 0.1 + 0.2 * rise, "kl": 0.002 * step,
                "completions/mean_length": 120 - 5 * step, "judge/error_rate": 0.0 if step % 3 else 0.05}
        cb.on_log(args, state, control, logs=logs)
        if step % save_every == 0:
            rows = [{"prompt": f"What imaging modality is shown here? (sample {i})",
                     "completion": f"<CT_SCAN><thinking>step {step}: bone is bright.</thinking>"
                                   f"<answer>Computed tomography</answer>" if i % 2 else "CT, I think.",
                     "format": 1.0 if i % 2 else 0.0, "modality": 1.0 if i % 2 else 0.0,
                     "accuracy_llm": 1.0 if i % 2 else 0.0, "accuracy_embed": 0.0, "advantage": 0.5 - (i % 2 == 0)}
                    for i in range(4)]
            ckpt = out / f"checkpoint-{step}"
            ckpt.mkdir(exist_ok=True)
            write_samples_table(rows, ckpt / "samples.md", step)
            write_samples_table(rows, out / "samples.md", step)
    return out


def make_image_task(out: str | Path, n: int = 1000) -> Path:
    """``out/paging.jsonl`` with ``n`` image questions (PNGs under ``out/img``)."""
    from PIL import Image

    out = Path(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        name = f"img/{i:04d}.png"
        Image.new("L", (64, 64), color=(i * 37) % 256).save(out / name)
        lines.append(json.dumps({"id": f"s{i:04d}", "question": f"What imaging modality is shown in image {i}?",
                                 "answer": "Computed tomography" if i % 2 else "Magnetic resonance imaging",
                                 "image": name, "modality": "CT_SCAN" if i % 2 else "MRI_SCAN"}))
    task = out / "paging.jsonl"
    task.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return task


def make_demo_runs(root: str | Path) -> Path:
    """A runs folder like ``make demo`` leaves: a training run and two eval runs of the demo test split."""
    root = Path(root)
    make_training_run(root / "demo" / "train")
    make_eval_run(root / "demo" / "eval-start", policy_reply, model="start")
    make_eval_run(root / "demo" / "eval-trained", modality_policy, model="trained")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """``python -m medix_r1.cli app --runs RUNS`` in a subprocess; the constructor returns when it is ready
    (``ready_s``: seconds from start to its "app ready" line) or raises with its output."""

    def __init__(self, runs: str | Path, *extra: str, env: dict | None = None, timeout: float = 120):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        src = str(Path(__file__).resolve().parents[2])
        full_env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "medix_r1.cli", "app", "--runs", str(runs),
                                      "--port", str(self.port), *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=full_env)
        self.output: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "app ready at" in line:
                self.ready_s = time.perf_counter() - t0
                return
        self.stop()
        raise RuntimeError("the app did not start:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> AppProcess:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["AppProcess", "free_port", "make_demo_runs", "make_eval_run", "make_image_task", "make_training_run", "modality_policy"]
