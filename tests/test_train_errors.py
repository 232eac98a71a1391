"""`medix-r1 train` on the common mistakes of issue 9: each is one message naming the thing, exit 2 (usage or
input) or 3 (service), no traceback, and caught by --dry-run and before the real run loads any model.

Also the value fixes of issue 12 item 9 (`--set trainer.save_strategy=no`, numpy scalars in the resolved
recipe) and the dry-run's batch layout (issue 12 item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medix_r1.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAPER_8B = str(ROOT / "recipes/qwen3-vl-8b/dapo.yaml")


def _recipe(tmp_path: Path, data: dict | str, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def _cpu(**sections) -> dict:
    return {"trainer": {"use_cpu": True}, **sections}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def _assert_clean_error(code: int, err: str, expected_code: int, *names: str) -> None:
    assert code == expected_code, err
    assert "Traceback" not in err
    assert [line.startswith("error:") for line in err.splitlines()].count(True) == 1, err
    for name in names:
        assert name in err, (name, err)


def _bad_row_jsonl(tmp_path: Path) -> Path:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "question": "q", "answer": "x"}\n{"id": "b", "question": "q"}\n')
    return data


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if the real run gets as far as the reward models or the policy."""
    from medix_r1.train import run

    def forbidden(*args, **kwargs):
        raise AssertionError("the run loaded the reward or the policy before finding the mistake")

    monkeypatch.setattr(run, "build_rewards", forbidden)
    monkeypatch.setattr("medix_r1.models.load_policy", forbidden)


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_data_with_a_bad_row_names_file_row_id_and_field(tmp_path, capsys, dry, no_model_loading):
    recipe = _recipe(tmp_path, _cpu(data={"train": str(_bad_row_jsonl(tmp_path))}))
    code, err = _run(["train", recipe, *(["--dry-run"] if dry else ["--output-dir", str(tmp_path / "run")])],
                     capsys)
    _assert_clean_error(code, err, 2, "d.jsonl:2", "id=b", "field=answer", "data.on_error: skip")


def test_parquet_with_the_wrong_columns_lists_the_columns_it_has(tmp_path, capsys):
    import pandas as pd

    # A Parquet file with the hub layout's column names misspelt (MBZUAI/medix-rl-data has problem/solution).
    file = tmp_path / "train.parquet"
    pd.DataFrame({"prompt": ["What is shown?"], "answer_text": ["<X_RAY> effusion"]}).to_parquet(file)
    code, err = _run(["train", _recipe(tmp_path, _cpu(data={"train": str(file)})), "--dry-run"], capsys)
    _assert_clean_error(code, err, 2, "train.parquet", "field=question", "prompt, answer_text")


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_missing_data_file_is_named(tmp_path, capsys, dry, no_model_loading):
    missing = tmp_path / "nope.jsonl"
    recipe = _recipe(tmp_path, _cpu(data={"train": str(missing)}))
    code, err = _run(["train", recipe, *(["--dry-run"] if dry else ["--output-dir", str(tmp_path / "run")])],
                     capsys)
    _assert_clean_error(code, err, 2, str(missing), "data.train")


def test_template_typo_names_the_key_and_the_nearest_template(tmp_path, capsys, no_model_loading):
    recipe = _recipe(tmp_path, _cpu(data={"template": "medx"}))
    for extra in (["--dry-run"], ["--output-dir", str(tmp_path / "run")]):
        code, err = _run(["train", recipe, *extra], capsys)
        _assert_clean_error(code, err, 2, "data.template", "'medx'", "mean 'medix'")


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_missing_model_folder_is_found_before_the_judge_and_embedder_load(tmp_path, capsys, dry,
                                                                          no_model_loading):
    missing = tmp_path / "my-model"
    recipe = _recipe(tmp_path, _cpu(model={"name_or_path": str(missing)}))
    code, err = _run(["train", recipe, *(["--dry-run"] if dry else ["--output-dir", str(tmp_path / "run")])],
                     capsys)
    _assert_clean_error(code, err, 2, "model.name_or_path", str(missing), "no such folder")


