"""Reading run folders for the app and the review: training curves and samples, eval results and samples.

Nothing here imports Gradio, so ``medix-r1 review results`` and the tests use it without the app extra.

Run folders may be written by another process while they are read: a torn last line is skipped silently (it
is being written), any other bad line is skipped and reported in ``problems``, never raised. A folder that is
not a run, or whose files cannot be read, raises :class:`~medix_r1.errors.InputError` with the file named;
the app shows that message in the page.

Eval samples join ``generations.jsonl`` and ``judgements.jsonl`` the way the score phase does (the last
record per sample; verdicts of another judge than the run's current one do not count) and carry a display
state: ``correct`` / ``wrong`` (graded, score at least 0.5 or below), ``unparseable``, ``judge_failed``,
``bad_input``, ``generation_failed`` or ``pending``. Records hold no images: :func:`sample_image` decodes one
sample's image on demand, so paging a 1,000-sample run decodes only what is shown.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError, UsageError

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
GENERATIONS = "generations.jsonl"
JUDGEMENTS = "judgements.jsonl"
REVIEW_FILE = "review.json"
STATES = ("correct", "wrong", "unparseable", "judge_failed", "bad_input", "generation_failed", "pending")
CURVES = (("reward", "total reward"), ("format", "format"), ("modality", "modality"),
          ("accuracy_llm", "accuracy (judge)"), ("accuracy_embed", "accuracy (embedding)"), ("kl", "KL"),
          ("completion_length", "completion length"), ("judge_error_rate", "judge error rate"))


# --------------------------------------------------------------------------------------------- locating
@dataclass(frozen=True)
class RunEntry:
    name: str
    """Path relative to the runs root, with ``/``."""
    path: Path
    kind: str
    """``train``, ``eval`` or ``review``."""


def run_kind(path: Path) -> str | None:
    if (path / REVIEW_FILE).is_file():
        return "review"
    if (path / "run.json").is_file() or (path / GENERATIONS).is_file():
        return "eval"
    if (path / METRICS).is_file() or (path / "resolved_recipe.yaml").is_file():
        return "train"
    return None


def find_runs(root: str | Path, max_depth: int = 3) -> list[RunEntry]:
    """Run folders under ``root`` (itself included), sorted by name; does not descend into a run."""
    root = Path(root)
    out: list[RunEntry] = []
    if not root.is_dir():
        return out

    def walk(folder: Path, depth: int) -> None:
        kind = run_kind(folder)
        if kind is not None:
            rel = folder.relative_to(root).as_posix()
            out.append(RunEntry("." if rel == "." else rel, folder, kind))
            return
        if depth >= max_depth:
            return
        try:
            children = sorted((e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")),
                              key=lambda e: e.name)
        except OSError:
            return
        for child in children:
            walk(Path(child.path), depth + 1)

    walk(root, 0)
    return sorted(out, key=lambda r: r.name)


def resolve_inside(root: str | Path, name: str | os.PathLike) -> Path:
    """``root / name`` resolved; raises :class:`UsageError` when it leaves ``root`` (``..``, a symlink)."""
    base = Path(root).resolve()
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise UsageError(f"{name} is outside the runs folder", where=str(base),
                         fix="pick a run listed in the app, or start the app with --runs on its parent folder")
    return target


# --------------------------------------------------------------------------------------------- JSONL
def read_jsonl_tolerant(path: Path) -> tuple[list[dict], list[str]]:
    """Rows of a JSONL file being appended to: a torn last line is skipped silently; any other line that
    is not a JSON object is skipped and named in the returned problems."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path.name}: {exc.strerror or exc}", where=str(path)) from exc
    lines = data.split(b"\n")
    rows, problems = [], []
    for n, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path.name} line {n}: not JSON ({getattr(exc, 'msg', exc)}); skipped")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path.name} line {n}: not a JSON object; skipped")
            continue
        rows.append(row)
    return rows, problems


