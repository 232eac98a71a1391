"""What the user sees during training: console progress, ``metrics.jsonl``, a reward plot, sample completions.

- :func:`canonical_metrics` renames TRL's log keys to the project's names: the reward components are
  ``format``, ``modality``, ``accuracy_llm``, ``accuracy_embed``; plus ``reward``, ``judge_requests`` (judge
  model calls of the step, summed over processes), ``judge_error_rate``,
  ``judge_cache_hit_rate``, ``judge_latency_s``, ``frac_groups_dropped``, ``completion_length``, ``kl``,
  ``clip_ratio``. TRL's original keys are kept beside them.
- :class:`MetricsJsonlCallback` appends one JSON row per logged training step to ``OUTPUT_DIR/metrics.jsonl``
  (on resume, rows after the checkpoint's step are dropped so the file never holds a step twice).
- :class:`ConsoleProgressCallback` replaces transformers' progress bar: one bar, with the latest figures as
  its postfix, and one compact line per logged step.
- :class:`RunReportCallback` writes ``reward_curve.png`` (reward and components over steps) and
  ``samples.md`` / ``samples.jsonl`` (recent completions with their per-component rewards) at every save and
  at the end.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

COMPONENTS = ("format", "modality", "accuracy_llm", "accuracy_embed")

# TRL / medix key -> canonical key (first match wins).
_RENAMES = {
    "reward": "reward",
    "reward_std": "reward_std",
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "completion_truncated_ratio",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "dynamic_sampling/frac_groups_dropped": "frac_groups_dropped",
    "judge/model_calls": "judge_requests",
    "judge/error_rate": "judge_error_rate",
    "judge/cache_hit_rate": "judge_cache_hit_rate",
    "judge/mean_latency_s": "judge_latency_s",
    "judge/injections": "judge_injections",
    "loss": "loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "step_time": "step_time",
}


def component_name(func_name: str) -> str:
    """``format_reward`` -> ``format``; names without the suffix pass through."""
    return func_name.removesuffix("_reward")


def canonical_metrics(logs: dict[str, Any]) -> dict[str, Any]:
    """The project's names for a TRL log dict (see module doc); unknown keys are not included."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            out[component_name(key[len("rewards/"):-len("/mean")])] = value
        elif key in _RENAMES:
            out[_RENAMES[key]] = value
    return out