def test_dry_run_says_where_the_model_comes_from(tmp_path, monkeypatch):
    from medix_r1.train.preflight import check_model_source

    assert check_model_source("embedded").startswith("alias 'embedded'")
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert check_model_source(str(folder)) == f"local folder {folder}"
    # a hub id in the local hub cache (the cache's real layout: models--ORG--NAME/{refs/main,snapshots/REV/})
    cache = tmp_path / "hub"
    snapshot = cache / "models--Org--cached-vl" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--Org--cached-vl" / "refs").mkdir()
    (cache / "models--Org--cached-vl" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert check_model_source("Org/cached-vl") == "hub id Org/cached-vl (in the local hub cache)"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "not checked: offline" in check_model_source("Org/not-cached-vl")


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_unwritable_output_folder_is_found_up_front(tmp_path, capsys, dry, no_model_loading):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "run"  # cannot be created, whoever runs the test (root ignores permission bits)
    code, err = _run(["train", _recipe(tmp_path, _cpu()), "--output-dir", str(out),
                      *(["--dry-run"] if dry else [])], capsys)
    _assert_clean_error(code, err, 2, str(out), "--output-dir")


@pytest.mark.parametrize("trainer, names", [
    ({"max_steps": "fifteen"}, ["trainer.max_steps", "expected a whole number", "'fifteen'"]),
    ({"bf16": "sometimes"}, ["trainer.bf16", "expected true or false", "'sometimes'"]),
    # GRPOConfig itself fails on this with "unsupported operand type(s) for %", naming no key
    ({"per_device_train_batch_size": "4"}, ["trainer.per_device_train_batch_size", "remove the quotes"]),
    ({"save_strategy": "sometimes"}, ["trainer.save_strategy", "not one of", "steps"]),
])
def test_trainer_values_are_type_checked_naming_the_key(tmp_path, capsys, trainer, names):
    recipe = _recipe(tmp_path, {"trainer": {"use_cpu": True, **trainer}})
    code, err = _run(["train", recipe, "--dry-run"], capsys)
    _assert_clean_error(code, err, 2, str(tmp_path / "r.yaml"), *names)


@pytest.mark.parametrize("reward, names", [
    # RewardConfig fails on these with "'<=' not supported between instances of 'str' and 'int'"
    ({"judge": {"timeout": "60"}}, ["reward.judge.timeout", "remove the quotes"]),
    ({"judge": {"max_error_rate": "0.05"}}, ["reward.judge.max_error_rate"]),
])
def test_reward_type_errors_name_the_key(tmp_path, capsys, reward, names):
    code, err = _run(["train", _recipe(tmp_path, _cpu(reward=reward)), "--dry-run"], capsys)
    _assert_clean_error(code, err, 2, *names)


def test_learning_rate_written_1e_6_is_read_as_the_number_with_a_note(tmp_path, capsys):
    recipe = _recipe(tmp_path, "trainer: {use_cpu: true, learning_rate: 1e-6}\n")  # YAML 1.1: a string
    code = main(["train", recipe, "--dry-run"])
    out = capsys.readouterr()
    assert code == 0
    assert yaml.safe_load(out.out)["trainer_resolved"]["learning_rate"] == 1e-6
    assert "note:" in out.err and "trainer.learning_rate" in out.err and "write 1.0e-6" in out.err


def test_set_save_strategy_no_is_accepted(tmp_path, capsys):
    """Regression: YAML reads `no` as false, which GRPOConfig rejected."""
    code = main(["train", _recipe(tmp_path, _cpu()), "--dry-run", "--set", "trainer.save_strategy=no"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert yaml.safe_load(out.out)["trainer_resolved"]["save_strategy"] == "no"
    assert "trainer.save_strategy" in out.err and "note:" in out.err


def test_dry_run_decodes_every_image_and_names_a_non_image_file(tmp_path, capsys):
    not_an_image = tmp_path / "scan.png"
    not_an_image.write_text("this is text, not a PNG")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "r7", "question": "What is shown?", "answer": "effusion",
                                "image": [str(not_an_image)]}) + "\n")
    code, err = _run(["train", _recipe(tmp_path, _cpu(data={"train": str(data)})), "--dry-run"], capsys)
    _assert_clean_error(code, err, 2, "id=r7", "images[0]", str(not_an_image))


def test_dry_run_counts_the_decoded_images(capsys):
    code = main(["train", str(ROOT / "recipes/demo/cpu.yaml"), "--dry-run"])
    out = capsys.readouterr()
    assert code == 0
    resolved = yaml.safe_load(out.out)
    assert resolved["checks"]["images_decoded"] == resolved["data_report"]["with_images"] == 70
    assert "# images decoded: 70" in out.err


def test_empty_recipe_is_an_error(tmp_path, capsys):
    for text in ("", "# only a comment\n"):
        code, err = _run(["train", _recipe(tmp_path, text), "--dry-run"], capsys)
        _assert_clean_error(code, err, 2, "r.yaml", "empty")


