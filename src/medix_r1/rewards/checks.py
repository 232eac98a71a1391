"""Per-completion preparation shared by all reward components, in the two modes.

:func:`prepare` turns (completion, reference row, mode) into a :class:`Prepared` record: the parsed completion,
the answer and reference as compared, and - when the accuracy can be decided without any model - a
``shortcut`` score with its reason. Both accuracy components honour the shortcut, so they always agree on
these cases, and the judge is not called for them.

``paper`` mode (the release, reference.md §3): whitespace around ``<``, ``>``, ``/`` removed from the
completion; the answer is the first ``<answer>`` block (or the whole completion), stripped of spaces and
full stops; an answer that is empty, one character long, or contains ``__``, ``:`` or ``?`` scores 0
(``invalid``); an answer equal to the reference scores 1 (``exact``).

``default`` mode: no whitespace squeezing (it joins "a / b"); the answer is the parser's ``final_answer``
(the answer block, else the text after the reasoning, never the reasoning itself); only an answer with no
letters or digits is ``invalid``; ``exact`` ignores case, inner spacing and edge punctuation; closed
questions (reference yes/no) are decided by the answer's leading yes/no (``closed``), and an answer on the
other side from the reference (left vs right) scores 0 (``laterality``) - embedding models cannot see either
difference (offline.md: left/right pleural effusion 0.99, yes/no 0.73 with all-MiniLM-L6-v2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medix_r1.prompts import ParsedCompletion, clean_answer, parse_completion, squeeze_tag_whitespace
from medix_r1.rewards.inputs import RowReference

_CLOSED = {"yes": "yes", "no": "no"}
_POLARITY = re.compile(r"^[\W_]*(yes|no)(?![A-Za-z0-9])", re.IGNORECASE)
_SIDE = re.compile(r"\b(left|right|bilateral(?:ly)?|both\s+sides|both\s+(?:lungs|kidneys|eyes|breasts|"
                   r"ovaries|lobes|hemispheres|sides))\b", re.IGNORECASE)
_HAS_WORD = re.compile(r"[A-Za-z0-9]")


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
    shortcut: float | None = None
    """Accuracy decided without a model (both accuracy components use it)."""
    shortcut_reason: str | None = None
    """``invalid`` | ``exact`` | ``closed`` | ``laterality``."""
    embed_blind: bool = False
    """Default mode, closed question with no leading yes/no: the embedding cannot score it (it scores 0)."""


def normalize_for_match(text: str) -> str:
    """Case-folded, single-spaced, without edge punctuation (default-mode exact match)."""
    text = re.sub(r"\s+", " ", text or "").strip().casefold()
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


def closed_polarity(text: str) -> str | None:
    """``"yes"``/``"no"`` when the answer starts with that word and never uses the other one, else ``None``
    (a hedge such as "Yes or no" or "Yes, but no fracture" goes to the judge).

    >>> closed_polarity("Yes, a fracture."), closed_polarity("No."), closed_polarity("Not seen")
    ('yes', 'no', None)
    >>> closed_polarity("Yes/No") is None
    True
    """
    m = _POLARITY.match(text or "")
    if not m:
        return None
    lead = m.group(1).lower()
    other = "no" if lead == "yes" else "yes"
    if re.search(rf"(?<![A-Za-z0-9]){other}(?![A-Za-z0-9])", text, re.IGNORECASE):
        return None
    return lead


def sides(text: str) -> frozenset[str]:
    """The body sides a text names: ``{"left"}``, ``{"right"}``, both (also for "bilateral"), or none."""
    found: set[str] = set()
    for m in _SIDE.finditer(text or ""):
        w = m.group(1).lower()
        if w in ("left", "right"):
            found.add(w)
        else:
            found.update(("left", "right"))
    return frozenset(found)


def laterality_conflict(answer: str, reference: str) -> bool:
    """True when both name a side and the answer names none of the reference's sides.

    >>> laterality_conflict("right lower lobe", "Left lower lobe"), laterality_conflict("left", "Left lung")
    (True, False)
    """
    a, r = sides(answer), sides(reference)
    return bool(a) and bool(r) and not (a & r)


def paper_invalid(answer: str) -> bool:
    """The release's invalid-answer guard (zeroes single-letter MCQ answers too: kept for fidelity)."""
    return len(answer) <= 1 or "__" in answer or ":" in answer or "?" in answer


def prepare(completion: str, ref: RowReference, mode: str) -> Prepared:
    """Parse and pre-process one completion against its reference (see the module docstring)."""
    if mode == "paper":
        text = squeeze_tag_whitespace(completion)
        parsed = parse_completion(text)
        answer = clean_answer(parsed.answer if parsed.answer is not None else text)
        reference = clean_answer(ref.answer) if ref.answer is not None else None
        base = {"text": text, "parsed": parsed, "answer": answer, "reference": reference, "ref_tag": ref.tag,
                "question": None}
        if reference is None:
            return Prepared(**base)
        if paper_invalid(answer):
            return Prepared(**base, shortcut=0.0, shortcut_reason="invalid")
        if answer == reference:
            return Prepared(**base, shortcut=1.0, shortcut_reason="exact")
        return Prepared(**base)

    parsed = parse_completion(completion)
    answer = clean_answer(parsed.final_answer)
    reference = clean_answer(ref.answer) if ref.answer is not None else None
    base = {"text": completion, "parsed": parsed, "answer": answer, "reference": reference, "ref_tag": ref.tag,
            "question": ref.question}
    if reference is None:
        return Prepared(**base)
    if not _HAS_WORD.search(answer):
        return Prepared(**base, shortcut=0.0, shortcut_reason="invalid")
    if normalize_for_match(answer) == normalize_for_match(reference):
        return Prepared(**base, shortcut=1.0, shortcut_reason="exact")
    ref_closed = _CLOSED.get(normalize_for_match(reference))
    if ref_closed is not None:
        pol = closed_polarity(answer)
        if pol is not None:
            return Prepared(**base, shortcut=1.0 if pol == ref_closed else 0.0, shortcut_reason="closed")
        return Prepared(**base, embed_blind=True)
    if laterality_conflict(answer, reference):
        return Prepared(**base, shortcut=0.0, shortcut_reason="laterality")
    return Prepared(**base)


def format_score(p: Prepared) -> float:
    """1.0 when the completion is ``<thinking>...</thinking>`` then ``<answer>...</answer>`` and nothing after."""
    return 1.0 if p.parsed.well_formed else 0.0


def modality_score(p: Prepared, mode: str) -> float | None:
    """1.0 when the text before the reasoning is the reference's tag; ``None`` for text-only rows."""
    if p.ref_tag is None:
        return None
    if mode == "paper":
        # The release upper-cases everything before the first <thinking>; with no <thinking> that is the
        # whole (squeezed) completion.
        prefix = p.parsed.prefix if p.parsed.think_tag else p.text
        return 1.0 if prefix.upper() == p.ref_tag.upper() else 0.0
    return 1.0 if p.parsed.modality is not None and p.parsed.modality == p.ref_tag.upper() else 0.0
