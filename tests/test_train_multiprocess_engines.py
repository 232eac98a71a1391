"""The distributed engines in two real gloo processes on CPU (issue 12 items 1, 2, 4 and 8).

A tiny random Qwen2.5-VL trains two GRPO steps with the composite reward (format, modality, the scripted
judge on 127.0.0.1, the bundled MiniLM embedder) under

- DDP, launched with ``torchrun --nproc_per_node 2``, then ``--resume``d to a third step;
- DeepSpeed ZeRO-3, launched with ``accelerate launch`` and the CPU twin of ``recipes/accelerate/zero3.yaml``
  (regression: ZeRO-3 could not start because the policy loaded with a ``device_map``; and the reward's
  embedder, loaded lazily after ZeRO-3 was on, came out partitioned and empty).

FSDP2 cannot run on CPU through accelerate 1.15 (it applies FSDP to GPU launches only and would train plain
DDP): that launch must fail with a clear message.

Each run checks: the full weights are identical on both ranks after every step (and change), ``metrics.jsonl``
has one row per step, and no file of the run folder is opened for writing by both processes. The training
driver and the launchers are in ``tests/_multiproc.py``. Also: a cold model cache built under a 2-process
launch (regression: a rank-1 build had no config.json or weights) and the ``accelerate launch --cpu`` trap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from _multiproc import REPO, cpu_accelerate_config, launch
from medix_r1.data import load_samples
from medix_r1.testing.openai_stub import StubChatServer
from medix_r1.train.callbacks import read_metrics

pytestmark = pytest.mark.slow
DRIVER = REPO / "tests" / "_multiproc.py"


@pytest.fixture(scope="module")
def judge():
    def reply(messages, request):  # varies with the completion, so the rewards (and the weights) move
        return "YES" if len(json.dumps(messages)) % 2 else "NO"

    with StubChatServer(reply) as server:
        yield server


@pytest.fixture(scope="module")
def recipe(judge, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("engines")
    rows = [{**s.to_dict(), "image": [str(Path(p).resolve()) for p in s.images]}
            for s in load_samples(split="train").samples if s.has_image][:8]
    data = tmp / "images.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {
        "model": {"name_or_path": "tiny-qwen2.5-vl", "gradient_checkpointing": False,
                  "min_pixels": 56 * 56, "max_pixels": 56 * 56},
        "data": {"train": str(data), "template": "medix"},
        "reward": {"mode": "default", "embedding_model": "minilm",
                   "judge": {"backend": "openai", "url": judge.url, "model": "stub-judge", "cache": False,
                             "max_error_rate": None}},
        "algorithm": "grpo",
        "trainer": {"use_cpu": True, "bf16": False, "report_to": "none", "max_steps": 2, "num_generations": 4,
                    "per_device_train_batch_size": 4, "max_completion_length": 8, "learning_rate": 1e-2,
                    "save_steps": 1, "seed": 0, "lr_scheduler_type": "constant"},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _train(tmp_path: Path, recipe: Path, *extra: str, out: Path | None = None, **launch_kwargs):
    out = out or tmp_path / "run"
    res = launch(["train", str(recipe), str(out), *extra], script=DRIVER,
                 log_dir=tmp_path / f"logs-{len(list(tmp_path.glob('logs-*')))}", timeout=600, **launch_kwargs)
    assert res.returncode == 0, res.describe()
    return out, res


def _probe(out: Path, rank: int) -> list[dict]:
    lines = (out.parent / "probe" / f"weights-rank{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _check_run(out: Path, steps: list[int], engine: str) -> None:
    ranks = [_probe(out, r) for r in (0, 1)]
    assert [row["step"] for row in ranks[0]] == steps
    assert ranks[0] == ranks[1], "the two processes hold different weights after a step"
    assert {(row["engine"], row["sharded"]) for row in ranks[0]} == {(engine, engine != "ddp")}
    digests = [row["digest"] for row in ranks[0]]
    assert len(set(digests)) == len(digests), "an optimizer step left the weights unchanged"
    assert [row["step"] for row in read_metrics(out / "metrics.jsonl")] == steps
    writes = [set(json.loads((out.parent / "probe" / f"writes-rank{r}.json").read_text())) for r in (0, 1)]
    assert writes[0] & {"metrics.jsonl", "resolved_recipe.yaml"}, writes[0]
    assert not writes[0] & writes[1], f"files written by both processes: {sorted(writes[0] & writes[1])}"


def _reloads(folder: Path) -> None:
    from medix_r1.models import load_policy

    policy = load_policy(folder, device="cpu")
    assert policy.is_vlm and policy.family == "qwen2_5_vl"


def test_ddp_with_torchrun_trains_identical_weights_and_resumes(recipe, tmp_path):
    out, _ = _train(tmp_path, recipe)
    _check_run(out, [1, 2], "ddp")
    _reloads(out / "final")

    _train(tmp_path, recipe, "--resume", "--set", "trainer.max_steps=3")
    _check_run(out, [1, 2, 3], "ddp")
    assert (out / "checkpoint-3").is_dir()


def test_deepspeed_zero3_starts_and_trains(recipe, tmp_path):
    config = cpu_accelerate_config("zero3", tmp_path)
    out, res = _train(tmp_path, recipe, launcher="accelerate", accelerate_config=config)
    _check_run(out, [1, 2], "deepspeed")
    assert "0.0 M parameters" not in res.stderr(0)  # counted from ZeRO-3's partitions, not the empty stubs
    assert (out / "checkpoint-2" / "global_step2").is_dir()  # DeepSpeed's own (sharded) checkpoint, for --resume
    _reloads(out / "final")  # the 16-bit weights gathered at save (zero3_save_16bit_model)


def test_fsdp2_on_cpu_is_refused_clearly_instead_of_running_unsharded(recipe, tmp_path):
    """accelerate 1.15 applies FSDP on GPU launches only: with use_cpu it trains plain DDP (measured: both
    processes held whole, unsharded parameters) although the config says FSDP. medix-r1 refuses that."""
    config = cpu_accelerate_config("fsdp2", tmp_path)
    res = launch(["train", str(recipe), "--output-dir", str(tmp_path / "run")], launcher="accelerate",
                 accelerate_config=config, log_dir=tmp_path / "logs", timeout=600)
    assert res.returncode != 0 and set(res.rank_exitcodes.values()) <= {2, -15}, res.describe()
    err = res.stderr(0) + res.stderr(1)
    assert "accelerate runs FSDP on GPUs only" in err and "cpu_ddp.yaml" in err, res.describe()
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint-1").exists()


BUILD_SCRIPT = """
import logging, os, sys, time
import torch.distributed as dist
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
dist.init_process_group("gloo")  # as in training: the trainer arguments start torch.distributed first
if dist.get_rank() == 0:
    time.sleep(4)  # let rank 1 build: save_pretrained writes nothing on a non-zero rank
