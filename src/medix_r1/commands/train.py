"""``medix-r1 train RECIPE.yaml``: group-based RL (GRPO / DAPO / GSPO / Dr. GRPO) on TRL. Argument parsing only."""

from __future__ import annotations

import argparse
import json
import sys

_EPILOG = """\
Examples:
  medix-r1 train recipes/demo/cpu.yaml                          # the CPU demo (~10 min on 2 cores)
  medix-r1 train recipes/demo/cpu.yaml --set trainer.max_steps=2 --output-dir /tmp/try
  medix-r1 train recipes/qwen3-vl-8b/dapo.yaml --dry-run --num-processes 8   # check it, print the batch layout
  accelerate launch --config_file recipes/accelerate/fsdp2_offload.yaml -m medix_r1.cli \\
      train recipes/qwen3-vl-8b/dapo.yaml
  medix-r1 train recipes/qwen3-vl-2b/dapo_1gpu.yaml             # one 80 GB GPU
  medix-r1 train recipes/demo/cpu.yaml --output-dir runs/demo --resume   # continue after an interruption

--set takes dotted keys with YAML values: --set model.lora.enabled=true --set algorithm=grpo
--set trainer.learning_rate=1.0e-5 (any trl.GRPOConfig field goes under trainer.).
--dry-run checks everything a run needs except loading the models: the recipe and its value types, the
model's existence, the run folder, every data row and image, the reward settings, and TRL's batch rules for
--num-processes processes; it prints the resolved recipe and the global batch layout.
The run folder gets resolved_recipe.yaml, run_fingerprint.json, metrics.jsonl, reward_curve.png, samples.md,
checkpoint-N/ and final/ (load it with medix_r1.models.load_policy or from_pretrained + the processor).
--resume refuses a recipe whose model, data, template, reward or algorithm differ from the run's
(run_fingerprint.json) unless --force. See docs/training.md."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a policy with a recipe (GRPO, DAPO, GSPO, Dr. GRPO on TRL)",
        description="Train a vision-language policy with group-based RL and the MediX composite reward, "
                    "as described by a recipe YAML (model, data, template, reward, algorithm, trainer).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe YAML file (see recipes/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value (dotted key, YAML value); repeatable")
    p.add_argument("--output-dir", help="run folder (default: the recipe's output_dir, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in the run folder")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even if the recipe differs from the run's (run_fingerprint.json)")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything except loading the models, print the resolved config and the batch "
                        "layout, exit")
    p.add_argument("--num-processes", type=_positive_int, default=None, metavar="N",
                   help="with --dry-run: the number of training processes to check the batch layout for "
                        "(default: WORLD_SIZE, else the accelerate config's num_processes, else 1)")
    p.add_argument("--no-check-images", dest="check_images", action="store_false",
                   help="with --dry-run: do not decode every image (faster on a large dataset)")
    p.add_argument("--json", action="store_true", help="with --dry-run: print JSON instead of YAML")
    p.set_defaults(func=cmd_train)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_train(args: argparse.Namespace) -> int:
    from medix_r1.train.warnings import quiet_step_warnings

    quiet_step_warnings()
    try:
        return _dry_run(args) if args.dry_run else _train(args)
    except Exception as exc:
        mapped = as_medix_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _dry_run(args: argparse.Namespace) -> int:
    from medix_r1.train.recipe import dump_yaml
    from medix_r1.train.run import dry_run

    resolved = dry_run(args.recipe, args.overrides, output_dir=args.output_dir, num_processes=args.num_processes,
                       check_images=args.check_images, progress=sys.stderr.isatty())
    layout = resolved["layout"]
    checks = resolved["checks"]
    print(json.dumps(resolved, indent=2, default=str) if args.json else dump_yaml(resolved), end="")
    err = sys.stderr
    for note in checks["notes"]:
        print(f"note: {note}", file=err)
    print(f"# model: {checks['model']}", file=err)
    print(f"# images decoded: {checks['images_decoded']}", file=err)
    for line in layout["lines"]:
        print(f"# {line}", file=err)
    for warning in layout["warnings"]:
        print(f"warning: {warning}", file=err)
    print(f"# recipe OK: {args.recipe}", file=err)
    return 0


def _train(args: argparse.Namespace) -> int:
    from medix_r1.train.run import run_training

    result = run_training(args.recipe, args.overrides, output_dir=args.output_dir, resume=args.resume,
                          force=args.force, announce=lambda message: print(message, file=sys.stderr))
    from medix_r1.train.run import _is_main_process

    if not _is_main_process():  # one summary per run, not one per process
        return 0
    rows = result.metrics()
    print(f"run folder:   {result.output_dir}")
    print(f"final policy: {result.final_checkpoint}")
    print(f"metrics:      {result.metrics_path} ({len(rows)} rows)")
    if result.plot_path:
        print(f"reward plot:  {result.plot_path}")
    if result.samples_path and result.samples_path.exists():
        print(f"samples:      {result.samples_path}")
    return 0


def as_medix_error(exc: BaseException) -> BaseException:
    """The library error for an expected training failure; anything else is returned as it is (a bug)."""
    from medix_r1.data import DataError
    from medix_r1.errors import InputError, MedixError, ServiceError, UsageError
    from medix_r1.registry import UnknownNameError
    from medix_r1.train.dataset import TrainingDataError
    from medix_r1.train.rewards import JudgeUnavailableError
    from medix_r1.train.run import TrainingOOMError

    if isinstance(exc, MedixError):
        return exc
    if isinstance(exc, (TrainingDataError, DataError)):
        return InputError(str(exc))
    if isinstance(exc, JudgeUnavailableError):
        return ServiceError(str(exc))
    if isinstance(exc, TrainingOOMError):
        return UsageError(str(exc))
    if isinstance(exc, UnknownNameError):
        return UsageError(str(exc))
    return exc
