"""The score phase: per-task accuracy with a seeded 95% bootstrap CI, coverage, breakdowns, failure
accounting, means.

Every number is in 0-1 units (never 0-100; reports format percentages for reading). A sample counts towards
accuracy only when it has a grade (rule decision or judge verdict). Samples without one are counted by
state: ``bad_input``, ``generation_failed``, ``judge_failed``, ``unparseable``, ``pending`` (not generated or
not judged yet, e.g. after an interrupted run).

Each task reports its coverage: scored / total. ``overall`` is the unweighted mean of the accuracies of the
tasks whose coverage reaches ``coverage_threshold`` (stated in results.json, default 0.9); the tasks left out
are named in ``overall_excluded`` and get a warning. ``text_mean`` and ``vision_mean`` average the covered
text and image tasks. ``overall_ci95`` resamples every covered task's samples together.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from medix_r1.eval.records import FINAL_JUDGE, GenerationRecord, JudgementRecord
from medix_r1.eval.rundir import GEN_FILE, JUDGE_FILE, RESULTS_FILE, EvalError, read_run, write_json_atomic
from medix_r1.eval.store import JsonlStore

RESULTS_SCHEMA = "medix-r1-eval-results/2"
DEFAULT_COVERAGE_THRESHOLD = 0.9
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


def _sample_state(g: GenerationRecord | None, j: JudgementRecord | None) -> tuple[str, float | None, str | None]:
    """(state, score, method) of one sample from its generation and judgement records."""
    if g is None:
        return "pending", None, None
    if g.status == "bad_input":
        return "bad_input", None, None
    if g.status != "ok":
        return "generation_failed", None, None
    if j is None or j.gen_sig != g.signature:
        return "pending", None, None
    if j.status == "unparseable":
        return "unparseable", None, "judge"
    if j.status not in FINAL_JUDGE or j.score is None:
        return "judge_failed", None, "judge"
    return "scored", float(j.score), ("exact" if j.status == "exact" else "judged")


def overall_ci(per_task: list[list[float]], *, n_resamples: int, seed: int,
               level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the unweighted mean of task means (each task resampled on its own)."""
    tasks = [np.asarray(s, dtype=float) for s in per_task if s]
    if not tasks:
        return None
    rng = np.random.default_rng([int(seed), zlib.crc32(b"overall")])
    means = np.zeros(n_resamples)
    for s in tasks:
        if s.size == 1 or np.all(s == s[0]):
            means += s[0]
            continue
        chunk = max(1, 2_000_000 // s.size)
        for lo in range(0, n_resamples, chunk):
            k = min(chunk, n_resamples - lo)
            means[lo:lo + k] += s[rng.integers(0, s.size, size=(k, s.size))].mean(axis=1)
    means /= len(tasks)
    alpha = (1 - level) / 2
    lo_q, hi_q = np.quantile(means, [alpha, 1 - alpha])
    return float(lo_q), float(hi_q)


def coverage_warning(name: str, t: dict[str, Any], threshold: float) -> str:
    c = t["counts"]
    parts = [f"{c.get(k)} {k.replace('_', ' ')}" for k in ("bad_input", "generation_failed", "judge_failed",
                                                            "unparseable", "pending") if c.get(k)]
    return (f"task {name}: only {t['n_scored']} of {t['n']} samples scored (coverage "
            f"{100 * t['coverage']['rate']:.0f}%, threshold {100 * threshold:.0f}%"
            + (f"; {', '.join(parts)}" if parts else "") + "): its accuracy is left out of overall")


def score_run(out_dir: str | Path, *, n_resamples: int = 1000, seed: int = 0, judge_model: str | None = "run",
              coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD) -> dict[str, Any]:
    """Compute ``results.json`` for an output folder (does not write it; see :func:`write_results`).

    ``judge_model="run"`` (default) counts judge verdicts of the run's current judge only (rule decisions
    always count); ``None`` accepts any judge's verdicts.
    """
    if not 0.0 <= coverage_threshold <= 1.0:
        raise EvalError(f"the coverage threshold must be between 0 and 1, got {coverage_threshold}",
                        where="--min-coverage")
    out = Path(out_dir)
    run = read_run(out)
    if not run.get("tasks"):
        raise EvalError(f"{out} has no run.json task manifest", where="--output-dir",
                        fix="run `medix-r1 eval generate` (or `eval run`) first")
    gens = {k: GenerationRecord.from_dict(v) for k, v in JsonlStore(out / GEN_FILE).latest().items()}
    judgements = {k: JudgementRecord.from_dict(v) for k, v in JsonlStore(out / JUDGE_FILE).latest().items()}
    if judge_model == "run":
        judge_model = (run.get("judge") or {}).get("model")

    tasks: dict[str, Any] = {}
    task_scores: dict[str, list[float]] = {}
    for name, man in run["tasks"].items():
        states = dict.fromkeys(STATES, 0)
        methods = {"exact": 0, "judged": 0}
        injections = flagged = 0
        scores: list[float] = []
        by_type: list[tuple[str, float | None]] = []
        by_modality: list[tuple[str, float | None]] = []
        well_formed = n_generated = 0
        for sid in man["ids"]:
            g = gens.get((name, sid))
            j = judgements.get((name, sid))
            if j is not None and judge_model and j.method in ("judge", "guard") and j.judge_model != judge_model:
                j = None  # another judge's verdict: this judge has not graded it yet
            state, score, method = _sample_state(g, j)
            states[state] += 1
            if state == "scored":
                scores.append(score)
                methods[method] += 1
                injections += j.status == "injection"
            if j is not None and j.flagged and state != "pending":
                flagged += 1
            if g is not None and g.status == "ok":
                n_generated += 1
                well_formed += bool(g.well_formed)
            if g is not None:  # breakdowns cover generated samples (pending ones are counted in states)
                atype = g.answer_type or "unknown"
                has_image = g.has_image if g.has_image is not None else g.kind == "vision"
                mod = g.modality or ("unspecified" if has_image else "text")
                by_type.append((atype, score))
                by_modality.append((mod, score))
        n = len(man["ids"])
        ci = bootstrap_ci(scores, n_resamples=n_resamples, seed=seed, label=name)
        rate = len(scores) / n if n else 0.0
        task_scores[name] = scores
        tasks[name] = {
            "title": man.get("title", name),
            "version": man.get("version"),
            "kind": man.get("kind"),
            "scorer": man.get("scorer"),
            "n": n,
            "n_scored": len(scores),
            "coverage": {"scored": len(scores), "total": n, "rate": rate,
                         "below_threshold": rate < coverage_threshold},
            "accuracy": _acc(scores),
            "ci95": list(ci) if ci else None,
            "counts": {**states, **methods, "injection": injections, "flagged": flagged},
            "rates": {
                "coverage": rate,
                "failure": (states["generation_failed"] + states["judge_failed"]) / n if n else 0.0,
                "bad_input": states["bad_input"] / n if n else 0.0,
                "unparseable": states["unparseable"] / n if n else 0.0,
                "pending": states["pending"] / n if n else 0.0,
                "well_formed": well_formed / n_generated if n_generated else None,
            },
            "by_answer_type": _breakdown(by_type),
            "by_modality": _breakdown(by_modality),
        }

    names = list(tasks)
    covered = [t for t in names if not tasks[t]["coverage"]["below_threshold"] and tasks[t]["accuracy"] is not None]
    excluded = {t: tasks[t]["coverage"]["rate"] for t in names if t not in covered}

    def mean_of(subset: list[str]) -> float | None:
        vals = [tasks[t]["accuracy"] for t in subset]
        return float(np.mean(vals)) if vals else None

    if len(covered) == 1:  # overall is that task's accuracy: the same CI, not a second estimate of it
        oci = tasks[covered[0]]["ci95"]
    else:
        oci = overall_ci([task_scores[t] for t in covered], n_resamples=n_resamples, seed=seed)
    judge = {k: v for k, v in (run.get("judge") or {}).items() if k != "last_stats"} or None
    results = {
        "schema": RESULTS_SCHEMA,
        "protocol": run.get("protocol") or "default",
        "tasks": tasks,
        "overall": mean_of(covered),
        "overall_ci95": list(oci) if oci else None,
        "text_mean": mean_of([t for t in covered if tasks[t]["kind"] == "text"]),
        "vision_mean": mean_of([t for t in covered if tasks[t]["kind"] == "vision"]),
        "coverage_threshold": coverage_threshold,
        "overall_tasks": covered,
        "overall_excluded": excluded,
        "warnings": [coverage_warning(t, tasks[t], coverage_threshold) for t in excluded],
        "units": "fraction (0-1)",
        "n_tasks": len(names),
        "n_tasks_scored": sum(1 for t in names if tasks[t]["accuracy"] is not None),
        "n_samples": sum(tasks[t]["n"] for t in names),
        "n_scored": sum(tasks[t]["n_scored"] for t in names),
        "limit": run.get("limit"),
        "model": run.get("model"),
        "generation": run.get("generation"),
        "judge": judge,
        "judge_stats": (run.get("judge") or {}).get("last_stats"),
        "task_versions": {t: tasks[t]["version"] for t in names},
        "config": {"bootstrap_resamples": n_resamples, "seed": seed, "ci_level": 0.95},
        "medix_r1_version": run.get("medix_r1_version"),
    }
    return results


def write_results(out_dir: str | Path, results: dict[str, Any]) -> Path:
    path = Path(out_dir) / RESULTS_FILE
    write_json_atomic(path, results)
    return path


__all__ = ["DEFAULT_COVERAGE_THRESHOLD", "RESULTS_SCHEMA", "STATES", "bootstrap_ci", "coverage_warning",
           "overall_ci", "score_run", "write_results"]