from medix_r1.models.tiny import build_tiny_vlm
path = build_tiny_vlm("qwen2_5_vl")
print(sorted(os.listdir(path)))
dist.barrier()
dist.destroy_process_group()
"""


def test_a_cold_cache_is_built_once_and_completely_under_a_two_process_launch(tmp_path):
    from medix_r1.models import load_policy
    from medix_r1.models._build import is_complete, missing_model_files
    from medix_r1.models.tiny import TINY_VERSION

    cache = tmp_path / "cache"  # never the shared cache
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT)
    res = launch([], script=script, log_dir=tmp_path / "logs", env={"MEDIX_CACHE": str(cache)})
    assert res.returncode == 0, res.describe()
    folder = cache / "models" / "tiny-qwen2_5_vl"
    assert missing_model_files(folder) == [] and is_complete(folder, f"{TINY_VERSION}-qwen2_5_vl-seed0")
    built = [r for r in (0, 1) if "built " in res.stderr(r)]
    assert built == [1], res.describe()  # rank 1 built it, rank 0 waited for it
    assert "waiting for another process" in res.stderr(0)
    listed = [res.stdout(r).strip().splitlines()[-1] for r in (0, 1)]
    assert listed[0] == listed[1] and "'config.json'" in listed[0] and "'model.safetensors'" in listed[0]
    assert load_policy(str(folder), device="cpu").family == "qwen2_5_vl"


TRAP_SCRIPT = """
import os
from medix_r1.train.launch import check_process_count
print("WORLD_SIZE", os.environ.get("WORLD_SIZE"), "WARNING", check_process_count())
"""


def test_accelerate_cpu_flag_starting_one_process_is_reported(tmp_path):
    """``accelerate launch --cpu --num_processes 2`` runs the script once, silently (issue 12)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "trap.py"
    script.write_text(TRAP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
                           str(script)], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [line for line in proc.stdout.splitlines() if line.startswith("WORLD_SIZE")]
    assert len(printed) == 1  # one process: the trap itself
    assert "asked for 2 processes but only 1 started" in printed[0] and "cpu_ddp.yaml" in printed[0]