def test_unreachable_judge_hint_names_only_flags_train_has(tmp_path, capsys):
    import re

    from medix_r1.cli import build_parser
    from medix_r1.testing.openai_stub import refused_url

    recipe = _recipe(tmp_path, _cpu(reward={"judge": {"backend": "openai", "url": refused_url(), "timeout": 2,
                                                      "max_retries": 0}}))
    code, err = _run(["train", recipe, "--output-dir", str(tmp_path / "run")], capsys)
    _assert_clean_error(code, err, 3, "judge", "reward.judge.url")
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    own = {s for a in train._actions for s in a.option_strings}
    # flags inside a `quoted command` belong to that program (vllm serve ...), not to medix-r1 train
    own_text = re.sub(r"`[^`]*`", "", err)
    named = {w.strip("'\",.;:()") for w in own_text.split() if w.startswith("--")}
    assert named <= own, named - own


# --------------------------------------------------------------------------------------------- layout
def test_dry_run_layout_for_the_paper_recipe_at_8_and_4_processes(capsys):
    assert main(["train", PAPER_8B, "--dry-run", "--num-processes", "8"]) == 0
    err8 = capsys.readouterr().err
    assert "completions per optimizer step: 640 " in err8 and "completions per generation round: 2560 " in err8
    assert "optimizer steps per round: 4 " in err8 and "generation_batch_size: 2560" in err8
    assert "global_batch" not in err8

    assert main(["train", PAPER_8B, "--dry-run", "--num-processes", "4"]) == 0
    err4 = capsys.readouterr().err
    assert "completions per optimizer step: 320 " in err4 and "completions per generation round: 1280 " in err4
    fix = "--set trainer.gradient_accumulation_steps=40 --set trainer.steps_per_generation=160"
    assert "warning: on 4 processes" in err4 and fix in err4
    # the printed overrides do restore the paper's batch
    assert main(["train", PAPER_8B, "--dry-run", "--num-processes", "4", *fix.split()]) == 0
    restored = capsys.readouterr().err
    assert "completions per optimizer step: 640 " in restored and "global_batch" not in restored


def test_dry_run_checks_trls_batch_rules_for_n_processes(tmp_path, capsys):
    recipe = _recipe(tmp_path, _cpu(algorithm="grpo", trainer={"use_cpu": True, "num_generations": 5,
                                                              "per_device_train_batch_size": 4,
                                                              "steps_per_generation": 1}))
    code, err = _run(["train", recipe, "--dry-run", "--num-processes", "3"], capsys)
    _assert_clean_error(code, err, 2, "for 3 processes", "generation_batch_size (12)", "num_generations (5)")


