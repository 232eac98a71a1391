"""The score phase: per-task accuracy with a seeded 95% bootstrap CI, breakdowns, failure accounting, means.

Every number is in 0-1 units (never 0-100; reports format percentages for reading). A sample counts towards
accuracy only when it has a grade (rule decision or judge verdict). Samples without one are counted by
state and reported as rates: ``bad_input``, ``generation_failed``, ``judge_failed``, ``unparseable``,
``pending`` (not generated or not judged yet, e.g. after an interrupted run).

``overall`` is the unweighted mean of the task accuracies (as the reference); ``text_mean`` and
``vision_mean`` average the text and the image tasks.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from medix_r1.eval.phases import (
    FINAL_JUDGE,
    GEN_FILE,
    JUDGE_FILE,
    EvalError,
    gen_signature,
    read_run,
    write_json_atomic,
)
from medix_r1.eval.store import JsonlStore

RESULTS_SCHEMA = "medix-r1-eval-results/1"
STATES = ("scored", "bad_input", "generation_failed", "judge_failed", "unparseable", "pending")


def bootstrap_ci(scores: Iterable[float], *, n_resamples: int = 1000, seed: int = 0, label: str = "",
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean. Deterministic for a given ``(seed, label)``.

    >>> lo, hi = bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1], seed=0, label="t")
    >>> 0.3 < lo < 0.75 < hi <= 1.0
    True
    """
    s = np.asarray(list(scores), dtype=float)
    if s.size == 0:
        return None
    if s.size == 1 or np.all(s == s[0]):
        return float(s[0]), float(s[0])
    rng = np.random.default_rng([int(seed), zlib.crc32(label.encode("utf-8"))])
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // s.size)  # bound memory on large tasks
    for lo in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - lo)
        means[lo:lo + k] = s[rng.integers(0, s.size, size=(k, s.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo_q, hi_q = np.quantile(means, [alpha, 1 - alpha])
    return float(lo_q), float(hi_q)


def _acc(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _breakdown(rows: list[tuple[str, float | None]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, score in rows:
        b = out.setdefault(key, {"n": 0, "n_scored": 0, "_scores": []})
        b["n"] += 1
        if score is not None:
            b["n_scored"] += 1
            b["_scores"].append(score)
    for b in out.values():
        b["accuracy"] = _acc(b.pop("_scores"))
    return dict(sorted(out.items()))


def _sample_state(g: dict | None, j: dict | None) -> tuple[str, float | None, str | None]:
    """(state, score, method) of one sample from its generation and judgement records."""
    if g is None:
        return "pending", None, None
    if g.get("status") == "bad_input":
        return "bad_input", None, None
    if g.get("status") != "ok":
        return "generation_failed", None, None
    if j is None or j.get("gen_sig") != gen_signature(g):
        return "pending", None, None
    status = j.get("status")
    if status == "unparseable":
        return "unparseable", None, "judge"
    if status not in FINAL_JUDGE:
        return "judge_failed", None, "judge"
    return "scored", float(j["score"]), ("exact" if status == "exact" else "judged")


def score_run(out_dir: str | Path, *, n_resamples: int = 1000, seed: int = 0,
              judge_model: str | None = "run") -> dict[str, Any]:
    """Compute ``results.json`` for an output folder (does not write it; see :func:`write_results`).

    ``judge_model="run"`` (default) counts judge verdicts of the run's current judge only (rule decisions
    always count); ``None`` accepts any judge's verdicts.
    """
    out = Path(out_dir)
    run = read_run(out)
    if not run.get("tasks"):
        raise EvalError(f"{out} has no run.json task manifest: run `medix-r1 eval generate` first")
    gens = JsonlStore(out / GEN_FILE).latest()
    judgements = JsonlStore(out / JUDGE_FILE).latest()
    if judge_model == "run":
        judge_model = (run.get("judge") or {}).get("model")

    tasks: dict[str, Any] = {}
    for name, man in run["tasks"].items():
        states = dict.fromkeys(STATES, 0)
        methods = {"exact": 0, "judged": 0}
        injections = 0
        scores: list[float] = []
        by_type: list[tuple[str, float | None]] = []
        by_modality: list[tuple[str, float | None]] = []
        well_formed = n_generated = 0
        for sid in man["ids"]:
            g = gens.get((name, sid))
            j = judgements.get((name, sid))
            if j is not None and judge_model and j.get("method") == "judge" and j.get("judge_model") != judge_model:
                j = None  # another judge's verdict: this judge has not graded it yet
            state, score, method = _sample_state(g, j)
            states[state] += 1
            if state == "scored":
                scores.append(score)
                methods[method] += 1
                if j.get("status") == "injection":
                    injections += 1
            if g is not None and g.get("status") == "ok":
                n_generated += 1
                well_formed += bool(g.get("well_formed"))
            if g is not None:  # breakdowns cover generated samples (pending ones are counted in states)
                atype = g.get("answer_type") or "unknown"
                has_image = g["has_image"] if "has_image" in g else g.get("kind") == "vision"
                mod = g.get("modality") or ("unspecified" if has_image else "text")
                by_type.append((atype, score))
                by_modality.append((mod, score))
        n = len(man["ids"])
        ci = bootstrap_ci(scores, n_resamples=n_resamples, seed=seed, label=name)
        tasks[name] = {
            "title": man.get("title", name),
            "version": man.get("version"),
            "kind": man.get("kind"),
            "scorer": man.get("scorer"),
            "n": n,
            "n_scored": len(scores),
            "accuracy": _acc(scores),
            "ci95": list(ci) if ci else None,
            "counts": {**states, **methods, "injection": injections},
            "rates": {
                "coverage": len(scores) / n if n else 0.0,
                "failure": (states["bad_input"] + states["generation_failed"] + states["judge_failed"]) / n
                if n else 0.0,
                "unparseable": states["unparseable"] / n if n else 0.0,
                "pending": states["pending"] / n if n else 0.0,
                "well_formed": well_formed / n_generated if n_generated else None,
            },
            "by_answer_type": _breakdown(by_type),
            "by_modality": _breakdown(by_modality),
        }

    def mean_of(names: list[str]) -> float | None:
        vals = [tasks[t]["accuracy"] for t in names if tasks[t]["accuracy"] is not None]
        return float(np.mean(vals)) if vals else None

    names = list(tasks)
    results = {
        "schema": RESULTS_SCHEMA,
        "tasks": tasks,
        "overall": mean_of(names),
        "text_mean": mean_of([t for t in names if tasks[t]["kind"] == "text"]),
        "vision_mean": mean_of([t for t in names if tasks[t]["kind"] == "vision"]),
        "units": "fraction (0-1)",
        "n_tasks": len(names),
        "n_tasks_scored": sum(1 for t in names if tasks[t]["accuracy"] is not None),
        "model": run.get("model"),
        "generation": run.get("generation"),
        "judge": {k: v for k, v in (run.get("judge") or {}).items() if k != "last_stats"} or None,
        "judge_stats": (run.get("judge") or {}).get("last_stats"),
        "task_versions": {t: tasks[t]["version"] for t in names},
        "config": {"bootstrap_resamples": n_resamples, "seed": seed, "ci_level": 0.95},
        "medix_r1_version": run.get("medix_r1_version"),
    }
    return results


def write_results(out_dir: str | Path, results: dict[str, Any]) -> Path:
    path = Path(out_dir) / "results.json"
    write_json_atomic(path, results)
    return path


__all__ = ["RESULTS_SCHEMA", "STATES", "bootstrap_ci", "score_run", "write_results"]
