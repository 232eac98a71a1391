"""Resuming a run safely: the same experiment, the right learning rate, a quiet and clear start.

- :func:`recipe_fingerprint` is what makes a run the same experiment: model, data, prompt template (name and
  version), reward (mode, components, weights), algorithm preset and dynamic sampling. It is written to
  ``run_fingerprint.json`` beside the checkpoints; ``--resume`` compares it with the new recipe and refuses a
  mismatch (naming the fields) unless ``--force``. Step counts, learning rate or logging may change.
- :class:`ResumeLearningRate`: a resumed optimizer holds the learning rate of the step it was saved after.
  The scheduler only sets the next one after the first resumed step, so with ``max_steps`` raised past the
  end of a linear schedule that first step ran at lr 0. The callback sets the rate of the current step, as
  the (new) schedule says, before it runs, and says when ``max_steps`` changed.
- :func:`quiet_tied_weights_warning`: a tied ``lm_head.weight`` is not saved in a checkpoint (it is the
  embedding), and transformers warns ``missing keys ['lm_head.weight']`` on every resume; that one warning
  is hidden, any other missing key still shows.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from medix_r1.errors import UsageError

log = logging.getLogger(__name__)

FINGERPRINT_NAME = "run_fingerprint.json"


def recipe_fingerprint(recipe, reward: dict[str, Any], template) -> dict[str, Any]:
    """The settings that make two runs the same experiment, as plain data (see the module docstring)."""
    data = recipe.data
    ds = recipe.algorithm.dynamic_sampling
    return {
        "model.name_or_path": recipe.model.name_or_path,
        "model.lora.enabled": recipe.model.lora.enabled,
        "data.train": data.train,
        "data.split": data.split,
        "data.limit": data.limit,
        "data.image_only": data.image_only,
        "data.template": template.name,
        "data.template_version": template.version,
        "reward.mode": reward.get("mode"),
        "reward.components": list(reward.get("components") or []),
        "reward.weights": dict(reward.get("weights") or {}),
        "algorithm.preset": recipe.algorithm.preset,
        "algorithm.dynamic_sampling": recipe.algorithm.dynamic_sampling_enabled and {
            "min_mean": ds.min_mean, "max_mean": ds.max_mean, "drop_equal": ds.drop_equal},
    }


def fingerprint_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"key: saved -> current"`` for every field that differs (a field new to either side counts)."""
    keys = list(dict.fromkeys([*saved, *current]))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys
            if json.dumps(saved.get(k), sort_keys=True) != json.dumps(current.get(k), sort_keys=True)]


def check_fingerprint(out: Path, current: dict[str, Any], *, force: bool) -> None:
    """Compare ``current`` with the run folder's saved fingerprint; a mismatch is a :class:`UsageError`
    unless ``force`` (then a warning). A run folder without one (made before fingerprints) is accepted."""
    path = Path(out) / FINGERPRINT_NAME
    if not path.is_file():
        log.warning("%s has no %s (a run from an older medix-r1): cannot check that the recipe is the same",
                    out, FINGERPRINT_NAME)
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", fix="pass --force to resume anyway") from None
    diffs = fingerprint_differences(saved, current)
    if not diffs:
        return
    if force:
        log.warning("resuming with a different recipe (--force): %s", "; ".join(diffs))
        return
    raise UsageError(
        f"the recipe differs from the one this run was started with in {len(diffs)} field(s): "
        + "; ".join(diffs), where=str(out),
        fix="resume with the original recipe, choose another --output-dir for a new run, or pass --force to "
            "continue this run with the changed recipe")


def write_fingerprint(out: Path, fingerprint: dict[str, Any]) -> Path:
    path = Path(out) / FINGERPRINT_NAME
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def saved_max_steps(checkpoint: Path) -> int | None:
    """The ``max_steps`` the checkpoint's run was planned for (from its ``trainer_state.json``)."""
    try:
        return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ResumeLearningRate(TrainerCallback):
    """On a resumed run, set each parameter group's lr to the schedule's value for the current step."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = Path(checkpoint)

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        before = saved_max_steps(self.checkpoint)
        if before is not None and before != state.max_steps:
            log.warning("max_steps changed from %d to %d on resume: the learning-rate schedule is recomputed for "
                        "%d steps from step %d", before, state.max_steps, state.max_steps, state.global_step)
        lambdas = getattr(lr_scheduler, "lr_lambdas", None)
        base = getattr(lr_scheduler, "base_lrs", None)
        if optimizer is None or not lambdas or not base:
            return
        step = lr_scheduler.last_epoch
        groups = getattr(optimizer, "param_groups", [])
        for group, fn, base_lr in zip(groups, lambdas, base):
            group["lr"] = base_lr * fn(step)


class _TiedWeightsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "missing keys" not in text.lower() or "[" not in text:
            return True
        try:
            missing = ast.literal_eval(text[text.find("["):text.rfind("]") + 1])
        except (ValueError, SyntaxError):
            return True
        return not (missing and all(str(k).endswith("lm_head.weight") for k in missing))


@contextlib.contextmanager
def quiet_tied_weights_warning(tied: bool):
    """Hide transformers' ``missing keys ['lm_head.weight']`` warning while resuming a tied-embedding model."""
    if not tied:
        yield
        return
    flt = _TiedWeightsFilter()
    loggers = [logging.getLogger(n) for n in ("transformers.trainer", "transformers.modeling_utils")]
    for lg in loggers:
        lg.addFilter(flt)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(flt)
