"""End-to-end training on CPU: a tiny random Qwen2.5-VL, image samples, the composite reward with a scripted
OpenAI-compatible judge on 127.0.0.1 (StubChatServer) and the bundled MiniLM embedder.

Covers: two GRPO steps (finite loss, changed weights, the four components and judge metrics in
metrics.jsonl, plot and samples written, a checkpoint that reloads with load_policy); --resume (continues from
the checkpoint's weights, regression for transformers 5's silent reload of VLM checkpoints, and never logs a
step twice); dynamic sampling inside TRL's real trainer; and the clear errors (judge unreachable, image the
processor rejects, out of memory)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medix_r1.data import load_samples
from medix_r1.testing.openai_stub import StubChatServer, refused_url
from medix_r1.train.callbacks import COMPONENTS
from medix_r1.train.rewards import JudgeUnavailableError, simple_reward_setup
from medix_r1.train.run import RecipeError, TrainingOOMError, run_training

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_data(tmp_path_factory) -> Path:
    """Eight bundled image questions as a canonical JSONL with absolute image paths."""
    out = tmp_path_factory.mktemp("data") / "images.jsonl"
    rows = []
    for s in load_samples(split="train").samples:
        if s.has_image and len(rows) < 8:
            rows.append({**s.to_dict(), "image": [str(Path(p).resolve()) for p in s.images]})
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture(scope="module")
def judge():
    def reply(messages, request):  # a scripted judge: varies with the answer so the reward varies
        return "YES" if len(json.dumps(messages)) % 2 else "NO"

    with StubChatServer(reply) as server:
        yield server


def _recipe(data: Path, judge_url: str, cache: Path, **trainer) -> dict:
    return {
        "model": {"name_or_path": "tiny-qwen2.5-vl", "gradient_checkpointing": False,
                  "min_pixels": 56 * 56, "max_pixels": 112 * 112},
        "data": {"train": str(data), "template": "medix"},
        "reward": {"mode": "default", "embedding_model": "minilm",
                   "judge": {"backend": "openai", "url": judge_url, "model": "stub-judge",
                             "cache_path": str(cache), "max_error_rate": None}},
        "algorithm": "grpo",
        "trainer": {"use_cpu": True, "bf16": False, "report_to": "none", "max_steps": 2, "num_generations": 4,
                    "per_device_train_batch_size": 4, "max_completion_length": 12, "learning_rate": 1e-3,
                    "save_steps": 1, "seed": 0, **trainer},
    }


@pytest.fixture(scope="module")
def trained(image_data, judge, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "grpo"
    recipe = _recipe(image_data, judge.url, out.parent / "verdicts.sqlite")
    result = run_training(recipe, output_dir=out, progress=False)
    return recipe, result


def test_two_grpo_steps_log_every_component_and_save_a_reloadable_policy(trained, judge):
    from medix_r1.models import load_policy
    from medix_r1.models.loading import resolve_policy_source

    _, result = trained
    rows = result.metrics()
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(row["loss"])
        for key in (*COMPONENTS, "reward", "completion_length", "kl", "clip_ratio", "judge_error_rate",
                    "judge_cache_hit_rate", "judge_latency_s"):
            assert row.get(key) is not None, key
        assert row["judge_error_rate"] == 0.0
    assert judge.request_count > 0

    initial = load_file(str(Path(resolve_policy_source("tiny-qwen2.5-vl")) / "model.safetensors"))
    final = load_file(str(result.final_checkpoint / "model.safetensors"))
    assert sum(not torch.equal(initial[k], final[k]) for k in initial) > len(initial) // 2

    policy = load_policy(result.final_checkpoint, device="cpu")
    assert policy.is_vlm and policy.family == "qwen2_5_vl"
    reloaded = dict(policy.model.named_parameters())["model.language_model.embed_tokens.weight"]
    assert torch.equal(reloaded.detach(), final["model.embed_tokens.weight"])
    assert load_policy(result.output_dir / "checkpoint-2", device="cpu").processor is not None

    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| completion |" in result.samples_path.read_text()
    resolved = result.resolved_config_path.read_text()
    assert "medix-v1" in resolved and "reward_weights" in resolved


def test_resume_continues_from_the_checkpoint_weights(trained, image_data, judge):
    import logging

    from transformers import TrainerCallback

    recipe, first = trained
    with pytest.raises(RecipeError, match="--resume"):
        run_training(recipe, output_dir=first.output_dir, progress=False)
    assert (first.output_dir / "run_fingerprint.json").is_file()

    ckpt = load_file(str(first.output_dir / "checkpoint-2" / "model.safetensors"))
    seen = {}

    class WeightsAtStart(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
            if not seen:
                p = dict(model.named_parameters())["model.language_model.embed_tokens.weight"]
                seen["equal"] = torch.equal(p.detach(), ckpt["model.embed_tokens.weight"])
                seen["step"] = state.global_step
                seen["lr"] = optimizer.param_groups[0]["lr"]

    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    records = Records()
    logging.getLogger("transformers.trainer").addHandler(records)
    said: list[str] = []
    try:
        result = run_training(recipe, overrides=["trainer.max_steps=3"], output_dir=first.output_dir, resume=True,
                              extra_callbacks=[WeightsAtStart()], progress=False, announce=said.append)
    finally:
        logging.getLogger("transformers.trainer").removeHandler(records)
    assert seen["equal"] is True and seen["step"] == 2
    # Regression: the resumed step ran at the lr saved after step 2 of 2 (0 at the end of the linear decay);
    # it runs at the new schedule's lr for step 3 of 3: 1e-3 x (3 - 2) / 3.
    assert seen["lr"] == pytest.approx(1e-3 / 3)
    assert [r["step"] for r in result.metrics()] == [1, 2, 3]
    assert result.global_step == 3
    assert any(m.startswith("resuming from checkpoint-2") for m in said), said
    # the tied lm_head is not in the checkpoint by design: no "missing keys ['lm_head.weight']" warning
    assert not [m for m in records.messages if "missing keys" in m], records.messages


def test_resume_refuses_a_different_recipe_naming_the_fields(trained):
    from medix_r1.errors import UsageError

    recipe, first = trained
    with pytest.raises(UsageError) as err:
        run_training(recipe, overrides=["data.template=medix-think"], output_dir=first.output_dir, resume=True,
                     progress=False)
    message = str(err.value)
    assert "data.template: 'medix' -> 'medix-think'" in message and "data.template_version" in message
    assert "--force" in message


def test_dynamic_sampling_in_trl_trainer_trains_only_on_informative_groups(image_data, tmp_path):
    from transformers import TrainerCallback

    ids = [json.loads(line)["id"] for line in image_data.read_text().splitlines()]
    informative = set(ids[:2])

    def scripted(completions, id, **kwargs):  # TRL passes the dataset column `id`
        return [(1.0 if j % 2 else 0.0) if rid in informative else 0.0 for j, rid in enumerate(id)]

    advantages = []

    class Capture(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            advantages.append(self.trainer._buffered_inputs[0]["advantages"].clone())

    cap = Capture()
    recipe = _recipe(image_data, "http://unused", tmp_path / "v.sqlite", max_steps=1, per_device_train_batch_size=8,
                     max_completion_length=6, save_strategy="no")
    recipe["algorithm"] = {"preset": "dapo", "dynamic_sampling": {"max_tries": 20}}

    import medix_r1.train.trainer as trainer_mod

    original_init = trainer_mod.MedixGRPOTrainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        cap.trainer = self

    trainer_mod.MedixGRPOTrainer.__init__ = init
    try:
        result = run_training(recipe, output_dir=tmp_path / "ds", reward_setup=simple_reward_setup([scripted]),
                              extra_callbacks=[cap], progress=False)
    finally:
        trainer_mod.MedixGRPOTrainer.__init__ = original_init
    row = result.metrics()[0]
    assert row["frac_groups_dropped"] > 0 and row["raw"]["dynamic_sampling/rounds"] > 1
    assert advantages[0].shape == (8,) and bool((advantages[0] != 0).all())


def test_unreachable_judge_fails_at_start_saying_how_to_start_one(image_data, tmp_path):
    recipe = _recipe(image_data, refused_url(), tmp_path / "v.sqlite")
    with pytest.raises(JudgeUnavailableError, match="vllm serve"):
        run_training(recipe, output_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "resolved_recipe.yaml").exists()  # no model was loaded, nothing written


def test_image_the_processor_rejects_is_named(tmp_path):
    from PIL import Image

    Image.new("RGB", (2, 500), "white").save(tmp_path / "tiny.png")  # Qwen-VL refuses aspect ratios over 200
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "tiny-1", "question": "Which organ?", "answer": "Liver",
                                "image": ["tiny.png"], "modality": "CT_SCAN"}) + "\n")
    recipe = _recipe(data, "http://unused", tmp_path / "v.sqlite", max_steps=1, save_strategy="no")
    from medix_r1.train import TrainingDataError

    def constant(completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(TrainingDataError, match=r"sample id=tiny-1 .*image 0 \(size \(\d+, \d+\).*aspect ratio"):
        run_training(recipe, output_dir=tmp_path / "r", reward_setup=simple_reward_setup([constant]),
                     progress=False)


def test_out_of_memory_suggests_the_knobs(image_data, tmp_path, monkeypatch):
    import medix_r1.train.trainer as trainer_mod

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer_mod.MedixGRPOTrainer, "train", oom)
    recipe = _recipe(image_data, "http://unused", tmp_path / "v.sqlite")
    with pytest.raises(TrainingOOMError) as err:
        run_training(recipe, output_dir=tmp_path / "r", reward_setup=simple_reward_setup([lambda **k: [0.0]]),
                     progress=False)
    for knob in ("per_device_train_batch_size (now 4)", "num_generations (now 4)", "max_completion_length (now 12)",
                 "model.max_pixels", "gradient_checkpointing", "lora", "--resume"):
        assert knob in str(err.value)


def test_lora_trains_only_adapters_and_the_adapter_folder_reloads(image_data, tmp_path):
    from medix_r1.models import load_policy

    def varied(completions, **kwargs):
        return [float(len(c[0]["content"]) % 3) / 2 for c in completions]

    recipe = _recipe(image_data, "http://unused", tmp_path / "v.sqlite", max_steps=1, save_strategy="no",
                     learning_rate=1e-2)
    recipe["model"]["lora"] = {"enabled": True, "r": 4, "alpha": 8}
    result = run_training(recipe, output_dir=tmp_path / "lora", reward_setup=simple_reward_setup([varied]),
                          progress=False)
    assert (result.final_checkpoint / "adapter_config.json").is_file()
    adapter = load_file(str(result.final_checkpoint / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert not any("visual" in k for k in adapter)  # adapters on the language model only by default
    policy = load_policy(result.final_checkpoint, device="cpu")
    assert policy.is_vlm and type(policy.model).__name__.startswith("Peft")


def test_freeze_vision_keeps_the_merger_trainable():
    from medix_r1.models import load_policy
    from medix_r1.train.model_setup import freeze_vision_tower

    model = load_policy("tiny-qwen2.5-vl", device="cpu").model
    frozen = freeze_vision_tower(model)
    params = dict(model.named_parameters())
    assert frozen > 0
    assert not params["model.visual.blocks.0.attn.qkv.weight"].requires_grad
    assert all(p.requires_grad for n, p in params.items() if "merger" in n)
    assert all(p.requires_grad for n, p in params.items() if "language_model" in n)
