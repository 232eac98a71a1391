"""What the launcher started: the distributed engine, where the policy loads, and whether processes are missing.

``accelerate launch`` tells its processes which engine to use through environment variables
(``ACCELERATE_USE_DEEPSPEED``, ``ACCELERATE_USE_FSDP``); TRL's ``GRPOConfig.fsdp`` / ``.deepspeed`` stay empty
then, so the engine is read from the environment first and from the trainer arguments second.

- :func:`distributed_engine` names the engine: ``deepspeed``, ``fsdp``, ``ddp`` or ``single``.
- :func:`policy_device` is where :func:`medix_r1.models.load_policy` puts the weights: on the CPU for FSDP (the
  trainer shards them and moves each shard to its device; loading on the GPU first would put the whole model
  on every GPU) and DeepSpeed (ZeRO-3 loads partitioned, without a ``device_map``); on the process's device
  otherwise.
- :func:`check_process_count` warns when the launch asked for several processes and only this one started:
  ``accelerate launch --cpu --num_processes 2`` (and a config with ``distributed_type: MULTI_CPU``) runs the
  script once, without an error. On CPU, several processes need ``distributed_type: MULTI_GPU`` (or
  ``--multi_gpu``) together with ``use_cpu: true`` in the config; see docs/training.md, "Launchers and engines".
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def world_size() -> int:
    """Processes in this launch, as the launcher's environment says (1 when not launched distributed)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def distributed_engine(args: Any = None) -> str:
    """``"deepspeed"``, ``"fsdp"``, ``"ddp"`` or ``"single"`` for this process.

    ``args`` is an optional ``GRPOConfig`` / ``TrainingArguments`` (its ``deepspeed`` and ``fsdp`` fields are set
    when the engine was configured there rather than through ``accelerate launch``).
    """
    if _env_true("ACCELERATE_USE_DEEPSPEED") or getattr(args, "deepspeed", None):
        return "deepspeed"
    if _env_true("ACCELERATE_USE_FSDP") or getattr(args, "fsdp", None):
        return "fsdp"
    return "ddp" if world_size() > 1 else "single"


def policy_device(args: Any) -> str:
    """Where to load the policy's weights before the trainer wraps it (see the module docstring)."""
    if distributed_engine(args) in ("fsdp", "deepspeed"):
        return "cpu"
    return str(args.device)


def _parent_cmdline() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:  # not Linux, or no permission: nothing to check
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _flag_value(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _config_processes(config_file: str | None) -> int | None:
    """``num_processes`` of the accelerate config the launch read (``--config_file``, else the default one)."""
    if config_file is None:
        try:
            from accelerate.commands.config import default_config_file
        except ImportError:
            return None
        config_file = default_config_file
    try:
        import yaml

        with open(config_file, encoding="utf-8") as fh:
            config = yaml.safe_load(fh) or {}
        return int(config.get("num_processes") or 0) or None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    except Exception:  # noqa: BLE001 - a config accelerate itself accepted but YAML cannot read: do not guess
        return None


def _is_accelerate_launch(argv: list[str]) -> bool:
    """``accelerate launch ...``, ``python -m accelerate.commands.launch ...`` or ``.../accelerate/commands/launch.py``."""
    for i, arg in enumerate(argv[:4]):
        if re.search(r"accelerate[./]commands[./]launch(\.py)?$", arg):
            return True
        if re.search(r"(^|/)accelerate(\.exe)?$", arg) and i + 1 < len(argv) and argv[i + 1] == "launch":
            return True
    return False


def requested_processes(argv: list[str] | None = None) -> int | None:
    """How many processes the ``accelerate launch`` that started this process asked for, when it can be told.

    ``argv`` is the launcher's command line (default: the parent process's, read from ``/proc``); ``None``
    when this process was not started by ``accelerate launch`` or the count is not known.
    """
    argv = _parent_cmdline() if argv is None else argv
    if not _is_accelerate_launch(argv):
        return None
    value = _flag_value(argv, "--num_processes", "--num-processes")
    if value is not None:
        try:
            return int(value)
        except ValueError:
            return None
    return _config_processes(_flag_value(argv, "--config_file", "--config-file"))


def check_process_count(argv: list[str] | None = None) -> str | None:
    """Warn (and return the warning) when the launch asked for more processes than started; else ``None``."""
    if world_size() > 1:
        return None
    wanted = requested_processes(argv)
    if not wanted or wanted <= 1:
        return None
    message = (f"accelerate launch asked for {wanted} processes but only 1 started: with --cpu (or a config "
               "whose distributed_type is MULTI_CPU) accelerate runs the script once, as a single process. "
               f"For {wanted} processes on CPU use `accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml "
               f"--num_processes {wanted}` (distributed_type MULTI_GPU with use_cpu: true) or "
               f"`torchrun --nproc_per_node {wanted}`; see docs/training.md, \"Launchers and engines\".")
    log.warning(message)
    return message


def check_engine(args: Any) -> None:
    """Refuse an engine that accelerate asked for but would silently not use.

    accelerate 1.15 turns FSDP on only for GPU-type launches: with ``use_cpu`` its state is ``MULTI_CPU``
    and the script would train plain data parallel (every process holding the whole model) while the
    config says FSDP.
    """
    from medix_r1.errors import UsageError

    if not _env_true("ACCELERATE_USE_FSDP"):
        return
    on_cpu = bool(getattr(args, "use_cpu", False)) or str(getattr(args, "device", "")).startswith("cpu")
    if on_cpu:
        raise UsageError(
            "the accelerate config asks for FSDP, but accelerate runs FSDP on GPUs only: on the CPU "
            "(use_cpu: true, trainer.use_cpu, or no GPU) this launch would train plain data parallel, every "
            "process holding the whole model",
            fix="run FSDP on GPUs; on CPU use DDP (recipes/accelerate/cpu_ddp.yaml) or DeepSpeed ZeRO-3 "
                "(zero3.yaml with use_cpu: true)")
