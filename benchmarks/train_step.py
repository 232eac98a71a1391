"""Training step time: ``medix-r1 train`` (run_training) against plain TRL ``GRPOTrainer``, same run.

Both train the same tiny random Qwen2.5-VL on the same bundled image questions with the same trivial reward
and the same GRPOConfig settings, for ``--steps`` steps each, alternating medix / plain ``--repeats`` times so
machine load hits both alike. The figure compared is TRL's own per-step ``step_time`` (generation, scoring,
forward and backward of one optimizer step), first step of each run left out (warm-up); medix-r1 adds the lazy
dataset (prompt rendering, image decoding), its callbacks (metrics.jsonl, console) and the trainer extensions.
Target: overhead <= 10 %.

    .venv/bin/python benchmarks/train_step.py
    .venv/bin/python benchmarks/train_step.py --steps 8 --repeats 3 --model tiny-qwen3-vl

On a shared machine step times vary between runs; compare the medians and the spread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def trivial_reward(completions, **kwargs):
    """Length-based toy reward: varies within a group, costs nothing."""
    return [min(1.0, len(c[0]["content"]) / 200) for c in completions]


def trainer_settings(steps: int, completion_len: int) -> dict:
    return {"use_cpu": True, "bf16": False, "report_to": "none", "max_steps": steps, "num_generations": 4,
            "per_device_train_batch_size": 4, "max_completion_length": completion_len, "learning_rate": 1e-4,
            "save_strategy": "no", "seed": 0, "logging_steps": 1, "beta": 0.0, "lr_scheduler_type": "constant"}


def run_medix(model: str, data: Path, out: Path, steps: int, completion_len: int) -> list[float]:
    from medix_r1.train.rewards import simple_reward_setup
    from medix_r1.train.run import run_training

    recipe = {"model": {"name_or_path": model, "gradient_checkpointing": False, "min_pixels": None,
                        "max_pixels": 112 * 112},
              "data": {"train": str(data), "template": "medix"}, "algorithm": "grpo",
              "trainer": trainer_settings(steps, completion_len)}
    result = run_training(recipe, output_dir=out, reward_setup=simple_reward_setup([trivial_reward]),
                          progress=False)
    return [r["step_time"] for r in result.metrics()]


def run_plain(model: str, data: Path, out: Path, steps: int, completion_len: int) -> list[float]:
    """What a user would write with TRL alone: an in-memory dataset, GRPOTrainer, train()."""
    import datasets
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from medix_r1.data import load_samples
    from medix_r1.models import load_policy
    from medix_r1.prompts import get_template
    from medix_r1.train.dataset import fit_pixels
    from medix_r1.train.presets import preset_settings

    template = get_template("medix")
    rows = []
    for s in load_samples(data).samples:
        rows.append({"prompt": template.render(s), "images": [fit_pixels(i, None, 112 * 112) for i in s.load_images()],
                     "answer": s.answer, "modality": s.modality, "question": s.question})
    ds = datasets.Dataset.from_list(rows)
    policy = load_policy(model, device="cpu")
    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "step_time" in logs:
                times.append(logs["step_time"])

    args = GRPOConfig(output_dir=str(out), activation_checkpointing=False,
                      **{**preset_settings("grpo"), **trainer_settings(steps, completion_len)})
    trainer = GRPOTrainer(model=policy.model, reward_funcs=[trivial_reward], args=args, train_dataset=ds,
                          processing_class=policy.processor, callbacks=[StepTimes()])
    trainer.remove_callback(ProgressCallback)  # its printed log dicts would drown the figures (medix has its own)
    trainer.train()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-qwen2.5-vl", help="policy alias or folder (default tiny-qwen2.5-vl)")
    ap.add_argument("--steps", type=int, default=6, help="steps per run (default 6; the first is not counted)")
    ap.add_argument("--repeats", type=int, default=2, help="medix/plain run pairs (default 2)")
    ap.add_argument("--completion-len", type=int, default=16, help="max new tokens (default 16)")
    args = ap.parse_args()

    import json

    from medix_r1.data import load_samples

    work = Path(tempfile.mkdtemp(prefix="medix-train-bench-"))
    data = work / "images.jsonl"
    rows = [{**s.to_dict(), "image": [str(Path(p).resolve()) for p in s.images]}
            for s in load_samples(split="train").samples if s.has_image][:16]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    medix: list[float] = []
    plain: list[float] = []
    t0 = time.time()
    for rep in range(args.repeats):
        # Alternate which side runs first, so a load change during the run does not favour one side.
        if rep % 2:
            p = run_plain(args.model, data, work / f"plain-{rep}", args.steps, args.completion_len)[1:]
            m = run_medix(args.model, data, work / f"medix-{rep}", args.steps, args.completion_len)[1:]
        else:
            m = run_medix(args.model, data, work / f"medix-{rep}", args.steps, args.completion_len)[1:]
            p = run_plain(args.model, data, work / f"plain-{rep}", args.steps, args.completion_len)[1:]
        print(f"repeat {rep + 1}: medix-r1 median {statistics.median(m):.3f} s/step, "
              f"plain TRL median {statistics.median(p):.3f} s/step")
        medix += m
        plain += p
    mm, pm = statistics.median(medix), statistics.median(plain)
    print(f"\nmodel {args.model}, {len(rows)} image prompts, 4 generations x {args.completion_len} tokens, "
          f"{args.steps} steps x {args.repeats} repeats per side ({time.time() - t0:.0f} s total)")
    print(f"  medix-r1 train : median {mm:.3f} s/step  (mean {statistics.mean(medix):.3f}, "
          f"min {min(medix):.3f}, max {max(medix):.3f})")
    print(f"  plain TRL      : median {pm:.3f} s/step  (mean {statistics.mean(plain):.3f}, "
          f"min {min(plain):.3f}, max {max(plain):.3f})")
    print(f"  overhead       : {100 * (mm / pm - 1):+.1f} % (median), "
          f"{100 * (statistics.mean(medix) / statistics.mean(plain) - 1):+.1f} % (mean); target <= +10 %")


if __name__ == "__main__":
    main()