def test_dry_run_default_process_count_comes_from_the_launcher(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", _recipe(tmp_path, _cpu()), "--dry-run"]) == 0
    assert "batch layout for 2 processes (WORLD_SIZE)" in capsys.readouterr().err


def test_use_vllm_without_vllm_is_a_warning(tmp_path, capsys):
    import importlib.util

    assert main(["train", _recipe(tmp_path, {"trainer": {"use_cpu": True, "use_vllm": True}}), "--dry-run"]) == 0
    err = capsys.readouterr().err
    if importlib.util.find_spec("vllm") is None:
        assert "warning: trainer.use_vllm is true but vllm is not installed" in err
    else:
        assert "vllm is not installed" not in err


# --------------------------------------------------------------------------------------------- small fixes
def test_resolved_yaml_takes_numpy_scalars():
    """Regression: _plain crashed on numpy floats (np.floating(x)) and wrote numpy ints as text."""
    import numpy as np

    from medix_r1.train.recipe import dump_yaml

    loaded = yaml.safe_load(dump_yaml({"a": np.float64(0.5), "b": np.int64(3), "c": np.bool_(True),
                                       "d": np.array([1, 2])}))
    assert loaded == {"a": 0.5, "b": 3, "c": True, "d": [1, 2]}


def test_pixel_bounds_are_areas_only_for_qwen_processors():
    """Regression: apply_pixel_bounds wrote 262144 (an area) into Idefics3's longest_edge (a length)."""
    from transformers import Idefics3ImageProcessorPil, Qwen2VLImageProcessorPil

    from medix_r1.models.processors import apply_pixel_bounds

    class Holder:
        def __init__(self, ip):
            self.image_processor = ip

    idefics = Holder(Idefics3ImageProcessorPil(size={"longest_edge": 364}))
    before = dict(idefics.image_processor.size)
    apply_pixel_bounds(idefics, 512 * 512, 2048 * 2048)
    assert dict(idefics.image_processor.size) == before

    qwen = Holder(Qwen2VLImageProcessorPil())
    apply_pixel_bounds(qwen, 512 * 512, 2048 * 2048)
    size = qwen.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (512 * 512, 2048 * 2048)


def test_help_names_recipes_that_exist(capsys):
    import re

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    paths = set(re.findall(r"recipes/[\w./-]+\.yaml", text))
    assert paths and all((ROOT / p).is_file() for p in paths), [p for p in paths if not (ROOT / p).is_file()]


def test_recipe_comments_name_paths_that_exist():
    import re

    for recipe in (ROOT / "recipes").rglob("*.yaml"):
        comments = "\n".join(line for line in recipe.read_text().splitlines() if "#" in line)
        for path in re.findall(r"(?:recipes|docs)/[\w./-]+\.(?:yaml|md)", comments):
            assert (ROOT / path).is_file(), f"{recipe.relative_to(ROOT)} names {path}"
        assert "offline.md" not in comments and "reference.md" not in comments, recipe


# --------------------------------------------------------------------------------------------- resume
def test_fingerprint_mismatch_names_fields_and_force_accepts_it(tmp_path, caplog):
    from medix_r1.errors import UsageError
    from medix_r1.prompts import get_template
    from medix_r1.train.recipe import load_recipe
    from medix_r1.train.resume import check_fingerprint, recipe_fingerprint, write_fingerprint

    reward = {"mode": "paper", "components": ["format"], "weights": {"format": 1.0}}
    first = recipe_fingerprint(load_recipe({"algorithm": "dapo"}), reward, get_template("medix"))
    write_fingerprint(tmp_path, first)
    check_fingerprint(tmp_path, first, force=False)  # the same recipe resumes
    changed = recipe_fingerprint(load_recipe({"algorithm": "grpo", "model": "tiny-qwen3-vl"}),
                                 {**reward, "weights": {"format": 0.5}}, get_template("medix"))
    with pytest.raises(UsageError) as err:
        check_fingerprint(tmp_path, changed, force=False)
    text = str(err.value)
    for field in ("algorithm.preset: 'dapo' -> 'grpo'", "model.name_or_path", "reward.weights",
                  "algorithm.dynamic_sampling"):
        assert field in text, field
    assert "--force" in text and "data.train" not in text
    check_fingerprint(tmp_path, changed, force=True)
    assert "resuming with a different recipe (--force)" in caplog.text


def test_step_warnings_of_the_libraries_are_filtered(recwarn):
    """Regression (issue 11 item 7): transformers warned at every training step that TRL's call of
    is_gradient_checkpointing is deprecated."""
    import warnings

    from medix_r1.train.warnings import quiet_step_warnings

    quiet_step_warnings()
    from transformers import AutoModelForCausalLM, LlamaConfig

    model = AutoModelForCausalLM.from_config(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                         num_attention_heads=2, vocab_size=64))
    model.is_gradient_checkpointing  # noqa: B018 - the property TRL reads at every step
    warnings.warn("an unrelated FutureWarning", FutureWarning, stacklevel=1)
    messages = [str(w.message) for w in recwarn.list]
    assert "an unrelated FutureWarning" in messages
    assert not [m for m in messages if "gradient_checkpointing" in m]


def test_resume_hides_only_the_tied_lm_head_missing_key_warning():
    """transformers' Trainer warns "There were missing keys in the checkpoint model loaded: ['lm_head.weight']"
    on every resume of a tied-embedding model (the demo's SmolVLM): hidden; any other missing key still shows."""
    import logging
    from types import SimpleNamespace

    from transformers import Trainer

    from medix_r1.train.resume import quiet_tied_weights_warning

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("transformers.trainer")
    logger.addHandler(handler)
    fake = SimpleNamespace(model=SimpleNamespace(_keys_to_ignore_on_save=None))
    try:
        with quiet_tied_weights_warning(True):
            Trainer._issue_warnings_after_load(fake, SimpleNamespace(missing_keys=["lm_head.weight"],
                                                                     unexpected_keys=[]))
            assert seen == []
            Trainer._issue_warnings_after_load(fake, SimpleNamespace(missing_keys=["model.norm.weight"],
                                                                     unexpected_keys=[]))
            assert len(seen) == 1 and "model.norm.weight" in seen[0]
        Trainer._issue_warnings_after_load(fake, SimpleNamespace(missing_keys=["lm_head.weight"],
                                                                 unexpected_keys=[]))
        assert len(seen) == 2  # outside a resume the filter is gone
    finally:
        logger.removeHandler(handler)
