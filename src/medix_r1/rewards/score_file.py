"""Score a JSONL file of completions with the composite reward (the library side of ``medix-r1 score``).

Input rows: ``id``, ``completion`` (text, or a list of chat messages), ``reference`` (``"<TAG> answer"`` or a
plain answer; ``answer`` or ``solution`` also work), optional ``question``, ``modality`` and ``answer_type``.
Each output row is the input row plus ``"rewards": {"format", "modality", "accuracy_llm", "accuracy_embed",
"total"}``, in input order. A component not asked for, or without a verdict, is ``null``; ``total`` is given
only when all four components have a value.

A malformed row (bad JSON, missing field, wrong type, unknown modality, duplicate id) is reported with its
line number and left out; the rest are still scored.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medix_r1.data.loaders import iter_json_lines
from medix_r1.modalities import normalize_tag, split_tagged_answer
from medix_r1.rewards.config import COMPONENTS
from medix_r1.rewards.suite import RewardSuite


@dataclass(frozen=True)
class RowProblem:
    line: int
    id: str | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f" (id={self.id})" if self.id is not None else "") + f": {self.message}"


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
        lines.append(f"{self.rows} row(s) scored in {self.seconds:.1f} s"
                     + (f", {len(self.problems)} malformed row(s) left out" if self.problems else "")
                     + (f" -> {self.output}" if self.output else ""))
        return "\n".join(lines)


def read_rows(path: str | Path) -> tuple[list[tuple[int, dict]], list[RowProblem]]:
    """Read and check the input file. Returns ``(good rows with their line numbers, problems)``."""
    good: list[tuple[int, dict]] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for lineno, row in iter_json_lines(path):
        if isinstance(row, str):
            problems.append(RowProblem(lineno, None, row))
            continue
        rid = row.get("id")
        msg = _check_row(row)
        if msg is None and str(rid) in seen:
            msg = f"duplicate id (first on line {seen[str(rid)]})"
        if msg is not None:
            problems.append(RowProblem(lineno, None if rid is None else str(rid), msg))
            continue
        seen[str(rid)] = lineno
        good.append((lineno, row))
    return good, problems


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


def _write_rows(out: Path, good: list[tuple[int, dict]], scored: list[dict]) -> None:
    """Write input rows plus their rewards, atomically (a killed run leaves no half-written file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for (_, row), rewards in zip(good, scored):
            record = dict(row)
            det = rewards.pop("details", None)
            record["rewards"] = rewards
            if det is not None:
                record["reward_details"] = det
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, out)


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
                      details: bool = False) -> ScoreReport:
    """Score ``input_path`` into ``output_path`` (written atomically, in input order)."""
    t0 = time.perf_counter()
    good, problems = await asyncio.to_thread(read_rows, input_path)
    if on_total:
        on_total(len(good))
    rows = [_reward_columns(r) for _, r in good]
    scored = await suite.ascore_rows(rows, progress=progress, details=details) if rows else []
    out = Path(output_path)
    await asyncio.to_thread(_write_rows, out, good, scored)

    report = ScoreReport(rows=len(scored), problems=problems, seconds=time.perf_counter() - t0, output=str(out))
    for c in (*COMPONENTS, "total"):
        vals = [r[c] for r in scored if r.get(c) is not None]
        report.counts[c] = len(vals)
        report.nones[c] = len(scored) - len(vals)
        report.means[c] = sum(vals) / len(vals) if vals else None
    report.judge = suite.stats.judge.as_dict()
    report.shortcuts = dict(suite.stats.shortcuts)
    return report
