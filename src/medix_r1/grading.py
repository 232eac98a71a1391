"""The ONE grading module: every decision about an answer that needs no model, shared by rewards and eval.

Rewards (:mod:`medix_r1.rewards.checks`) and evaluation's rule layer call the same functions here, so a
(question, reference, answer[, options]) row gets the same decision in training and in a benchmark.

API
===

Decisions are :class:`RuleDecision` values: ``score`` is 1.0 or 0.0 when the rule decides, ``None`` when the
judge must decide; ``reason`` says which rule spoke (or why none could)::

    from medix_r1 import grading

    d = grading.decide("Pleural effusions", "Pleural effusion",
                       options={"A": "Pleural effusion", "B": "Pneumothorax"})
    d.score, d.reason            # (None, 'correct option unknown'): the judge decides, never a 0
    grading.decide("Yes", "No, the heart is normal").score           # 0.0 (closed question, other side)
    grading.decide_paper("Liver", "Liver")                            # RuleDecision(1.0, 'exact')

- :func:`decide` (default rules; rewards' default mode and eval): ``invalid`` (no letter or digit) -> 0,
  ``exact`` (after :func:`normalize`) -> 1; with ``options``: ``option letter`` / ``option text`` /
  ``option letter and text`` when the chosen option and the correct one are both known; ``correct option
  unknown`` (None) when the answer picks an option but the correct letter cannot be resolved; otherwise
  ``closed`` (the reference is yes/no and the answer's leading yes/no decides), ``laterality`` (the answer
  names only the other body side) -> 0; else ``judge`` (None). ``kind="report"`` applies only ``invalid``.
  ``RuleDecision.embed_blind`` marks a closed question without a leading yes/no: embeddings cannot score it.
- :func:`decide_paper`: the release's rules on already-cleaned strings: ``invalid`` (empty, one character,
  ``__``, ``:`` or ``?``) -> 0, ``exact`` (case-sensitive ``==``) -> 1, else ``judge``.
- Building blocks: :func:`normalize`, :func:`exact_match`, :func:`clean`, :func:`paper_clean`,
  :func:`closed_reference`, :func:`closed_polarity`, :func:`sides`, :func:`laterality_conflict`,
  :func:`resolve_correct_letter`, :func:`chosen_option`.

The injection guard decision
----------------------------

:func:`guard_decision` runs the detector (:mod:`medix_r1.judge.guard`) once and returns a
:class:`GuardDecision`. What a flag does is a policy (:data:`GUARD_POLICIES`):

- ``"score"`` (the reward's policy): a flagged answer scores 0 on every accuracy component;
- ``"report"`` (eval's default): the flag is recorded and reported, the score is left as it is, because the
  policy under evaluation may never have been trained against this judge and a false positive would
  silently change a benchmark number.

:func:`apply_guard` applies a policy to a score: ``apply_guard(1.0, g, "report") == 1.0``;
``apply_guard(1.0, g, "score") == 0.0`` when ``g.flagged``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

GUARD_POLICIES = ("score", "report")


@dataclass(frozen=True)
class RuleDecision:
    """A grade decided without a model (``score`` 1.0 / 0.0), or ``score=None``: the judge decides."""

    score: float | None
    reason: str
    embed_blind: bool = False
    """True for a closed (yes/no) question whose answer has no leading yes/no: an embedding cannot tell
    yes from no (all-MiniLM-L6-v2: cos("yes", "no") = 0.73), so it should not be paid by one."""

    @property
    def decided(self) -> bool:
        return self.score is not None


JUDGE = RuleDecision(None, "judge")

# --------------------------------------------------------------------------------------------- normalisation
_PUNCT_EDGES = re.compile(r"^[\s\"'`*_()\[\]{}.,;:!?-]+|[\s\"'`*_()\[\]{}.,;:!?-]+$")
_HAS_WORD = re.compile(r"[^\W_]")


def clean(text: str | None) -> str:
    """Strip whitespace and leading/trailing full stops (default mode's answer as judged).

    >>> clean("  The left lung. ")
    'The left lung'
    """
    return (text or "").strip().strip(".").strip()


def paper_clean(text: str | None) -> str:
    """The release's stripping, once and in this order: whitespace, then full stops.

    >>> paper_clean("hemorrhage ."), paper_clean(". a")
    ('hemorrhage ', ' a')
    """
    return (text or "").strip().strip(".")


def normalize(text: str | None) -> str:
    """Lower-case, single spaces, edge punctuation and markup (``**``, quotes, brackets) removed.

    For comparisons only; the judge always sees the answer as written.

    >>> normalize("  **Left  Lung.** "), normalize("(B)")
    ('left lung', 'b')
    """
    text = re.sub(r"\s+", " ", text or "").strip().casefold()
    prev = None
    while prev != text:
        prev, text = text, _PUNCT_EDGES.sub("", text)
    return text


def has_content(text: str | None) -> bool:
    """True when the text has at least one letter or digit."""
    return bool(_HAS_WORD.search(text or ""))


def exact_match(answer: str | None, reference: str | None) -> bool:
    """Equal after :func:`normalize`, and not empty.

    >>> exact_match("liver.", "Liver"), exact_match("", "")
    (True, False)
    """
    a = normalize(answer)
    return bool(a) and a == normalize(reference)


# --------------------------------------------------------------------------------------------- closed questions
_POLARITY = re.compile(r"^[\W_]*(yes|no)(?![^\W_])", re.IGNORECASE)


def closed_reference(reference: str | None) -> str | None:
    """``"yes"`` / ``"no"`` when the reference is exactly that word (any case, edge punctuation), else ``None``."""
    r = normalize(reference)
    return r if r in ("yes", "no") else None


def closed_polarity(text: str | None) -> str | None:
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
    if re.search(rf"(?<![^\W_]){other}(?![^\W_])", text, re.IGNORECASE):
        return None
    return lead


# --------------------------------------------------------------------------------------------- laterality
_SIDE = re.compile(r"\b(left|right|bilateral(?:ly)?|both\s+sides|both\s+(?:lungs|kidneys|eyes|breasts|"
                   r"ovaries|lobes|hemispheres|sides))\b", re.IGNORECASE)


def sides(text: str | None) -> frozenset[str]:
    """The body sides a text names: ``{"left"}``, ``{"right"}``, both (also for "bilateral"), or none."""
    found: set[str] = set()
    for m in _SIDE.finditer(text or ""):
        w = m.group(1).lower()
        if w in ("left", "right"):
            found.add(w)
        else:
            found.update(("left", "right"))
    return frozenset(found)


def laterality_conflict(answer: str | None, reference: str | None) -> bool:
    """True when both name a side and the answer names none of the reference's sides.

    >>> laterality_conflict("right lower lobe", "Left lower lobe"), laterality_conflict("left", "Left lung")
    (True, False)
    """
    a, r = sides(answer), sides(reference)
    return bool(a) and bool(r) and not (a & r)


# --------------------------------------------------------------------------------------------- MCQ
_LETTER_ONLY = re.compile(r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is|:)?\s*)?"
                          r"\(?([a-z])\)?[.):]?$", re.IGNORECASE)
_LETTER_AND_TEXT = re.compile(r"^\(?([A-Za-z])\s*[.):]\s+(.+)$", re.DOTALL)


def _options(options: Mapping[str, str]) -> dict[str, str]:
    return {str(k).strip().upper(): normalize(str(v)) for k, v in options.items()}


def resolve_correct_letter(options: Mapping[str, str], correct_letter: str | None,
                           reference: str | None) -> str | None:
    """The correct option's letter: the given one when it is an option, else the one option whose text is
    the reference (or whose letter the reference is, e.g. "B" or "(B)"), else ``None``."""
    opts = _options(options)
    if correct_letter and correct_letter.strip().upper() in opts:
        return correct_letter.strip().upper()
    ref = normalize(reference)
    by_text = [k for k, v in opts.items() if v == ref]
    if len(by_text) == 1:
        return by_text[0]
    m = _LETTER_ONLY.match(ref)
    if m and m.group(1).upper() in opts:
        return m.group(1).upper()
    return None


def chosen_option(answer: str | None, options: Mapping[str, str]) -> tuple[str, str] | None:
    """``(letter, how)`` when the answer is exactly an option's letter, its text, or "letter) text"; else
    ``None`` (a sentence, a paraphrase)."""
    opts = _options(options)
    norm = normalize(answer)
    m = _LETTER_ONLY.match(norm)
    if m and m.group(1).upper() in opts:
        return m.group(1).upper(), "option letter"
    by_text = [k for k, v in opts.items() if v == norm]
    if len(by_text) == 1:
        return by_text[0], "option text"
    m = _LETTER_AND_TEXT.match((answer or "").strip().strip("*").strip())
    if m and m.group(1).upper() in opts and normalize(m.group(2)) == opts[m.group(1).upper()]:
        return m.group(1).upper(), "option letter and text"
    return None


def decide_mcq(answer: str | None, options: Mapping[str, str], correct_letter: str | None,
               reference: str | None) -> RuleDecision:
    """Decide a multiple-choice answer by option letter or text; ``score=None`` when the judge must decide.

    An answer that picks an option scores 1 or 0 only when the correct option is known. When it cannot be
    resolved (the reference "Pleural effusions" is not any option's text), the judge decides: never a 0.

    >>> opts = {"A": "Liver", "B": "Spleen"}
    >>> decide_mcq("B", opts, "B", "Spleen").score, decide_mcq("(a) Liver", opts, "B", "Spleen").score
    (1.0, 0.0)
    >>> decide_mcq("It is the spleen", opts, "B", "Spleen").score is None
    True
    """
    if not has_content(answer):
        return RuleDecision(0.0, "invalid")
    if exact_match(answer, reference):
        return RuleDecision(1.0, "exact")
    chosen = chosen_option(answer, options)
    if chosen is None:
        return JUDGE
    correct = resolve_correct_letter(options, correct_letter, reference)
    if correct is None:
        return RuleDecision(None, "correct option unknown")
    letter, how = chosen
    return RuleDecision(1.0 if letter == correct else 0.0, how)


# --------------------------------------------------------------------------------------------- decisions
def decide(reference: str | None, answer: str | None, *, question: str | None = None,
           options: Mapping[str, str] | None = None, correct_letter: str | None = None,
           kind: str | None = None) -> RuleDecision:
    """The default rules for one (question, reference, answer[, options]) row; see the module docstring.

    ``question`` is accepted so every caller passes the same row; no rule reads it today. ``kind`` is the
    answer type: ``"report"`` (long free text, graded on a rubric) applies only the ``invalid`` rule.

    >>> decide("Yes", "Yes, a fracture is seen.").reason, decide("Left", "right side").score
    ('closed', 0.0)
    >>> decide("Liver", "hepatic parenchyma")
    RuleDecision(score=None, reason='judge', embed_blind=False)
    """
    if reference is None:
        return RuleDecision(None, "no reference")
    if not has_content(answer):
        return RuleDecision(0.0, "invalid")
    if kind == "report":
        return JUDGE
    if options:
        return decide_mcq(answer, options, correct_letter, reference)
    if exact_match(answer, reference):
        return RuleDecision(1.0, "exact")
    ref_closed = closed_reference(reference)
    if ref_closed is not None:
        pol = closed_polarity(answer)
        if pol is not None:
            return RuleDecision(1.0 if pol == ref_closed else 0.0, "closed")
        return RuleDecision(None, "judge", embed_blind=True)
    if laterality_conflict(answer, reference):
        return RuleDecision(0.0, "laterality")
    return JUDGE


def paper_invalid(answer: str) -> bool:
    """The release's invalid-answer rule (it zeroes single-letter MCQ answers too: kept for fidelity)."""
    return len(answer) <= 1 or "__" in answer or ":" in answer or "?" in answer


def decide_paper(reference: str | None, answer: str) -> RuleDecision:
    """The release's rules, on strings already cleaned by :func:`paper_clean`.

    >>> decide_paper("Liver", "Liver").reason, decide_paper("Liver", "T2: bright").reason
    ('exact', 'invalid')
    >>> decide_paper("hemorrhage", "hemorrhage ").score is None
    True
    """
    if reference is None:
        return RuleDecision(None, "no reference")
    if paper_invalid(answer):
        return RuleDecision(0.0, "invalid")
    if answer == reference:
        return RuleDecision(1.0, "exact")
    return JUDGE


# --------------------------------------------------------------------------------------------- the guard
@dataclass(frozen=True)
class GuardDecision:
    """The injection guard's decision on one answer, made once and honoured by every component."""

    flagged: bool
    reasons: tuple[str, ...] = field(default=())
    checked: bool = True
    """False when the guard was off (``flagged`` is then False)."""

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


NOT_CHECKED = GuardDecision(False, (), checked=False)


def guard_decision(answer: str | None, guard=True, *, max_chars: int | None = None) -> GuardDecision:
    """Run the injection guard once on ``answer``.

    ``guard``: ``True`` (the default detector), ``False``/``None`` (off: :data:`NOT_CHECKED`), or an
    :class:`~medix_r1.judge.guard.InjectionGuard`. ``max_chars``: check only what the judge would see.
    """
    if guard is False or guard is None:
        return NOT_CHECKED
    from medix_r1.judge.guard import InjectionGuard, detect_injection

    text = (answer or "")[:max_chars] if max_chars else (answer or "")
    finding = guard.check(text) if isinstance(guard, InjectionGuard) else detect_injection(text)
    return GuardDecision(finding.flagged, tuple(finding.reasons))


def apply_guard(score: float | None, decision: GuardDecision, policy: str = "score") -> float | None:
    """The score after the guard's policy: ``"score"`` zeroes a flagged answer, ``"report"`` leaves it.

    >>> g = GuardDecision(True, ("reply directive",))
    >>> apply_guard(1.0, g, "score"), apply_guard(1.0, g, "report"), apply_guard(None, g, "score")
    (0.0, 1.0, 0.0)
    """
    if policy not in GUARD_POLICIES:
        raise ValueError(f"guard policy must be one of {', '.join(GUARD_POLICIES)}, got {policy!r}")
    if decision.flagged and policy == "score":
        return 0.0
    return score


__all__ = [
    "GUARD_POLICIES",
    "JUDGE",
    "NOT_CHECKED",
    "GuardDecision",
    "RuleDecision",
    "apply_guard",
    "chosen_option",
    "clean",
    "closed_polarity",
    "closed_reference",
    "decide",
    "decide_mcq",
    "decide_paper",
    "exact_match",
    "guard_decision",
    "has_content",
    "laterality_conflict",
    "normalize",
    "paper_clean",
    "paper_invalid",
    "resolve_correct_letter",
    "sides",
]
