"""The global batch layout of a run on N processes, and the overrides that restore a recipe's stated batch.

TRL's ``GRPOConfig`` sizes everything per device. Summed over N processes:

- completions per optimizer step   = per_device_train_batch_size x N x gradient_accumulation_steps
- completions per generation round = generation_batch_size = per_device_train_batch_size x N x steps_per_generation
- optimizer steps per round        = steps_per_generation x num_iterations / gradient_accumulation_steps

So the same recipe trains at a different batch on another number of processes. :func:`batch_layout`
builds ``GRPOConfig`` as N processes would (TRL's own divisibility rules run for N) and reports the layout;
:func:`layout_warnings` compares it with the recipe's ``global_batch`` and says which ``--set`` overrides
restore it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BatchLayout:
    num_processes: int
    num_processes_from: str
    per_device: int
    gradient_accumulation_steps: int
    steps_per_generation: int
    num_iterations: int
    num_generations: int
    generation_batch_size: int
    warnings: list[str] = field(default_factory=list)

    @property
    def per_update(self) -> int:
        return self.per_device * self.num_processes * self.gradient_accumulation_steps

    @property
    def per_round(self) -> int:
        return self.generation_batch_size

    @property
    def steps_per_round(self) -> float:
        steps = self.steps_per_generation * self.num_iterations / self.gradient_accumulation_steps
        return int(steps) if float(steps).is_integer() else steps

    def lines(self) -> list[str]:
        """The layout as the dry-run prints it."""
        p, n = self.per_device, self.num_processes
        return [
            f"batch layout for {n} process{'es' if n != 1 else ''} ({self.num_processes_from}):",
            (f"  completions per optimizer step: {self.per_update} ({p} per device x {n} x "
            f"gradient_accumulation_steps {self.gradient_accumulation_steps})"),
            (f"  completions per generation round: {self.per_round} ({self.per_round // self.num_generations} "
            f"prompt{'s' if self.per_round // self.num_generations != 1 else ''} x {self.num_generations})"),
            (f"  optimizer steps per round: {self.steps_per_round} (steps_per_generation "
            f"{self.steps_per_generation} x num_iterations {self.num_iterations} / "
            f"gradient_accumulation_steps {self.gradient_accumulation_steps})"),
            f"  generation_batch_size: {self.generation_batch_size}",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"num_processes": self.num_processes, "completions_per_optimizer_step": self.per_update,
                "completions_per_generation_round": self.per_round, "optimizer_steps_per_round": self.steps_per_round,
                "generation_batch_size": self.generation_batch_size, "warnings": list(self.warnings)}


def default_num_processes() -> tuple[int, str]:
    """The number of processes a launch would have: the launcher's ``WORLD_SIZE``, else the default
    accelerate config's ``num_processes`` x ``num_machines``, else 1."""
    world = os.environ.get("WORLD_SIZE")
    if world and world.isdigit() and int(world) > 0:
        return int(world), "WORLD_SIZE"
    config = _accelerate_default_config()
    if config is not None:
        try:
            import yaml

            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
            n = int(data.get("num_processes") or 1)
            if n > 0:
                return n, f"accelerate config {config}"
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    return 1, "default; pass --num-processes N for a multi-GPU launch"


def _accelerate_default_config() -> Path | None:
    try:
        from accelerate.commands.config.config_args import default_config_file
    except ImportError:
        return None
    path = Path(default_config_file)
    return path if path.is_file() else None


# What a launcher (torchrun, accelerate launch) sets; GRPOConfig would try to join that process group.
_LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")


@contextlib.contextmanager
def _one_process_env():
    saved = {k: os.environ.pop(k) for k in _LAUNCH_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def grpo_config_for(kwargs: dict[str, Any], num_processes: int | None = None):
    """``GRPOConfig(**kwargs)``; with ``num_processes`` (a check, not a run), built in this one process as a
    launch of that many processes builds it: TRL derives the generation batch from ``world_size`` and
    checks its divisibility rules against it."""
    from trl import GRPOConfig

    if num_processes is None:
        return GRPOConfig(**kwargs)
    cls = type("GRPOConfigForLayout", (GRPOConfig,), {"world_size": property(lambda self: num_processes),
                                                       "__module__": __name__})
    with _one_process_env():
        return cls(**kwargs)


def batch_layout(args, num_processes: int, source: str) -> BatchLayout:
    """The layout of a built ``GRPOConfig`` (see :func:`grpo_config_for`) on ``num_processes``."""
    layout = BatchLayout(
        num_processes=num_processes, num_processes_from=source, per_device=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        steps_per_generation=args.steps_per_generation, num_iterations=args.num_iterations,
        num_generations=args.num_generations, generation_batch_size=args.generation_batch_size)
    if layout.per_update % layout.num_generations:
        layout.warnings.append(
            f"an optimizer step sees {layout.per_update} completions, not whole groups of "
            f"{layout.num_generations}: a group's completions are split across updates")
    if (layout.steps_per_generation * layout.num_iterations) % layout.gradient_accumulation_steps:
        layout.warnings.append(
            f"steps_per_generation {layout.steps_per_generation} x num_iterations {layout.num_iterations} is not "
            f"a multiple of gradient_accumulation_steps {layout.gradient_accumulation_steps}: an optimizer step "
            "spans two generation rounds")
    return layout


def restore_overrides(per_device: int, num_processes: int, per_round: int, per_update: int) -> list[str] | None:
    """``--set`` overrides that give ``per_round`` / ``per_update`` completions on ``num_processes``,
    keeping the per-device batch if it divides, else the largest smaller one that does; None if none does."""
    for p in range(per_device, 0, -1):
        if per_update % (p * num_processes) == 0 and per_round % (p * num_processes) == 0:
            out = [] if p == per_device else [f"trainer.per_device_train_batch_size={p}"]
            return out + [f"trainer.gradient_accumulation_steps={per_update // (p * num_processes)}",
                          f"trainer.steps_per_generation={per_round // (p * num_processes)}"]
    return None


def layout_warnings(layout: BatchLayout, per_round: int | None, per_update: int | None,
                    trainer_settings: dict[str, Any]) -> list[str]:
    """Warnings for a layout that differs from the stated global batch, and for ``use_vllm`` without vllm."""
    out = list(layout.warnings)
    differs = ((per_round is not None and layout.per_round != per_round)
               or (per_update is not None and layout.per_update != per_update))
    if differs:
        want = ", ".join(f"{v} completions per {k}" for k, v in (("round", per_round), ("update", per_update))
                         if v is not None)
        fix = restore_overrides(layout.per_device, layout.num_processes, per_round or layout.per_round,
                                per_update or layout.per_update)
        if "generation_batch_size" in trainer_settings and fix:
            fix = [f.replace("trainer.steps_per_generation=", "trainer.generation_batch_size=")
                   if f.startswith("trainer.steps_per_generation=") else f for f in fix]
            fix[-1] = f"trainer.generation_batch_size={per_round or layout.per_round}"
        out.append(f"on {layout.num_processes} processes this recipe trains at {layout.per_round} completions per "
                   f"round and {layout.per_update} per update, not the recipe's global_batch ({want})"
                   + (": restore it with " + " ".join(f"--set {f}" for f in fix) if fix else
                      f": no per-device batch divides it on {layout.num_processes} processes"))
    if trainer_settings.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        out.append("trainer.use_vllm is true but vllm is not installed here: install the gpu extra "
                   "(pip install 'medix-r1[gpu]') on the training machines, or --set trainer.use_vllm=false "
                   "to generate with transformers")
    return out
