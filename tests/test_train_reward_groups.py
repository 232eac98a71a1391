"""The failed-verdict group rule through TRL's real GRPOTrainer (issue 10 item 1).

Regression: TRL 1.16 adds the weighted components with ``nansum`` and drops a row only when every component
is NaN, so a group of 4 correct answers where the judge failed on one got advantages like
[0.5, 0.5, 0.5, -1.5]: a correct answer pushed down. Here a tiny random Qwen2.5-VL trains one real GRPO step
through ``run_training``; its sampler is replaced by a script that writes four well-formed, different
answers per prompt (a random policy writes no answer a judge could call correct), the scripted judge on
127.0.0.1 says YES to each and fails on the first request it receives. The four advantages must be equal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from medix_r1.data import load_samples
from medix_r1.testing.openai_stub import StubChatServer, StubFault
from medix_r1.train.run import run_training

pytestmark = pytest.mark.slow

ANSWERS = ["it is the finding shown", "the finding seen here", "this is the finding", "the shown finding"]


@pytest.fixture()
def one_prompt(tmp_path) -> Path:
    """One bundled image question, as canonical JSONL with an absolute image path."""
    s = next(s for s in load_samples(split="train").samples if s.has_image)
    out = tmp_path / "one.jsonl"
    out.write_text(json.dumps({**s.to_dict(), "image": [str(Path(p).resolve()) for p in s.images]}) + "\n")
    return out


def _scripted_sampler(monkeypatch):
    """Make the policy 'sample' the four ANSWERS (one per completion of a group) instead of random tokens."""
    from medix_r1 import models
    from medix_r1.models.loading import load_policy as real_load_policy

    def load_policy(*args, **kwargs):
        policy = real_load_policy(*args, **kwargs)
        tok = policy.tokenizer
        texts = [f"<thinking>I look at the image.</thinking><answer>{a}</answer>" for a in ANSWERS]
        ids = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
        width = max(map(len, ids))
        table = torch.tensor([x + [tok.eos_token_id] * (width - len(x)) for x in ids])

        def generate(*, input_ids, **kwargs):
            rows = table[torch.arange(input_ids.shape[0]) % len(ANSWERS)].to(input_ids.device)
            return torch.cat([input_ids, rows], dim=1)

        policy.model.generate = generate
        return policy

    monkeypatch.setattr(models, "load_policy", load_policy, raising=False)


def test_a_failed_verdict_moves_no_advantage_through_trl(one_prompt, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    import medix_r1.train.trainer as trainer_mod

    _scripted_sampler(monkeypatch)
    captured: dict = {}

    class Capture(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            captured["advantages"] = captured["trainer"]._buffered_inputs[0]["advantages"].clone()

    original_init = trainer_mod.MedixGRPOTrainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        captured["trainer"] = self

    monkeypatch.setattr(trainer_mod.MedixGRPOTrainer, "__init__", init)
    recipe = {
        "model": {"name_or_path": "tiny-qwen2.5-vl", "gradient_checkpointing": False,
                  "min_pixels": 56 * 56, "max_pixels": 112 * 112},
        "data": {"train": str(one_prompt), "template": "medix"},
        "reward": {"mode": "default", "components": ["accuracy_llm", "format"],
                   "judge": {"backend": "openai", "model": "stub-judge", "cache": False, "max_retries": 0,
                             "max_error_rate": None}},
        "algorithm": "grpo",
        "trainer": {"use_cpu": True, "bf16": False, "report_to": "none", "max_steps": 1, "num_generations": 4,
                    "per_device_train_batch_size": 4, "max_completion_length": 32, "save_strategy": "no",
                    "seed": 0},
    }
    with StubChatServer("YES", faults=[StubFault.http(500)]) as server:
        recipe["reward"]["judge"]["url"] = server.url
        result = run_training(recipe, output_dir=tmp_path / "run", extra_callbacks=[Capture()], progress=False)
        received = server.request_count

    adv = captured["advantages"]
    assert adv.shape == (4,)
    assert torch.allclose(adv, adv[0].expand(4)), adv.tolist()  # was [0.5, 0.5, 0.5, -1.5] (x 1/std)

    (row,) = result.metrics()
    assert received == 4 and row["judge_requests"] == 4  # the judge really was asked four times, one failed
    assert row["judge_error_rate"] == pytest.approx(0.25)
    assert row["raw"]["judge_failed_groups"] == 1 and row["raw"]["reward/filled_values"] == 1
    assert row["accuracy_llm"] == 1.0 and row["format"] == 1.0  # the mean of the three real verdicts
    samples = [json.loads(x) for x in (result.output_dir / "samples.jsonl").read_text().splitlines()]
    llm = [s["accuracy_llm"] for s in samples]
    assert sorted(llm, key=lambda v: v is None) == [1.0, 1.0, 1.0, None]  # shown as no verdict, not a 1
    assert all(not math.isnan(s["advantage"]) for s in samples)
