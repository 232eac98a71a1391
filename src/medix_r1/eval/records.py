"""The typed records of an eval run: one :class:`GenerationRecord` and one :class:`JudgementRecord` per sample
(a line each in ``generations.jsonl`` / ``judgements.jsonl``), and the :class:`PhaseSummary` of a phase.

Records are written as JSON objects without their empty (``None``) fields and read back tolerantly: a field
a newer version added is ignored by an older reader, a missing one is ``None``.

A generation record carries everything the judge and the scorer need (question, reference, options, answer
type, modality), so ``judge`` and ``score`` run without the task data. Its ``sample_hash`` (task version,
question, reference and options) is what resume compares: a finished sample whose hash no longer matches
the task's data is stale and is generated and judged again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

T = TypeVar("T", bound="_Record")

# generation: ok; bad_input (empty question, missing or undecodable image: final); error (retried next run)
FINAL_GEN = frozenset({"ok", "bad_input"})
# judgement: exact (rule), ok (judged), injection (the guard scored it 0: only with --guard zero),
# unparseable (no verdict in the judge's replies): final; timeout / error: retried on the next run
FINAL_JUDGE = frozenset({"exact", "ok", "injection", "unparseable"})


class _Record:
    _always: ClassVar[tuple[str, ...]] = ()
    """Fields written even when ``None`` (a missing score reads as "no verdict", explicitly)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items()  # type: ignore[call-overload]
                if v is not None or k in self._always}

    @property
    def key(self) -> tuple[str, str]:
        return self.task, self.id  # type: ignore[attr-defined]


@dataclass
class GenerationRecord(_Record):
    task: str
    id: str
    status: str
    model: str | None = None
    prompt_version: str | None = None
    task_version: str | None = None
    sample_hash: str | None = None
    error: str | None = None
    field: str | None = None
    prediction: str | None = None
    final_answer: str | None = None
    judge_input: str | None = None
    """What the judge sees (paper protocol: the text after the last ``</think>``; else the final answer)."""
    well_formed: bool | None = None
    pred_modality: str | None = None
    latency_s: float | None = None
    question: str | None = None
    reference: str | None = None
    options: dict[str, str] | None = None
    answer_letter: str | None = None
    answer_type: str | None = None
    modality: str | None = None
    has_image: bool | None = None
    kind: str | None = None
    scorer: str | None = None

    @property
    def signature(self) -> str:
        """What a judgement depends on from this record; a changed generation gets judged again."""
        payload = json.dumps([self.judge_input if self.judge_input is not None else self.final_answer,
                              self.reference, self.question, self.scorer], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass
class JudgementRecord(_Record):
    _always: ClassVar[tuple[str, ...]] = ("score",)

    task: str
    id: str
    status: str
    gen_sig: str | None = None
    scorer: str | None = None
    score: float | None = None
    method: str | None = None
    """``rule`` (decided without the judge), ``judge`` or ``guard`` (scored 0 by the injection guard)."""
    reason: str | None = None
    raw: str | None = None
    votes: list[float | None] | None = None
    error: str | None = None
    cached: bool | None = None
    judge_model: str | None = None
    judge_prompt: str | None = None
    latency_s: float | None = None
    flagged: str | None = None
    """Why the injection guard flagged the answer (reported; the score changes only with ``--guard zero``)."""


def sample_hash(task_version: str, question: str, reference: str, options: dict | None) -> str:
    """The content a finished sample was made from: its task's version, question, reference and options."""
    payload = json.dumps([str(task_version), question, reference, options], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass
class PhaseSummary:
    """What one phase invocation did (for logs, the CLI and the benchmark)."""

    phase: str
    total: int = 0
    already_done: int = 0
    done: int = 0
    failed: int = 0
    stale: int = 0
    """Finished samples done again because their task version, question, reference or options changed."""
    by_status: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    requests: int = 0

    def add(self, status: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self) -> str:
        text = (f"{self.phase}: {self.done} new, {self.already_done} already done, {self.failed} failed of "
                f"{self.total} ({self.seconds:.1f} s)")
        if self.stale:
            text += (f"; {self.stale} changed sample(s) done again (task version, question, reference or "
                     "options changed since they were finished)")
        return text


__all__ = ["FINAL_GEN", "FINAL_JUDGE", "GenerationRecord", "JudgementRecord", "PhaseSummary", "sample_hash"]