class _FileCache:
    """Parsed results keyed by (path, size, mtime): a folder being written is re-read when it changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple, Any] = {}

    def get(self, key: tuple, paths: Iterable[Path], build):
        stamp = tuple(_stamp(p) for p in paths)
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        value = build()
        with self._lock:
            if len(self._data) > 64:
                self._data.clear()
            self._data[key] = (stamp, value)
        return value


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path),)
    return str(path), st.st_size, st.st_mtime_ns


_CACHE = _FileCache()


# --------------------------------------------------------------------------------------------- training
def training_curves(run_dir: str | Path) -> tuple[dict[str, list[tuple[int, float]]], list[str]]:
    """``{metric: [(step, value), ...]}`` for the metrics in :data:`CURVES` that the run logs, and problems."""
    run = Path(run_dir)
    path = run / METRICS
    if not path.is_file():
        raise InputError(f"no {METRICS} in this run folder (training has not logged a step yet?)",
                         where=str(run))
    rows, problems = read_jsonl_tolerant(path)
    series: dict[str, list[tuple[int, float]]] = {}
    for i, row in enumerate(rows):
        step = row.get("step", i)
        for key, _ in CURVES:
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(step, (int, float)):
                series.setdefault(key, []).append((int(step), float(value)))
    if not rows:
        problems.append(f"{METRICS} has no complete rows yet")
    return series, problems


def training_samples(run_dir: str | Path) -> tuple[dict[int, list[dict]], list[str]]:
    """Sampled completions by step: ``samples.jsonl`` of the run and of each ``checkpoint-N`` folder."""
    run = Path(run_dir)
    files = [run / "samples.jsonl", *sorted(run.glob("checkpoint-*/samples.jsonl"))]
    by_step: dict[int, list[dict]] = {}
    problems: list[str] = []
    for f in files:
        if not f.is_file():
            continue
        rows, probs = read_jsonl_tolerant(f)
        problems += [f"{f.parent.name}/{p}" if f.parent != run else p for p in probs]
        for r in rows:
            step = r.get("step")
            if isinstance(step, int):
                bucket = by_step.setdefault(step, [])
                if r not in bucket:  # the run folder and its last checkpoint hold the same rows
                    bucket.append(r)
    return dict(sorted(by_step.items())), problems


# --------------------------------------------------------------------------------------------- eval
def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path.name} is missing", where=str(path.parent)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path.name} is not readable JSON ({exc})", where=str(path),
                         fix="the run may still be writing it: refresh in a moment") from None
    if not isinstance(data, dict):
        raise InputError(f"{path.name} is not a JSON object", where=str(path))
    return data


def eval_results(run_dir: str | Path) -> dict:
    """The run's ``results.json``, or (while the run is going) the figures computed from its records."""
    run = Path(run_dir)
    if (run / "results.json").is_file():
        return _load_json(run / "results.json")
    from medix_r1.eval.scoring import score_run

    try:
        return score_run(run, n_resamples=200)
    except Exception as exc:  # noqa: BLE001 - a run being written or broken must become a message
        raise InputError(f"no results.json yet and the records cannot be scored: {exc}", where=str(run)) from None


def _state(g: dict | None, j: dict | None) -> tuple[str, float | None]:
    from medix_r1.eval.records import GenerationRecord, JudgementRecord
    from medix_r1.eval.scoring import _sample_state  # the score phase's own definition of a sample's state

    state, score, _ = _sample_state(GenerationRecord.from_dict(g) if g is not None else None,
                                    JudgementRecord.from_dict(j) if j is not None else None)
    if state == "scored":
        return ("correct" if score >= 0.5 else "wrong"), score
    return state, None


def _rounds(j: dict | None) -> list[dict]:
    """Each judge round's vote and raw reply."""
    if not j:
        return []
    raw = j.get("raw")
    replies: list[Any] = [raw] if raw is not None else []
    if isinstance(raw, str) and raw.startswith("["):
        try:
            replies = json.loads(raw)
        except json.JSONDecodeError:
            pass
    votes = j.get("votes") or []
    n = max(len(replies), len(votes))
    return [{"round": i + 1, "vote": votes[i] if i < len(votes) else None,
             "raw": replies[i] if i < len(replies) else None} for i in range(n)]


def eval_samples(run_dir: str | Path) -> tuple[list[dict], list[str]]:
    """One display record per sample of the run (see the module doc), in manifest order, and problems."""
    run = Path(run_dir)
    paths = [run / "run.json", run / GENERATIONS, run / JUDGEMENTS]
    return _CACHE.get(("eval", str(run.resolve())), paths, lambda: _build_eval_samples(run))


def _build_eval_samples(run: Path) -> tuple[list[dict], list[str]]:
    from medix_r1.prompts import parse_completion

    manifest = _load_json(run / "run.json") if (run / "run.json").is_file() else {}
    problems: list[str] = []
    gens: dict[tuple[str, str], dict] = {}
    judgements: dict[tuple[str, str], dict] = {}
    for name, target in ((GENERATIONS, gens), (JUDGEMENTS, judgements)):
        if (run / name).is_file():
            rows, probs = read_jsonl_tolerant(run / name)
            problems += probs
            for r in rows:
                if "task" in r and "id" in r:
                    target[(str(r["task"]), str(r["id"]))] = r
    if not gens and not manifest.get("tasks"):
        raise InputError(f"neither run.json nor {GENERATIONS} has any samples", where=str(run))
    judge_model = (manifest.get("judge") or {}).get("model")
    order = [(t, str(i)) for t, man in (manifest.get("tasks") or {}).items() for i in man.get("ids", [])]
    known = set(order)
    order += [k for k in gens if k not in known]
    out = []
    for task, sid in order:
        g, j = gens.get((task, sid)), judgements.get((task, sid))
        if j is not None and judge_model and j.get("method") in ("judge", "guard") \
                and j.get("judge_model") != judge_model:
            j = None
        state, score = _state(g, j)
        g = g or {}
        prediction = g.get("prediction")
        parsed = parse_completion(prediction) if isinstance(prediction, str) else None
        has_image = g["has_image"] if "has_image" in g else g.get("kind") == "vision"
        out.append({
            "task": task, "id": sid, "state": state, "score": score,
            "question": g.get("question"), "reference": g.get("reference"), "prediction": prediction,
            "modality": g.get("modality") or ("unspecified" if has_image else "text"),
            "answer_type": g.get("answer_type") or "unknown", "has_image": bool(has_image),
            "tag": parsed.modality if parsed else None, "reasoning": parsed.reasoning if parsed else None,
            "answer": parsed.final_answer if parsed else None,
            "well_formed": parsed.well_formed if parsed else None, "format_issue": parsed.reason if parsed else None,
            "verdict": None if j is None else {k: j.get(k) for k in ("status", "method", "reason", "score",
                                                                    "judge_model", "error", "flagged")},
            "rounds": _rounds(j), "error": g.get("error"),
        })
    return out, problems


