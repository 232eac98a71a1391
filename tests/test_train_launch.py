"""train/launch.py: the engine read from accelerate's environment (regression: under accelerate's FSDP config
GRPOConfig.fsdp is empty, so FSDP was missed and the policy was not loaded on the CPU first), and the
``accelerate launch --cpu --num_processes 2`` trap (one process starts, silently)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from medix_r1.errors import UsageError
from medix_r1.train.launch import (
    check_engine,
    check_process_count,
    distributed_engine,
    policy_device,
    requested_processes,
)

ACCELERATE = ["/venv/bin/python", "/venv/bin/accelerate", "launch"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("env", "engine", "device"), [
    ({"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "8"}, "fsdp", "cpu"),
    ({"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "8"}, "deepspeed", "cpu"),
    ({"WORLD_SIZE": "2"}, "ddp", "cuda:1"),
    ({}, "single", "cuda:1"),
])
def test_engine_and_load_device_come_from_accelerates_environment(monkeypatch, env, engine, device):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = SimpleNamespace(fsdp="", deepspeed=None, device="cuda:1")  # what GRPOConfig holds under accelerate
    assert distributed_engine(args) == engine
    assert policy_device(args) == device


def test_fsdp_configured_in_the_trainer_arguments_also_loads_on_cpu():
    assert policy_device(SimpleNamespace(fsdp="full_shard", deepspeed=None, device="cuda:0")) == "cpu"


def test_requested_processes_reads_the_launch_command_and_its_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("distributed_type: MULTI_CPU\nnum_processes: 4\n")
    assert requested_processes([*ACCELERATE, "--cpu", "--num_processes", "2", "train.py"]) == 2
    assert requested_processes(["/venv/bin/python", "-m", "accelerate.commands.launch", "--num-processes=3"]) == 3
    assert requested_processes([*ACCELERATE, "--config_file", str(config), "train.py"]) == 4
    assert requested_processes(["/venv/bin/python", "/venv/bin/torchrun", "--nproc_per_node", "2"]) is None
    assert requested_processes(["/venv/bin/python", "-m", "medix_r1.cli", "train", "--num_processes", "2"]) is None


def test_one_process_where_two_were_asked_for_is_warned_with_the_fix(monkeypatch, caplog):
    argv = [*ACCELERATE, "--cpu", "--num_processes", "2", "-m", "medix_r1.cli", "train", "r.yaml"]
    message = check_process_count(argv)
    assert message and "asked for 2 processes but only 1 started" in message
    assert "recipes/accelerate/cpu_ddp.yaml" in message and "torchrun --nproc_per_node 2" in message
    assert message in caplog.text
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert check_process_count(argv) is None  # both started: nothing to say


def test_fsdp_on_cpu_is_refused_and_fsdp_on_gpu_is_not(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(UsageError, match="accelerate runs FSDP on GPUs only"):
        check_engine(SimpleNamespace(use_cpu=True, device="cpu"))
    check_engine(SimpleNamespace(use_cpu=False, device="cuda:0"))
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    check_engine(SimpleNamespace(use_cpu=True, device="cpu"))
