"""Judge calibration: how often the eval judge agrees with human labels.

Input: a JSONL file of labelled gradings, one per line::

    {"id": "c01", "question": "...", "reference": "...", "prediction": "...", "label": 1}

(``label`` 1 = the prediction is correct, 0 = wrong; ``true``/``false`` and ``"correct"``/``"incorrect"`` are
accepted). Every row goes to the judge with the eval binary prompt; the result gives accuracy, Cohen's kappa
and the confusion matrix over the rows that got a verdict, plus how many got none (failures and
unparseable replies are reported, never counted as agreement or disagreement).

The package ships ``labels/judge_calibration.jsonl``: 40 cases written for this project (paraphrases,
abbreviations, laterality and negation errors, hedging, option letters, an answer that addresses the grader).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from medix_r1.data.loaders import iter_json_lines
from medix_r1.errors import InputError, UsageError
from medix_r1.eval.judge_phase import JudgeSettings

DEFAULT_LABELS = Path(__file__).parent / "labels" / "judge_calibration.jsonl"
# True and False are found under 1 and 0 (they hash alike).
_LABELS = {1: 1, 0: 0, "1": 1, "0": 0, "correct": 1, "incorrect": 0, "yes": 1, "no": 0, "true": 1, "false": 0}


class LabelFileError(InputError, ValueError):
    """A row of the labels file is invalid (the message names the file, line and field)."""


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: no such labels file")
    rows = []
    for n, row in iter_json_lines(path):
        if isinstance(row, str):
            raise LabelFileError(f"{path}:{n}: {row}")
        for key in ("reference", "prediction", "label"):
            if key not in row:
                raise LabelFileError(f"{path}:{n}: field {key!r} is missing")
        label = row["label"].lower() if isinstance(row["label"], str) else row["label"]
        if label not in _LABELS:
            raise LabelFileError(f"{path}:{n}: field 'label' must be 1/0 (or correct/incorrect), got {row['label']!r}")
        rows.append({**row, "id": str(row.get("id", n)), "label": _LABELS[label]})
    if not rows:
        raise LabelFileError(f"{path}: no rows")
    return rows


def cohen_kappa(pairs: list[tuple[int, int]]) -> float | None:
    """Cohen's kappa of two binary raters.

    >>> cohen_kappa([(1, 1), (0, 0), (1, 0), (0, 0)])
    0.5
    """
    n = len(pairs)
    if not n:
        return None
    po = sum(a == b for a, b in pairs) / n
    a1 = sum(a for a, _ in pairs) / n
    b1 = sum(b for _, b in pairs) / n
    pe = a1 * b1 + (1 - a1) * (1 - b1)
    if pe == 1.0:
        return 1.0 if po == 1.0 else 0.0
    return round((po - pe) / (1 - pe), 6)


def agreement(labels: list[int], verdicts: list[float | None]) -> dict[str, Any]:
    """Accuracy, kappa and confusion matrix (rows: human label, columns: judge verdict or none)."""
    confusion = {"label_1": {"judge_1": 0, "judge_0": 0, "none": 0},
                 "label_0": {"judge_1": 0, "judge_0": 0, "none": 0}}
    pairs = []
    for lab, v in zip(labels, verdicts):
        row = confusion[f"label_{lab}"]
        if v is None:
            row["none"] += 1
            continue
        j = 1 if v >= 0.5 else 0
        row[f"judge_{j}"] += 1
        pairs.append((lab, j))
    n_v = len(pairs)
    return {"n": len(labels), "n_verdict": n_v, "no_verdict": len(labels) - n_v,
            "accuracy": (sum(a == b for a, b in pairs) / n_v) if n_v else None,
            "kappa": cohen_kappa(pairs), "confusion": confusion,
            "positive_rate_labels": sum(labels) / len(labels) if labels else None,
            "positive_rate_judge": (sum(b for _, b in pairs) / n_v) if n_v else None}


async def acalibrate(labels_path: str | Path, settings: JudgeSettings) -> dict[str, Any]:
    """Judge every labelled row and measure agreement. Returns the metrics and the per-row verdicts."""
    from medix_r1.judge import Judge, JudgeRequest, VerdictCache

    if settings.backend is None:
        raise UsageError("calibration needs a judge", where="--judge none",
                         fix="pass --judge-url/--judge-model, or --judge local")
    rows = read_labels(labels_path)
    prompt = settings.prompts()["binary"]
    cache = VerdictCache() if settings.cache == "default" else settings.cache
    judge = Judge(settings.backend, prompt, cache=cache, guard=settings.guard != "off",
                  concurrency=settings.concurrency,
                  max_error_rate=settings.max_error_rate, min_requests_for_budget=settings.min_requests_for_budget)
    try:
        verdicts = await judge.ajudge([JudgeRequest(reference=r["reference"], prediction=r["prediction"],
                                                    question=r.get("question"), kind="binary") for r in rows])
    finally:
        await settings.backend.aclose()
    result = agreement([r["label"] for r in rows], [v.score for v in verdicts])
    result.update({
        "labels_file": str(labels_path), "judge": settings.info(), "judge_stats": judge.stats.as_dict(),
        "rows": [{"id": r["id"], "label": r["label"], "score": v.score, "status": v.status, "raw": v.raw}
                 for r, v in zip(rows, verdicts)],
    })
    return result


def calibrate(labels_path: str | Path, settings: JudgeSettings) -> dict[str, Any]:
    """Synchronous :func:`acalibrate`."""
    return asyncio.run(acalibrate(labels_path, settings))


def render_calibration(result: dict[str, Any]) -> str:
    c = result["confusion"]
    acc = "-" if result["accuracy"] is None else f"{100 * result['accuracy']:.1f}%"
    kappa = "-" if result["kappa"] is None else f"{result['kappa']:.3f}"
    return "\n".join([
        f"judge: {result['judge'].get('describe')} (prompt {result['judge'].get('prompts', {}).get('binary')})",
        f"rows: {result['n']}, with a verdict: {result['n_verdict']}, without: {result['no_verdict']}",
        f"accuracy: {acc}   Cohen's kappa: {kappa}",
        "confusion (rows: human label; columns: judge):",
        "            judge=1  judge=0  none",
        f"  label=1  {c['label_1']['judge_1']:7d}  {c['label_1']['judge_0']:7d}  {c['label_1']['none']:4d}",
        f"  label=0  {c['label_0']['judge_1']:7d}  {c['label_0']['judge_0']:7d}  {c['label_0']['none']:4d}",
    ])


__all__ = ["DEFAULT_LABELS", "LabelFileError", "acalibrate", "agreement", "calibrate", "cohen_kappa",
           "read_labels", "render_calibration"]