def filter_samples(samples: list[dict], *, task: str | None = None, state: str | None = None,
                   modality: str | None = None, answer_type: str | None = None) -> list[dict]:
    """Samples matching every given filter (``None`` or ``"all"`` matches anything)."""
    def ok(value, wanted):
        return wanted in (None, "", "all") or value == wanted

    return [s for s in samples if ok(s["task"], task) and ok(s["state"], state) and ok(s["modality"], modality)
            and ok(s["answer_type"], answer_type)]


def page_of(items: list, page: int, per_page: int) -> tuple[list, int, int]:
    """(items on ``page`` (1-based, clamped), the page, the number of pages)."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(1, int(page)), pages)
    return items[(page - 1) * per_page: page * per_page], page, pages


def side_by_side(a: list[dict], b: list[dict], *, only_disagree: bool = False) -> list[dict]:
    """Samples both runs have, with each run's state and answer; ``disagree`` when the states differ."""
    index = {(s["task"], s["id"]): s for s in b}
    out = []
    for s in a:
        t = index.get((s["task"], s["id"]))
        if t is None:
            continue
        disagree = s["state"] != t["state"]
        if only_disagree and not disagree:
            continue
        out.append({"task": s["task"], "id": s["id"], "question": s["question"], "reference": s["reference"],
                    "a_state": s["state"], "a_answer": s["answer"], "b_state": t["state"], "b_answer": t["answer"],
                    "disagree": disagree})
    return out


# --------------------------------------------------------------------------------------------- images
_IMAGE_LOCK = threading.Lock()
_IMAGE_MAPS: dict[tuple[str, str], dict[str, list]] = {}


def _task_image_refs(run: Path, task: str) -> dict[str, list]:
    """Sample id -> image references (paths or bytes) of one task, loaded once per run and task, from the
    task's local or bundled data (never the hub: the app must work offline and answer quickly)."""
    key = (str(run.resolve()), task)
    with _IMAGE_LOCK:
        if key in _IMAGE_MAPS:
            return _IMAGE_MAPS[key]
    refs: dict[str, list] = {}
    try:
        from medix_r1.eval.registry import get_task, task_from_jsonl
        from medix_r1.eval.sources import load_task_data

        man = (_load_json(run / "run.json").get("tasks") or {}).get(task) or {}
        origin = str(man.get("origin") or "")
        local = bool(origin) and Path(origin).exists()
        if origin == "bundled" or local:
            try:
                spec = get_task(task)
            except Exception:  # noqa: BLE001 - a canonical JSONL file is a task without a registry name
                spec = task_from_jsonl(origin)
            data = load_task_data(spec, data_dirs={spec.name: origin} if local else None)
            refs = {s.id: list(s.images) for s in data.samples if s.images}
    except Exception as exc:  # noqa: BLE001 - no image is a message in the page, not a failure
        log.warning("no images for task %s of %s: %s", task, run, exc)
    with _IMAGE_LOCK:
        _IMAGE_MAPS[key] = refs
    return refs


def sample_image(run_dir: str | Path, task: str, sample_id: str):
    """The first image of one eval sample as a PIL image, or ``None`` when it has none or it cannot be found."""
    from medix_r1.data import load_image

    refs = _task_image_refs(Path(run_dir), task).get(sample_id)
    if not refs:
        return None
    try:
        return load_image(refs[0])
    except Exception as exc:  # noqa: BLE001
        log.warning("cannot open the image of %s/%s: %s", task, sample_id, exc)
        return None


__all__ = ["CURVES", "STATES", "RunEntry", "eval_results", "eval_samples", "filter_samples", "find_runs",
           "page_of", "read_jsonl_tolerant", "resolve_inside", "run_kind", "sample_image", "side_by_side",
           "training_curves", "training_samples"]
