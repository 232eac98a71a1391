"""Per-completion preparation shared by all reward components, in the two modes.

:func:`prepare` turns (completion, reference row, mode) into a :class:`Prepared` record: the parsed completion,
the answer and reference as compared, the injection guard's decision, and the rule decision of
:mod:`medix_r1.grading` (a score decided without any model, with its reason). Every component reads this one
record, so the guard runs once per completion and both accuracy components honour the same decisions.

``paper`` mode (the release): the parser's paper flavour (whitespace around ``<``, ``>``, ``/`` removed;
case-sensitive ``<answer>``; only a lower-case ``<thinking>``); answer and reference stripped once,
whitespace then full stops (:func:`medix_r1.grading.paper_clean`); :func:`medix_r1.grading.decide_paper`.

``default`` mode: the parser's ``final_answer`` (never the reasoning); :func:`medix_r1.grading.decide` (exact
match ignoring case and edge punctuation, closed yes/no polarity, laterality, MCQ options when the row has
them).

In both modes a flagged answer (guard on) scores 0 on both accuracy components, with the reason
``injection``; an exact match is never checked (it is the reference's own text).
"""

from __future__ import annotations

from dataclasses import dataclass

from medix_r1 import grading
from medix_r1.prompts import ParsedCompletion, parse_completion
from medix_r1.rewards.inputs import RowReference

# The judge sees at most this much of an answer; the guard checks the same text.
GUARD_CHARS = 1500


@dataclass(frozen=True)
class Prepared:
    """One completion ready for scoring."""

    text: str
    """The completion as scored (squeezed in paper mode)."""
    parsed: ParsedCompletion
    answer: str
    """The answer as compared and judged."""
    reference: str | None
    """The reference answer as compared (``None``: the row has none; accuracy is then ``None``)."""
    ref_tag: str | None
    question: str | None
    decision: grading.RuleDecision = grading.JUDGE
    guard: grading.GuardDecision = grading.NOT_CHECKED

    @property
    def shortcut(self) -> float | None:
        """Accuracy decided without a model (both accuracy components use it)."""
        return 0.0 if self.guard.flagged else self.decision.score

    @property
    def shortcut_reason(self) -> str | None:
        """``injection`` | ``invalid`` | ``exact`` | ``closed`` | ``laterality`` | ``option ...`` | None."""
        if self.guard.flagged:
            return "injection"
        return self.decision.reason if self.decision.decided else None

    @property
    def embed_blind(self) -> bool:
        """A closed question with no leading yes/no: the embedding cannot score it (it scores 0)."""
        return self.decision.embed_blind


def prepare(completion: str, ref: RowReference, mode: str, guard=True) -> Prepared:
    """Parse, decide and guard one completion against its reference (see the module docstring).

    ``guard``: ``True`` (default detector), ``False`` (off), or an :class:`~medix_r1.judge.guard.InjectionGuard`.
    """
    if mode == "paper":
        parsed = parse_completion(completion, flavour="paper")
        answer = grading.paper_clean(parsed.final_answer)
        reference = grading.paper_clean(ref.answer) if ref.answer is not None else None
        decision = grading.decide_paper(reference, answer)
        question = None
    else:
        parsed = parse_completion(completion)
        answer = grading.clean(parsed.final_answer)
        reference = grading.clean(ref.answer) if ref.answer is not None else None
        decision = grading.decide(reference, answer, question=ref.question, options=ref.options,
                                  correct_letter=ref.answer_letter, kind=ref.answer_type)
        question = ref.question
    checked = grading.NOT_CHECKED
    if reference is not None and decision.reason != "exact":
        checked = grading.guard_decision(answer, guard, max_chars=GUARD_CHARS)
    return Prepared(text=parsed.text, parsed=parsed, answer=answer, reference=reference, ref_tag=ref.tag,
                    question=question, decision=decision, guard=checked)


def format_score(p: Prepared) -> float:
    """1.0 when the completion is well formed in its mode's reading (see :mod:`medix_r1.prompts.parser`)."""
    return 1.0 if p.parsed.well_formed else 0.0


def modality_score(p: Prepared, mode: str) -> float | None:
    """1.0 when the text before the reasoning is the reference's tag; ``None`` for text-only rows."""
    if p.ref_tag is None:
        return None
    if mode == "paper":
        # The release upper-cases everything before the first <thinking> and compares it with the tag; with
        # no <thinking> it scores 0.
        return 1.0 if p.parsed.modality is not None and p.parsed.modality == p.ref_tag else 0.0
    return 1.0 if p.parsed.modality is not None and p.parsed.modality == p.ref_tag.upper() else 0.0