def _is_train_step_log(logs: dict[str, Any]) -> bool:
    if any(k.startswith("eval_") for k in logs) or "train_runtime" in logs:
        return False
    return "loss" in logs or "reward" in logs


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item"):
        try:
            return _json_safe(value.item())
        except (ValueError, RuntimeError):
            return str(value)
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` (a truncated last line, from a killed run, is ignored)."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsJsonlCallback(TrainerCallback):
    """Append one row per logged training step to ``path``; eval logs go to ``eval_metrics.jsonl`` beside it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.eval_path = self.path.with_name("eval_metrics.jsonl")
        self._t0 = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # a resumed run: keep the rows up to the checkpoint's step
            rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= state.global_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if any(k.startswith("eval_") for k in logs):
            target = self.eval_path
        elif _is_train_step_log(logs):
            target = self.path
        else:
            return
        row = {"step": state.global_step, "epoch": _json_safe(state.epoch),
               "elapsed_s": round(time.time() - self._t0, 3)}
        row.update({k: _json_safe(v) for k, v in canonical_metrics(logs).items()})
        row["raw"] = {k: _json_safe(v) for k, v in logs.items()}
        with target.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def progress_line(m: dict[str, Any]) -> str:
    """One compact console line for the canonical metrics of a step."""
    parts = [f"reward {_fmt(m.get('reward'))}"]
    parts.append(" ".join(f"{c} {_fmt(m.get(c), '.2f')}" for c in COMPONENTS if c in m))
    if any(k in m for k in ("judge_error_rate", "judge_cache_hit_rate", "judge_latency_s")):
        parts.append(f"judge err {_fmt(m.get('judge_error_rate'), '.0%')} hit {_fmt(m.get('judge_cache_hit_rate'), '.0%')}"
                     f" {_fmt(m.get('judge_latency_s'), '.2f')}s")
    if "frac_groups_dropped" in m:
        parts.append(f"dropped {_fmt(m['frac_groups_dropped'], '.0%')}")
    parts.append(f"len {_fmt(m.get('completion_length'), '.0f')}")
    if "kl" in m:
        parts.append(f"kl {_fmt(m['kl'], '.4f')}")
    parts.append(f"clip {_fmt(m.get('clip_ratio'), '.3f')}")
    return " | ".join(p for p in parts if p)


class ConsoleProgressCallback(TrainerCallback):
    """A tqdm bar over the training steps with the latest reward figures, and one line per logged step."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self._last = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", dynamic_ncols=True)
            self._last = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self._last)
            self._last = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if _is_train_step_log(logs):
            m = canonical_metrics(logs)
            line = f"step {state.global_step}/{state.max_steps} | {progress_line(m)}"
            if self.bar is not None:
                self.bar.set_postfix_str(f"reward {_fmt(m.get('reward'))} fmt {_fmt(m.get('format'), '.2f')}",
                                         refresh=False)
                self.bar.write(line)
            else:
                log.info(line)
        elif "train_runtime" in logs:
            msg = f"done: {logs.get('train_runtime', 0):.1f} s, {logs.get('train_steps_per_second', 0):.3f} steps/s"
            if self.bar is not None:
                self.bar.write(msg)
            else:
                log.info(msg)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def plot_rewards(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Write a PNG of the total reward and each component over steps. Returns ``None`` when nothing to plot."""
    keys = [k for k in ("reward", *COMPONENTS) if any(r.get(k) is not None for r in rows)]
    if not rows or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                linewidth=2.2 if key == "reward" else 1.2, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "reward and components")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _prompt_text(prompt: Any) -> str:
    """The last user turn's text of a conversational prompt (few-shot turns left out)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        content = prompt[-1].get("content", "")
        if isinstance(content, str):
            return content
        return " ".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
    return str(prompt)


def _completion_text(completion: Any) -> str:
    if isinstance(completion, list):
        return "".join(m.get("content", "") if isinstance(m.get("content"), str)
                       else " ".join(c.get("text", "") for c in m.get("content", []) if isinstance(c, dict))
                       for m in completion)
    return str(completion)


def sample_rows(trainer, n: int = 16) -> list[dict[str, Any]]:
    """The most recent completions TRL keeps (``trainer._logs``) with their per-component rewards."""
    logs = getattr(trainer, "_logs", None)
    if not logs or not logs.get("completion"):
        return []
    prompts, completions = list(logs["prompt"]), list(logs["completion"])
    rewards = {component_name(k): list(v) for k, v in logs["rewards"].items()}
    advantages = list(logs["advantages"])
    rows = []
    for i in range(max(0, len(completions) - n), len(completions)):
        row = {"prompt": _prompt_text(prompts[i])[-300:], "completion": _completion_text(completions[i])}
        for k, vals in rewards.items():
            row[k] = _json_safe(vals[i]) if i < len(vals) else None
        row["advantage"] = _json_safe(advantages[i]) if i < len(advantages) else None
        rows.append(row)
    return rows


def _md_cell(text: Any, limit: int = 240) -> str:
    if isinstance(text, float):
        return f"{text:.2f}"
    s = "-" if text is None else str(text)
    s = s.replace("|", "\\|").replace("\n", " ").strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def write_samples_table(rows: list[dict[str, Any]], md_path: str | Path, step: int) -> Path | None:
    if not rows:
        return None
    md_path = Path(md_path)
    cols = list(rows[0])
    lines = [f"# Sample completions at step {step}", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md_cell(r.get(c)) for c in cols) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with md_path.with_suffix(".jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"step": step, **r}) + "\n")
    return md_path


class RunReportCallback(TrainerCallback):
    """At each save and at the end: ``reward_curve.png`` and ``samples.md``/``.jsonl`` in the run folder.

    Copies go into the checkpoint folder too, so a checkpoint documents the run up to its step.
    """

    def __init__(self, run_dir: str | Path, metrics_path: str | Path, title: str = "", n_samples: int = 16):
        self.run_dir = Path(run_dir)
        self.metrics_path = Path(metrics_path)
        self.title = title
        self.n_samples = n_samples
        self.trainer = None  # set by run_training after the trainer is built
        self.plot_path: Path | None = None

    def write(self, step: int, extra_dir: Path | None = None) -> None:
        rows = read_metrics(self.metrics_path)
        for target in filter(None, (self.run_dir, extra_dir)):
            try:
                plot = plot_rewards(rows, target / "reward_curve.png", title=self.title)
                if target == self.run_dir:
                    self.plot_path = plot
                if self.trainer is not None:
                    write_samples_table(sample_rows(self.trainer, self.n_samples), target / "samples.md", step)
            except Exception as exc:  # noqa: BLE001 - a report must never kill a training run
                log.warning("could not write the run report to %s: %s", target, exc)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = self.run_dir / f"checkpoint-{state.global_step}"
            self.write(state.global_step, ckpt if ckpt.is_dir() else None)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write(state.global_step)
