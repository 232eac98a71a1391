"""``run_training``: recipe -> data -> rewards -> model -> ``MedixGRPOTrainer`` -> train -> save. Read top to bottom.

    from medix_r1.train import run_training
    result = run_training("recipes/demo/cpu.yaml", overrides=["trainer.max_steps=2"], output_dir="runs/try")
    print(result.final_checkpoint, result.metrics_path, result.plot_path)

The run folder holds ``resolved_recipe.yaml`` (every setting after presets and overrides, with the prompt
template version and library versions), ``metrics.jsonl``, ``reward_curve.png``, ``samples.md``,
``checkpoint-N/`` folders (Hugging Face format + trainer state, for ``--resume``) and ``final/``, which
``medix_r1.models.load_policy`` and ``from_pretrained`` + the processor load.

``dry_run`` does everything except loading models: recipe, data (every row parsed), reward configuration,
prompt template and ``GRPOConfig`` are all checked, and the resolved configuration is returned.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medix_r1.errors import UsageError
from medix_r1.train.callbacks import (
    ConsoleProgressCallback,
    MetricsJsonlCallback,
    RunReportCallback,
    read_metrics,
)
from medix_r1.train.dataset import (
    TrainingDataError,
    build_dataset,
    drop_long_prompts,
)
from medix_r1.train.recipe import Recipe, RecipeError, dump_yaml, load_recipe
from medix_r1.train.rewards import RewardSetup, build_rewards, check_reward_config
from medix_r1.train.trainer import _is_oom

log = logging.getLogger(__name__)

RESOLVED_NAME = "resolved_recipe.yaml"
METRICS_NAME = "metrics.jsonl"
FINAL_NAME = "final"


class TrainingOOMError(UsageError, RuntimeError):
    """Training ran out of memory; the message lists the settings that lower memory use."""


@dataclass
class RunResult:
    output_dir: Path
    final_checkpoint: Path | None
    metrics_path: Path
    plot_path: Path | None
    samples_path: Path | None = None
    resolved_config_path: Path | None = None
    global_step: int = 0
    train_runtime_s: float = 0.0

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_path)


# --------------------------------------------------------------------------------------------- helpers
def resolve_output_dir(recipe: Recipe, output_dir: str | os.PathLike | None) -> Path:
    if output_dir is not None:
        return Path(output_dir)
    if recipe.output_dir:
        return Path(recipe.output_dir)
    return Path("runs") / recipe.name


def _accelerator_available() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def grpo_config_kwargs(recipe: Recipe, output_dir: Path, reward_weights: list[float] | None) -> dict[str, Any]:
    """The ``GRPOConfig`` keyword arguments of a recipe (preset, trainer section, managed fields)."""
    kwargs: dict[str, Any] = {"logging_steps": 1, "report_to": "none", "save_only_model": False}
    kwargs.update(recipe.trainer_settings())
    kwargs["output_dir"] = str(output_dir)
    if reward_weights is not None:
        kwargs["reward_weights"] = list(reward_weights)
    return kwargs


def make_grpo_config(kwargs: dict[str, Any], *, validate_only: bool = False, num_processes: int = 1):
    """Build ``GRPOConfig``; with ``validate_only`` on a machine without a GPU, device checks are skipped and
    the config is built as ``num_processes`` processes build it (TRL's batch rules run for that count)."""
    from medix_r1.train.layout import grpo_config_for

    kw = dict(kwargs)
    if validate_only and not _accelerator_available() and not kw.get("use_cpu"):
        kw["use_cpu"] = True  # a GPU recipe is checked here, it will run elsewhere
    try:
        return grpo_config_for(kw, num_processes if validate_only else None)
    except (ValueError, TypeError) as exc:
        raise RecipeError("trainer settings rejected by trl.GRPOConfig"
                          + (f" for {num_processes} processes" if validate_only and num_processes > 1 else "")
                          + f": {exc}") from exc


def resolved_config(recipe: Recipe, trainer_kwargs: dict[str, Any], *, output_dir: Path,
                    reward: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that decides a run, as plain data (written to ``resolved_recipe.yaml``)."""
    import torch
    import transformers
    import trl

    from medix_r1 import __version__
    from medix_r1.prompts import get_template

    template = get_template(recipe.data.template)
    d = recipe.to_dict()
    d["output_dir"] = str(output_dir)
    d["algorithm"]["dynamic_sampling"]["enabled"] = recipe.algorithm.dynamic_sampling_enabled
    d["prompt_template"] = {"name": template.name, "version": template.version}
    if reward is not None:
        d["reward_resolved"] = reward
    d["trainer_resolved"] = {k: (v if isinstance(v, (int, float, str, bool, list, dict, type(None))) else str(v))
                             for k, v in trainer_kwargs.items()}
    d["preset_overrides"] = {k: {"preset": a, "recipe": b} for k, (a, b) in recipe.preset_overrides().items()}
    if data is not None:
        d["data_report"] = data
    d["versions"] = {"medix_r1": __version__, "trl": trl.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__}
    return d


def _oom_message(recipe: Recipe, exc: BaseException) -> str:
    t = recipe.trainer_settings()
    return (
        f"out of memory during training ({type(exc).__name__}: {str(exc)[:200]}). Settings that lower memory: "
        f"trainer.per_device_train_batch_size (now {t.get('per_device_train_batch_size', 8)}) with "
        f"gradient_accumulation_steps to keep the batch; trainer.num_generations "
        f"(now {t.get('num_generations', 8)}); trainer.max_completion_length "
        f"(now {t.get('max_completion_length', 512)}); model.max_pixels (now {recipe.model.max_pixels}) and "
        f"data.max_prompt_length; model.gradient_checkpointing: true (now {recipe.model.gradient_checkpointing}); "
        f"model.lora.enabled: true; model.freeze_vision: true; with vLLM colocate a lower "
        f"trainer.vllm_gpu_memory_utilization; on several GPUs DeepSpeed ZeRO-3 with offload "
        f"(recipes/accelerate/zero3_offload.yaml). Resume from the last checkpoint with --resume.")


def _last_checkpoint(output_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir.is_dir():
        return None
    last = get_last_checkpoint(str(output_dir))
    return Path(last) if last else None


# --------------------------------------------------------------------------------------------- dry run
def dry_run(recipe_or_path: str | os.PathLike | Recipe | dict, overrides: list[str] | dict | None = None,
            output_dir: str | os.PathLike | None = None, *, num_processes: int | None = None,
            check_images: bool = True, progress: bool = True) -> dict[str, Any]:
    """Validate everything but the models and return the resolved configuration.

    Checked: the recipe (types included), the prompt template, the model's existence (without loading it),
    the run folder's writability, the reward section, every data row and (``check_images``) every image, and
    ``GRPOConfig`` as ``num_processes`` processes build it (default: :func:`default_num_processes`). The
    result's ``layout`` holds the global batch layout and its warnings, ``checks`` what was checked."""
    from medix_r1.train.layout import batch_layout, default_num_processes, layout_warnings
    from medix_r1.train.preflight import (
        check_model_source,
        check_output_dir,
        check_template,
        decode_images,
        load_data,
    )

    recipe = load_recipe(recipe_or_path, overrides)
    out = resolve_output_dir(recipe, output_dir)
    check_output_dir(out)
    check_template(recipe.data.template)
    model_source = check_model_source(recipe.model.name_or_path)
    reward = check_reward_config(recipe.reward)
    samples, report = load_data(recipe.data.train, field="data.train", split=recipe.data.split,
                                on_error=recipe.data.on_error, limit=recipe.data.limit,
                                image_only=recipe.data.image_only, offline_ok=True)
    data_report = dataclasses.asdict(report) if report is not None else {"source": recipe.data.train,
                                                                          "loaded": "not loaded (hub dataset "
                                                                          "unreachable offline)"}
    decoded: int | str = "not checked (--no-check-images)"
    if check_images:
        decoded = (decode_images(samples, source=str(recipe.data.train), progress=progress) if report is not None
                   else "not checked (the data is not reachable here)")
    if recipe.data.eval:
        eval_samples, eval_report = load_data(recipe.data.eval, field="data.eval", split=recipe.data.eval_split,
                                              on_error=recipe.data.on_error, limit=recipe.data.eval_limit,
                                              image_only=recipe.data.image_only, offline_ok=True)
        if check_images and eval_report is not None:
            n_eval = decode_images(eval_samples, source=str(recipe.data.eval), progress=progress)
            decoded = decoded + n_eval if isinstance(decoded, int) else n_eval
        data_report = {"train": data_report,
                       "eval": dataclasses.asdict(eval_report) if eval_report else "not loaded"}
    kwargs = grpo_config_kwargs(recipe, out, reward.get("weights_list"))
    if num_processes is None:
        n, n_from = default_num_processes()
    else:
        n, n_from = num_processes, "--num-processes"
    args = make_grpo_config(kwargs, validate_only=True, num_processes=n)
    _check_algorithm(recipe, args)
    layout = batch_layout(args, n, n_from)
    gb = recipe.global_batch
    layout.warnings = layout_warnings(layout, gb.completions_per_round, gb.completions_per_update, kwargs)
    resolved = resolved_config(recipe, kwargs, output_dir=out, reward=reward, data=data_report)
    resolved["layout"] = {**layout.to_dict(), "lines": layout.lines()}
    resolved["checks"] = {"model": model_source, "output_dir": f"{out} (writable)",
                          "images_decoded": decoded,
                          "notes": list(recipe.notes)}
    return resolved


# --------------------------------------------------------------------------------------------- training
def run_training(recipe_or_path: str | os.PathLike | Recipe | dict, overrides: list[str] | dict | None = None,
                 output_dir: str | os.PathLike | None = None, resume: bool = False, *,
                 force: bool = False,
                 reward_setup: RewardSetup | None = None,
                 extra_callbacks: list | None = None,
                 progress: bool = True,
                 announce: Callable[[str], None] | None = None) -> RunResult:
    """Train a policy with a recipe; see the module docstring. ``reward_setup`` replaces the recipe's reward
    (tests and benchmarks use it for scripted rewards); ``progress=False`` hides the console bar.
    ``resume`` continues from the last checkpoint if the recipe's fingerprint matches the run's (``force``
    accepts a different one); ``announce`` receives one-line status messages for the user (the CLI prints
    them)."""
    from transformers import set_seed

    from medix_r1.models import load_policy
    from medix_r1.models.loading import outside_zero3
    from medix_r1.models.processors import apply_pixel_bounds
    from medix_r1.train.dynamic_sampling import DynamicSamplingConfig
    from medix_r1.train.launch import check_engine, check_process_count, policy_device
    from medix_r1.train.layout import batch_layout, layout_warnings
    from medix_r1.train.model_setup import count_parameters, freeze_vision_tower, lora_config
    from medix_r1.train.preflight import check_model_source, check_output_dir, check_template, load_data
    from medix_r1.train.resume import (
        ResumeLearningRate,
        check_fingerprint,
        quiet_tied_weights_warning,
        recipe_fingerprint,
        write_fingerprint,
    )
    from medix_r1.train.trainer import MedixGRPOTrainer
    from medix_r1.train.warnings import quiet_step_warnings

    quiet_step_warnings()
    say = announce or (lambda message: log.info("%s", message))
    t_start = time.time()
    check_process_count()
    # 1. recipe, run folder, template and model: the checks that cost nothing come before any loading
    recipe = load_recipe(recipe_or_path, overrides)
    for note in recipe.notes:
        log.warning("note: %s", note)
    out = resolve_output_dir(recipe, output_dir)
    check_output_dir(out)
    checkpoint = _last_checkpoint(out)
    if checkpoint is not None and not resume:
        raise RecipeError(f"{out} already holds checkpoints (last: {checkpoint.name}); pass --resume to continue "
                          "that run, or choose another --output-dir")
    if resume and checkpoint is None:
        log.warning("--resume: no checkpoint in %s yet, starting from the beginning", out)
    template = check_template(recipe.data.template)
    check_model_source(recipe.model.name_or_path)
    set_seed(int(recipe.trainer.get("seed", 42)))

    # 2. data (parsed and checked before any model is loaded)
    samples, report = load_data(recipe.data.train, field="data.train", split=recipe.data.split,
                                on_error=recipe.data.on_error, limit=recipe.data.limit,
                                image_only=recipe.data.image_only)
    eval_samples = None
    if recipe.data.eval:
        eval_samples, _ = load_data(recipe.data.eval, field="data.eval", split=recipe.data.eval_split,
                                    on_error=recipe.data.on_error, limit=recipe.data.eval_limit,
                                    image_only=recipe.data.image_only)

    # 3. trainer arguments (cheap, and their errors are the user's) before the reward loads its models
    reward_weights = reward_setup.weights if reward_setup is not None else check_reward_config(
        recipe.reward).get("weights_list")
    kwargs = grpo_config_kwargs(recipe, out, reward_weights)
    args = make_grpo_config(kwargs)
    check_engine(args)
    _check_algorithm(recipe, args)
    layout = batch_layout(args, args.world_size, "this launch")
    gb = recipe.global_batch
    for line in layout.lines():
        log.info("%s", line)
    for warning in layout_warnings(layout, gb.completions_per_round, gb.completions_per_update, kwargs):
        log.warning("%s", warning)

    # 4. rewards (the judge is checked now, not after the first generation)
    rewards = reward_setup or build_rewards(recipe.reward)
    with outside_zero3():  # the check may load reward models: whole models, not ZeRO-3 partitions
        rewards.check()
    fingerprint = recipe_fingerprint(recipe, rewards.describe(), template)
    if resume and checkpoint is not None:
        check_fingerprint(out, fingerprint, force=force)

    # 5. the model (ZeRO-3 must know its config before the weights load)
    out.mkdir(parents=True, exist_ok=True)
    if _is_main_process():
        write_fingerprint(out, fingerprint)
    device = policy_device(args)
    policy = load_policy(recipe.model.name_or_path, trust_remote_code=recipe.model.trust_remote_code,
                         dtype=recipe.model.dtype, device=device)
    if policy.is_vlm:
        apply_pixel_bounds(policy.processor, recipe.model.min_pixels, recipe.model.max_pixels)
    if recipe.model.freeze_vision:
        freeze_vision_tower(policy.model)
    peft_config = lora_config(recipe.model.lora) if recipe.model.lora.enabled else None

    samples = drop_long_prompts(samples, template, policy.tokenizer, recipe.data.max_prompt_length, report)
    bounds = {"min_pixels": recipe.model.min_pixels, "max_pixels": recipe.model.max_pixels}
    train_ds = build_dataset(samples, template, source=report.source, **bounds)
    eval_ds = build_dataset(eval_samples, template, source=str(recipe.data.eval), **bounds) if eval_samples else None

    resolved = resolved_config(recipe, kwargs, output_dir=out, reward=rewards.describe(),
                               data=dataclasses.asdict(report))
    if _is_main_process():  # side outputs come from one process
        (out / RESOLVED_NAME).write_text(dump_yaml(resolved), encoding="utf-8")

    # 5. the trainer
    metrics_path = out / METRICS_NAME
    report_cb = RunReportCallback(out, metrics_path, title=f"{recipe.name} ({recipe.algorithm.preset})")
    callbacks = [MetricsJsonlCallback(metrics_path), report_cb, *(extra_callbacks or [])]
    resume_from = checkpoint if (resume and checkpoint) else None
    if resume_from is not None:
        callbacks.append(ResumeLearningRate(resume_from))
    ds = recipe.algorithm.dynamic_sampling
    ds_config = (DynamicSamplingConfig(min_mean=ds.min_mean, max_mean=ds.max_mean, drop_equal=ds.drop_equal,
                                       max_tries=ds.max_tries, on_exhausted=ds.on_exhausted)
                 if recipe.algorithm.dynamic_sampling_enabled else None)
    trainer = MedixGRPOTrainer(
        model=policy.model,
        reward_funcs=rewards.funcs,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=policy.processor,
        peft_config=peft_config,
        callbacks=callbacks,
        dynamic_sampling=ds_config,
        rewards=rewards,
    )
    _use_console_progress(trainer, enabled=progress and not args.disable_tqdm)
    report_cb.trainer = trainer
    total, trainable = count_parameters(trainer.model)
    log.info("policy %s (%s): %.1f M parameters, %.1f M trainable; %d training prompts; preset %s%s",
             recipe.model.name_or_path, policy.family, total / 1e6, trainable / 1e6, len(train_ds),
             recipe.algorithm.preset, " + dynamic sampling" if ds_config else "")

    # 6. train
    if resume_from is not None:
        say(f"resuming from {resume_from.name} (step {_checkpoint_step(resume_from)}) in {out}")
    try:
        with quiet_tied_weights_warning(_ties_embeddings(policy.model)):
            train_out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except Exception as exc:
        if _is_oom(exc):
            raise TrainingOOMError(_oom_message(recipe, exc)) from exc
        raise
    finally:
        rewards.close()

    # 7. save the final policy (HF format + processor) and the report
    final = out / FINAL_NAME
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        report_cb.write(trainer.state.global_step, final)
    runtime = float(train_out.metrics.get("train_runtime", time.time() - t_start)) if train_out else 0.0
    log.info("trained %d steps in %.1f s; run folder %s", trainer.state.global_step, runtime, out)
    return RunResult(output_dir=out, final_checkpoint=final, metrics_path=metrics_path,
                     plot_path=report_cb.plot_path, samples_path=out / "samples.md",
                     resolved_config_path=out / RESOLVED_NAME, global_step=trainer.state.global_step,
                     train_runtime_s=runtime)


def _check_algorithm(recipe: Recipe, args) -> None:
    if recipe.algorithm.dynamic_sampling_enabled:
        from medix_r1.train.dynamic_sampling import check_batch_layout

        try:
            check_batch_layout(args.per_device_train_batch_size, args.steps_per_generation, args.num_generations)
        except ValueError as exc:
            raise RecipeError(f"{recipe.source or recipe.name}: {exc}") from exc


def _checkpoint_step(checkpoint: Path) -> str:
    return checkpoint.name.rsplit("-", 1)[-1]


def _ties_embeddings(model) -> bool:
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is not None and getattr(cfg, "tie_word_embeddings", False):
            return True
    return False


def _is_main_process() -> bool:
    """True on the main process of a multi-process launch (and in a single process)."""
    from accelerate import PartialState

    return PartialState().is_main_process


def _use_console_progress(trainer, enabled: bool) -> None:
    """Swap transformers' progress bar (which prints raw log dicts) for the medix console progress."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ConsoleProgressCallback(enabled=enabled))


RewardFactory = Callable[[dict], RewardSetup]
__all__ = ["RunResult", "TrainingDataError", "TrainingOOMError", "dry_run", "grpo_config_kwargs",
           "make_grpo_config", "resolved_config", "run_training"]
