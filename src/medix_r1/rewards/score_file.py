"""Score a file of completions with the composite reward (the library side of ``medix-r1 score``).

Input rows (JSONL, or Parquet with the same columns): ``id``, ``completion`` (text, or a list of chat
messages), ``reference`` (``"<TAG> answer"`` or a plain answer; ``answer`` or ``solution`` also work),
optional ``question``, ``modality``, ``answer_type``, ``options`` and ``answer_letter``. Each output row is the
input row plus ``"rewards": {"format", "modality", "accuracy_llm", "accuracy_embed", "total"}``. A component
not asked for, or without a verdict, is ``null``; ``total`` is :func:`medix_r1.rewards.total.composite_total`.

No lost work: the output folder is checked for writing before anything is scored; rows are appended to the
output as they finish (in chunks, keyed by ``id``), and the file is rewritten in input order at the end. A
rerun of the same command continues: rows already in the output are kept (those without a verdict are
scored again), provided the settings (kept beside the output in ``OUT.settings.json``) and the input rows
are the same; otherwise it refuses, saying why.

A malformed row (bad JSON, missing field, wrong type, unknown modality, duplicate id) is reported with its
line number and left out; the rest are still scored. An input with no rows is an error.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medix_r1.aio import gather_or_cancel
from medix_r1.data.loaders import iter_json_lines
from medix_r1.errors import InputError, ServiceError, UsageError
from medix_r1.modalities import normalize_tag, split_tagged_answer
from medix_r1.rewards.config import COMPONENTS
from medix_r1.rewards.suite import RewardSuite


@dataclass(frozen=True)
class RowProblem:
    line: int
    id: str | None
    message: str
    unit: str = "line"
    """``line`` (JSONL) or ``row`` (Parquet)."""

    def __str__(self) -> str:
        return f"{self.unit} {self.line}" + (f" (id={self.id})" if self.id is not None else "") + f": {self.message}"


@dataclass
class ScoreReport:
    """What a scoring run did: counts, per-component means, judge statistics, problems."""

    rows: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    means: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    nones: dict[str, int] = field(default_factory=dict)
    judge: dict = field(default_factory=dict)
    shortcuts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    output: str = ""
    resumed: int = 0
    """Rows found already scored in the output and kept."""
    no_verdict: int = 0
    """Rows whose judge gave no verdict (``accuracy_llm`` null): a rerun scores them again."""

    def table(self) -> str:
        """A plain-text summary table (per-component means, judge error rate, cache hits)."""
        lines = [f"{'component':<16}{'mean':>8}{'scored':>8}{'null':>7}"]
        for c in (*COMPONENTS, "total"):
            m = self.means.get(c)
            lines.append(f"{c:<16}{f'{m:.4f}' if m is not None else '-':>8}{self.counts.get(c, 0):>8}"
                         f"{self.nones.get(c, 0):>7}")
        j = self.judge
        if j.get("requests"):
            bs = j.get("by_status", {})
            lines.append(
                f"judge: {j['requests']} verdicts, {j['model_calls']} model calls, cache hits {j['cache_hits']} "
                f"({j['cache_hit_rate']:.1%}), failed {j['error_rate']:.1%} (timeout {bs.get('timeout', 0)}, "
                f"error {bs.get('error', 0)}, unparseable {bs.get('unparseable', 0)}), injections "
                f"{j['injections']}, mean latency {j['mean_latency_s']:.3f} s")
        if self.shortcuts:
            lines.append("decided without a model: " + ", ".join(f"{k} {v}" for k, v in sorted(self.shortcuts.items())))
        lines.append(f"{self.rows} row(s) in the output, {self.rows - self.resumed} scored in {self.seconds:.1f} s"
                     + (f", {self.resumed} kept from an earlier run" if self.resumed else "")
                     + (f", {len(self.problems)} malformed row(s) left out" if self.problems else "")
                     + (f" -> {self.output}" if self.output else ""))
        if self.no_verdict:
            lines.append(f"{self.no_verdict} row(s) got no judge verdict; rerun the same command to score them again")
        return "\n".join(lines)


def read_rows(path: str | Path) -> tuple[list[tuple[int, dict]], list[RowProblem]]:
    """Read and check the input file (JSONL, or ``.parquet``). Returns ``(good rows with their line
    numbers, problems)``. A file that cannot be read raises :class:`~medix_r1.errors.InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("input file not found", where=str(path), fix="check the --input path")
    unit = "row" if path.suffix.lower() == ".parquet" else "line"
    good: list[tuple[int, dict]] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for lineno, row in (_parquet_rows(path) if unit == "row" else iter_json_lines(path)):
        if isinstance(row, str):
            problems.append(RowProblem(lineno, None, row, unit))
            continue
        rid = row.get("id")
        msg = _check_row(row)
        if msg is None and str(rid) in seen:
            msg = f"duplicate id (first on {unit} {seen[str(rid)]})"
        if msg is not None:
            problems.append(RowProblem(lineno, None if rid is None else str(rid), msg, unit))
            continue
        seen[str(rid)] = lineno
        good.append((lineno, row))
    return good, problems


def _parquet_rows(path: Path):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"cannot read it as Parquet: {exc}", where=str(path),
                         fix="give a Parquet file, or JSONL with one JSON object per line") from exc
    for i, row in enumerate(table.to_pylist(), start=1):
        yield i, {k: v for k, v in row.items() if v is not None}


def _check_row(row: dict) -> str | None:
    rid = row.get("id")
    if rid is None or (isinstance(rid, str) and not rid.strip()) or not isinstance(rid, (str, int)):
        return "field 'id' is missing or empty (a string or an integer)"
    comp = row.get("completion")
    if comp is None:
        return "field 'completion' is missing"
    if not isinstance(comp, (str, list)):
        return f"field 'completion' must be a string or a list of chat messages, got {type(comp).__name__}"
    if isinstance(comp, list) and not all(isinstance(m, dict) and "content" in m for m in comp):
        return "field 'completion' is a list but not of chat messages ({'role', 'content'})"
    ref_keys = [k for k in ("reference", "answer", "solution") if row.get(k) is not None]
    if not ref_keys:
        return "no reference: give 'reference' (\"<TAG> answer\" or a plain answer), 'answer' or 'solution'"
    ref = row[ref_keys[0]]
    if not isinstance(ref, str) or not ref.strip():
        return f"field {ref_keys[0]!r} must be a non-empty string"
    for k in ("question", "answer_type"):
        if row.get(k) is not None and not isinstance(row[k], str):
            return f"field {k!r} must be a string"
    mod = row.get("modality")
    if mod not in (None, "") and (not isinstance(mod, str) or normalize_tag(mod, brackets=False) is None):
        return f"field 'modality' {mod!r} is not one of the 16 modality tags (see medix_r1.modalities)"
    tag, _ = split_tagged_answer(ref)
    if tag is not None and normalize_tag(tag) is None:
        return f"reference starts with {tag}, which is not one of the 16 modality tags"
    return None


def check_writable(output: str | Path) -> Path:
    """Make sure ``output`` can be written (its folder is created), before any work is done."""
    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".check"):
            pass
        if out.exists() and not os.access(out, os.W_OK):
            raise PermissionError(f"{out} is read-only")
    except OSError as exc:
        raise InputError(f"cannot write the output: {exc.strerror or exc}", where=f"--output {out}",
                         fix="choose a file in a folder you can write to") from exc
    if out.is_dir():
        raise InputError("the output is a folder", where=f"--output {out}", fix="give a file name, e.g. scored.jsonl")
    return out


def _record(row: dict, rewards: dict) -> dict:
    record = dict(row)
    rewards = dict(rewards)
    det = rewards.pop("details", None)
    record["rewards"] = rewards
    if det is not None:
        record["reward_details"] = det
    return record


def _input_part(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("rewards", "reward_details")}


def settings_of(suite: RewardSuite, details: bool) -> dict:
    """What makes two scoring runs comparable: a rerun continues only with the same settings."""
    c = suite.config
    out = {"mode": c.mode, "components": list(c.components), "weights": dict(c.weights),
           "injection_guard": bool(c.injection_guard), "details": bool(details)}
    if "accuracy_llm" in c.components:
        out["judge"] = {"model": suite.judge.backend.model_name, "prompt": suite.judge.prompt.key}
    if "accuracy_embed" in c.components:
        out["embedding"] = {"model": c.embedding_model, "scoring": c.embed_scoring,
                            "threshold": c.embed_threshold}
    return out


def _settings_path(out: Path) -> Path:
    return out.with_name(out.name + ".settings.json")


def _load_previous(out: Path, settings: dict, by_id: dict[str, dict]) -> dict[str, dict]:
    """Rows already scored in ``out`` (last line per id wins), after checking they belong to this run."""
    if not out.exists() or out.stat().st_size == 0:
        return {}
    fix = f"use another --output, or delete {out} (and {_settings_path(out).name}) to start over"
    sp = _settings_path(out)
    try:
        previous_settings = json.loads(sp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{out} exists but was not written by this command (no readable {sp.name})",
                         where=f"--output {out}", fix=fix) from None
    if previous_settings != settings:
        changed = sorted(k for k in set(settings) | set(previous_settings)
                         if settings.get(k) != previous_settings.get(k))
        raise UsageError(f"{out} was scored with other settings ({', '.join(changed)} differ)",
                         where=f"--output {out}", fix=fix)
    lines = out.read_text(encoding="utf-8").splitlines()
    done: dict[str, dict] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if n == len(lines):  # the last line of a killed run may be cut short
                continue
            raise InputError(f"line {n} is not JSON", where=str(out), fix=fix) from None
        rid = str(record.get("id"))
        if rid not in by_id or _input_part(record) != by_id[rid]:
            raise UsageError(f"the input changed since {out} was written (row id={rid} "
                             f"{'is gone' if rid not in by_id else 'differs'})", where=f"--output {out}", fix=fix)
        done[rid] = record
    return done


def _finished(record: dict, components) -> bool:
    return not ("accuracy_llm" in components and record["rewards"].get("accuracy_llm") is None)


def _write_all(out: Path, records: list[dict]) -> None:
    """Rewrite the output in input order, atomically (a killed run leaves the appended file intact)."""
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    os.replace(tmp, out)


@dataclass
class ScoreProgress:
    """Live counts, for the caller's messages when a run stops early (Ctrl-C, the error budget)."""

    total: int = 0
    saved: int = 0
    output: str = ""


def _reward_columns(row: dict) -> dict:
    """The columns the reward reads, from an input row: the reference as given, so that
    :func:`medix_r1.rewards.inputs.row_references` reads it exactly as in training."""
    cols = {"completion": row["completion"]}
    for key in ("reference", "answer", "solution", "modality", "question", "answer_type", "options",
                "answer_letter"):
        if row.get(key) not in (None, ""):
            cols[key] = row[key]
    return cols


async def ascore_file(input_path: str | Path, output_path: str | Path, suite: RewardSuite, *,
                      progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
                      details: bool = False, chunk_size: int | None = None,
                      state: ScoreProgress | None = None) -> ScoreReport:
    """Score ``input_path`` into ``output_path`` (module docstring: appends as rows finish, resumes).

    Raises :class:`~medix_r1.errors.InputError` (unreadable or empty input, unwritable output),
    :class:`~medix_r1.errors.UsageError` (the output belongs to other settings or another input) and
    :class:`~medix_r1.errors.ServiceError` (no judged row got a verdict). Rows finished before an error or
    a Ctrl-C stay in the output.
    """
    t0 = time.perf_counter()
    state = state if state is not None else ScoreProgress()
    out = check_writable(output_path)
    good, problems = await asyncio.to_thread(read_rows, input_path)
    if not good:
        raise InputError("no rows to score" + (f" ({len(problems)} malformed, listed above)" if problems else
                                               " (the file is empty)"),
                         where=str(input_path), fix="give a JSONL file with one row per completion "
                                                    "(see `medix-r1 score --help`)")
    by_id = {str(r["id"]): r for _, r in good}
    settings = settings_of(suite, details)
    previous = await asyncio.to_thread(_load_previous, out, settings, by_id)
    keep = {rid: rec for rid, rec in previous.items() if _finished(rec, suite.config.components)}
    todo = [r for _, r in good if str(r["id"]) not in keep]
    state.total, state.saved, state.output = len(good), len(keep), str(out)
    if on_total:
        on_total(len(todo))
    _settings_path(out).write_text(json.dumps(settings, indent=1), encoding="utf-8")
    if not previous:
        out.write_text("", encoding="utf-8")

    # the judge's error budget needs calls before it can judge a rate; a small file has fewer
    budget = getattr(suite.judge, "budget", None) if "accuracy_llm" in suite.config.components else None
    if budget is not None and todo:
        budget.min_calls = max(1, min(budget.min_calls, len(todo)))

    size = chunk_size or max(256, 10 * suite.config.judge.concurrency)  # a chunk keeps the slots busy
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    new: dict[str, dict] = {}
    lock = asyncio.Lock()
    in_flight = asyncio.Semaphore(2)  # the next chunk fills the judge's slots while one drains

    async def run_chunk(rows: list[dict]) -> None:
        async with in_flight:
            scored = await suite.ascore_rows([_reward_columns(r) for r in rows], progress=progress,
                                             details=details)
        records = [_record(r, s) for r, s in zip(rows, scored)]
        async with lock:
            await asyncio.to_thread(_append, out, records)
            for rec in records:
                new[str(rec["id"])] = rec
            state.saved += len(records)

    try:
        if chunks:
            await gather_or_cancel([asyncio.ensure_future(run_chunk(c)) for c in chunks])
    finally:
        records = [new.get(str(r["id"])) or keep.get(str(r["id"])) or previous.get(str(r["id"]))
                   for _, r in good]
        await asyncio.to_thread(_write_all, out, [r for r in records if r is not None])

    final = [r for r in records if r is not None]
    report = ScoreReport(rows=len(final), problems=problems, seconds=time.perf_counter() - t0, output=str(out),
                         resumed=len(keep))
    for c in (*COMPONENTS, "total"):
        vals = [r["rewards"][c] for r in final if r["rewards"].get(c) is not None]
        report.counts[c] = len(vals)
        report.nones[c] = len(final) - len(vals)
        report.means[c] = sum(vals) / len(vals) if vals else None
    report.judge = suite.stats.judge.as_dict()
    report.shortcuts = dict(suite.stats.shortcuts)
    if "accuracy_llm" in suite.config.components:
        report.no_verdict = sum(1 for r in final if r["rewards"].get("accuracy_llm") is None)
        j = suite.stats.judge
        judged = j.failures + j.by_status.get("ok", 0)
        if judged and not j.by_status.get("ok", 0):
            last = j.last_error or "unknown"
            raise ServiceError(f"no judged row got a verdict: all {j.failures} judge requests failed "
                               f"(last error: {last})", where=suite.judge.backend.describe(),
                               fix=f"{suite.judge.backend.how_to_fix()}; the rows are saved in {out} and a rerun "
                                   "of the same command scores them again")
    return report


def _append(out: Path, records: list[dict]) -> None:
    with open(out, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        fh.flush()
        os.fsync(fh.fileno())
