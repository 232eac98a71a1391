"""Recipes: strict schema (unknown keys name the nearest valid one), presets and overrides, --set, and every
shipped recipe passing --dry-run offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medix_r1.cli import main
from medix_r1.train.presets import PRESETS
from medix_r1.train.recipe import RecipeError, apply_overrides, load_recipe, parse_override

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "recipes").rglob("*.yaml")
                 if "accelerate" not in p.parts)


def _write(tmp_path, data, name="r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


PAPER = ["recipes/qwen2.5-vl-7b/gspo.yaml", "recipes/qwen3-vl-2b/dapo.yaml", "recipes/qwen3-vl-30b-a3b/dapo.yaml",
         "recipes/qwen3-vl-8b/dapo.yaml", "recipes/qwen3-vl-8b/grpo.yaml"]


def test_shipped_recipes_are_the_papers_five_the_single_gpu_one_and_the_demo():
    assert SHIPPED == sorted(["recipes/demo/cpu.yaml", "recipes/qwen3-vl-2b/dapo_1gpu.yaml", *PAPER])


@pytest.mark.parametrize("recipe", SHIPPED)
def test_every_shipped_recipe_passes_dry_run(recipe, capsys):
    n = "8" if recipe in PAPER else "1"
    assert main(["train", str(ROOT / recipe), "--dry-run", "--num-processes", n]) == 0
    out = capsys.readouterr()
    resolved = yaml.safe_load(out.out)
    trainer = resolved["trainer_resolved"]
    assert resolved["prompt_template"]["version"]
    assert len(trainer["reward_weights"]) == len(resolved["reward_resolved"]["components"])
    # the layout the recipe's own comment states, and no batch warning at that process count
    assert not [w for w in resolved["layout"]["warnings"] if "global_batch" in w]
    if recipe in PAPER:
        assert "completions per optimizer step: 640 " in out.err
        assert "completions per generation round: 2560 " in out.err
        assert "optimizer steps per round: 4 " in out.err
        assert resolved["layout"]["generation_batch_size"] == 2560
    if recipe == "recipes/qwen3-vl-2b/dapo_1gpu.yaml":
        assert (resolved["layout"]["completions_per_optimizer_step"], resolved["layout"]["generation_batch_size"],
                resolved["layout"]["optimizer_steps_per_round"]) == (160, 640, 4)
    if recipe in PAPER:  # the paper's hyperparameters
        assert trainer["num_generations"] == 5 and trainer["learning_rate"] == 1e-6
        assert trainer["lr_scheduler_type"] == "constant" and trainer["weight_decay"] == 0.01
        assert trainer["max_completion_length"] == 4096 and resolved["data"]["max_prompt_length"] == 4352
        assert (trainer["per_device_train_batch_size"] * 8 * trainer["steps_per_generation"]) == 2560
        assert trainer["per_device_train_batch_size"] * 8 * trainer["gradient_accumulation_steps"] == 640
        assert resolved["model"]["min_pixels"] == 512 ** 2 and resolved["model"]["max_pixels"] == 2048 ** 2
        assert resolved["reward_resolved"]["weights"] == {"accuracy_llm": 0.5175, "accuracy_embed": 0.3375,
                                                          "modality": 0.045, "format": 0.1}
        preset = resolved["algorithm"]["preset"]
        for key, value in PRESETS[preset].items():
            assert trainer[key] == value, key
        assert resolved["algorithm"]["dynamic_sampling"]["enabled"] is (preset == "dapo")


def test_demo_recipe_is_the_measured_cpu_setting():
    r = load_recipe(ROOT / "recipes/demo/cpu.yaml")
    t = r.trainer_settings()
    assert (r.model.name_or_path, r.data.template, r.data.train) == ("embedded", "medix-3shot", "bundled")
    assert t["use_cpu"] is True and t["bf16"] is False and t["report_to"] == "none"
    assert (t["max_steps"], t["num_generations"], t["max_completion_length"], t["learning_rate"], t["beta"]) == (
        6, 4, 48, 5e-5, 0.0)
    assert r.data.image_only and r.reward["judge"]["backend"] == "local"
    # all four components are logged; only format and modality move the policy (see the recipe's comment)
    assert r.reward["weights"] == {"format": 0.75, "modality": 0.25, "accuracy_llm": 0.0, "accuracy_embed": 0.0}
    assert r.preset_overrides() == {"beta": (0.01, 0.0), "loss_type": ("dapo", "grpo")}


@pytest.mark.parametrize("data, message", [
    ({"modle": {}}, "modle: unknown key; did you mean 'model'?"),
    ({"model": {"lora": {"alfa": 8}}}, "model.lora.alfa: unknown key; did you mean 'model.lora.alpha'?"),
    ({"model": {"lora": {"rank": 8}}}, "model.lora.rank: unknown key. Valid keys here: enabled, r, alpha,"),
    ({"data": {"templat": "medix"}}, "did you mean 'data.template'?"),
    ({"trainer": {"learning_rat": 1e-5}},
     "trainer.learning_rat: not a trl.GRPOConfig field; did you mean 'trainer.learning_rate'?"),
    ({"trainer": {"output_dir": "x"}}, "trainer.output_dir: set this in the recipe's top-level `output_dir`"),
    ({"trainer": {"reward_weights": [1]}}, "reward.weights"),
    ({"trainer": {"gradient_checkpointing": True}}, "model.gradient_checkpointing"),
    ({"algorithm": "dapoo"}, "'dapoo' is not one of 'grpo', 'dapo', 'gspo', 'dr_grpo'; did you mean 'dapo'?"),
    ({"algorithm": {"dynamic_sampling": {"max_trys": 3}}}, "did you mean 'algorithm.dynamic_sampling.max_tries'?"),
    ({"model": {"lora": {"r": "16"}}}, "model.lora.r: expected an integer, got '16'"),
    ({"model": {"freeze_vision": "yes"}}, "model.freeze_vision: expected true or false"),
    ({"model": {"min_pixels": 10, "max_pixels": 5}}, "model.min_pixels: 10 is larger than model.max_pixels 5"),
    ({"data": {"on_error": "ignore"}}, "'ignore' is not one of 'raise', 'skip'"),
])
def test_invalid_recipes_name_the_key_and_the_fix(tmp_path, data, message):
    with pytest.raises(RecipeError) as err:
        load_recipe(_write(tmp_path, data))
    assert message in str(err.value)
    assert str(tmp_path / "r.yaml") in str(err.value) or "trainer" not in message


def test_reward_section_is_checked_by_reward_config(tmp_path, capsys):
    path = _write(tmp_path, {"reward": {"judge": {"timout": 3}}, "trainer": {"use_cpu": True}})
    assert main(["train", str(path), "--dry-run"]) == 2
    assert "did you mean 'timeout'" in capsys.readouterr().err.lower()


def test_yaml_number_written_as_string_gets_a_hint(tmp_path):
    with pytest.raises(RecipeError, match=r"write 1.0e-6"):
        load_recipe(_write(tmp_path, "algorithm: {dynamic_sampling: {min_mean: 1e-6}}\n"))


def test_duplicate_yaml_keys_are_an_error(tmp_path):
    with pytest.raises(RecipeError, match="duplicate key 'trainer'"):
        load_recipe(_write(tmp_path, "trainer: {max_steps: 1}\ntrainer: {max_steps: 2}\n"))


def test_presets_and_trainer_overrides():
    r = load_recipe({"algorithm": "gspo", "trainer": {"epsilon_high": 5e-4}, "model": {"gradient_checkpointing": False}})
    t = r.trainer_settings()
    assert t["importance_sampling_level"] == "sequence" and t["loss_type"] == "grpo" and t["beta"] == 0.0
    assert t["epsilon"] == 3e-4 and t["epsilon_high"] == 5e-4 and t["activation_checkpointing"] is False
    assert r.preset_overrides() == {"epsilon_high": (4e-4, 5e-4)}
    assert load_recipe({"algorithm": "grpo"}).trainer_settings()["beta"] == 0.01
    dr = load_recipe({"algorithm": "dr_grpo"}).trainer_settings()
    assert dr["loss_type"] == "dr_grpo" and dr["scale_rewards"] == "none"
    assert load_recipe({"algorithm": "dapo"}).algorithm.dynamic_sampling_enabled
    assert not load_recipe({"algorithm": {"preset": "dapo", "dynamic_sampling": {"enabled": False}}}
                           ).algorithm.dynamic_sampling_enabled
    assert load_recipe({"algorithm": {"preset": "grpo", "dynamic_sampling": {"enabled": True}}}
                       ).algorithm.dynamic_sampling_enabled


def test_set_overrides():
    assert parse_override("trainer.learning_rate=1.0e-5") == (["trainer", "learning_rate"], 1e-5)
    assert parse_override("model.lora.enabled=true") == (["model", "lora", "enabled"], True)
    assert parse_override("data.limit=null") == (["data", "limit"], None)
    raw = apply_overrides({"algorithm": "dapo"}, ["algorithm.dynamic_sampling.max_tries=3", "trainer.max_steps=2"])
    assert raw == {"algorithm": {"preset": "dapo", "dynamic_sampling": {"max_tries": 3}}, "trainer": {"max_steps": 2}}
    r = load_recipe(ROOT / "recipes/demo/cpu.yaml", ["trainer.max_steps=2", "algorithm=dapo", "model.lora.enabled=true"])
    assert r.trainer["max_steps"] == 2 and r.algorithm.preset == "dapo" and r.model.lora.enabled
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_override("trainer.max_steps")
    with pytest.raises(RecipeError, match="did you mean 'trainer.max_steps'"):
        load_recipe(ROOT / "recipes/demo/cpu.yaml", ["trainer.max_step=2"])


def test_dry_run_cli_prints_resolved_config_with_overrides(capsys, tmp_path):
    code = main(["train", str(ROOT / "recipes/demo/cpu.yaml"), "--dry-run", "--set", "trainer.max_steps=3",
                 "--output-dir", str(tmp_path / "run")])
    out = capsys.readouterr()
    assert code == 0 and "recipe OK" in out.err
    resolved = yaml.safe_load(out.out)
    assert resolved["trainer_resolved"]["max_steps"] == 3
    assert resolved["trainer_resolved"]["output_dir"] == str(tmp_path / "run")
    from medix_r1.prompts import get_template

    assert resolved["prompt_template"] == {"name": "medix-3shot", "version": get_template("medix-3shot").version}
    assert resolved["data_report"]["loaded"] > 0 and resolved["data_report"]["skipped_rows"] == 0
    assert not (tmp_path / "run").exists()  # a dry run writes nothing



