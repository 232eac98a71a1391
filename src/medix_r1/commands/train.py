"""``medix-r1 train RECIPE.yaml``: group-based RL (GRPO / DAPO / GSPO / Dr. GRPO) on TRL. Argument parsing only."""

from __future__ import annotations

import argparse
import json
import sys

_EPILOG = """\
Examples:
  medix-r1 train recipes/demo/cpu.yaml                          # the CPU demo (~10 min on 2 cores)
  medix-r1 train recipes/demo/cpu.yaml --set trainer.max_steps=2 --output-dir /tmp/try
  medix-r1 train recipes/qwen3_vl_8b_dapo.yaml --dry-run        # check a recipe, print the resolved config
  accelerate launch --config_file recipes/accelerate/zero3.yaml -m medix_r1.cli train recipes/qwen3_vl_8b_dapo.yaml
  medix-r1 train recipes/demo/cpu.yaml --output-dir runs/demo --resume   # continue after an interruption

--set takes dotted keys with YAML values: --set model.lora.enabled=true --set algorithm=grpo
--set trainer.learning_rate=1.0e-5 (any trl.GRPOConfig field goes under trainer.).
The run folder gets resolved_recipe.yaml, metrics.jsonl, reward_curve.png, samples.md, checkpoint-N/ and
final/ (load it with medix_r1.models.load_policy or from_pretrained + the processor). See docs/training.md."""


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
    p.add_argument("--dry-run", action="store_true",
                   help="load and validate everything except the models, print the resolved config, exit")
    p.add_argument("--json", action="store_true", help="with --dry-run: print JSON instead of YAML")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    import warnings

    from medix_r1.train.recipe import RecipeError, dump_yaml

    # TRL 1.16 still calls transformers' deprecated gradient_checkpointing_* names at every step.
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)

    try:
        if args.dry_run:
            from medix_r1.train.run import dry_run

            resolved = dry_run(args.recipe, args.overrides, output_dir=args.output_dir)
            print(json.dumps(resolved, indent=2, default=str) if args.json else dump_yaml(resolved), end="")
            print(f"# recipe OK: {args.recipe}", file=sys.stderr)
            return 0
        from medix_r1.train.run import run_training

        result = run_training(args.recipe, args.overrides, output_dir=args.output_dir, resume=args.resume)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from medix_r1.train.dataset import TrainingDataError
        from medix_r1.train.rewards import JudgeUnavailableError
        from medix_r1.train.run import TrainingOOMError

        if isinstance(exc, (TrainingDataError, JudgeUnavailableError, TrainingOOMError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
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
