r"""The ONE completion parser of medix-r1.

Rewards, the judge and evaluation all call :func:`parse_completion`; nothing else in the package parses
completions, so training and evaluation share one definition of "the answer" and "well formed".

Expected shape (the MediX-R1 output format)::

    <CT_SCAN><thinking> ... reasoning ... </thinking><answer> final answer </answer>

The parser is tolerant where tolerance is harmless and strict where a reward depends on it:

- ``<think>`` is accepted as well as ``<thinking>``; whitespace and case inside the angle brackets are ignored
  (``< / Thinking >`` closes a block);
- *well formed* means: no block tag in the prefix; after it, exactly one reasoning block, then only
  whitespace, then exactly one answer block, then only whitespace. Every other shape is malformed, and
  ``reason`` says why. (Stricter than the reference's format check, which ignores the prefix: there an
  answer block placed before ``<thinking>`` is both "well formed" and the answer that gets judged.);
- the answer is the content of the first ``<answer>`` block even when the completion is malformed, so a
  reward can still judge content while the format reward is 0;
- it scans tags once with a linear regex, so 100 KB completions parse in well under a millisecond per KB.

The ``paper`` flavour (``parse_completion(text, flavour="paper")``) reads a completion exactly as the
MediX-R1 release does, for the paper-mode reward:

- whitespace around ``<``, ``>`` and ``/`` is removed first (``text`` is the squeezed completion);
- the answer is the first case-sensitive ``<answer>...</answer>`` (``<ANSWER>`` is not an answer tag), and
  :attr:`ParsedCompletion.final_answer` is the whole squeezed completion when there is none;
- only a lower-case ``<thinking>`` opens the reasoning: ``<think>`` and ``<THINKING>`` do not;
- well formed: from the first ``<thinking>`` to the end, the text is ``<thinking>.*?</thinking>\s*
  <answer>.*?</answer>`` as a whole (so a second answer block or a stray ``</answer>`` at the end still
  passes, as in the release); no ``<thinking>``: not well formed;
- ``modality`` is everything before the first ``<thinking>``, upper-cased (``None`` when there is no
  ``<thinking>``): the reward compares it with the reference's tag as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medix_r1.modalities import normalize_tag

# One token per block tag: group 1 is "/" for a closing tag, group 2 the tag name.
_TAG_TOKEN = re.compile(r"<\s*(/?)\s*(thinking|think|answer)\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCompletion:
    """What a completion says, as fields. Built by :func:`parse_completion` only."""

    text: str
    """The completion as given."""
    prefix: str
    """Everything before the first reasoning tag (or before the first answer tag when there is no reasoning)."""
    modality: str | None
    """The canonical ``<TAG>`` when the prefix is exactly one of the 16 modality tags, else ``None``."""
    reasoning: str | None
    """Content of the first reasoning block, stripped; ``None`` when there is none (or it is never closed)."""
    answer: str | None
    """Content of the first ``<answer>`` block, stripped; ``None`` when there is no complete answer block."""
    well_formed: bool
    """True when the text after the prefix is exactly one reasoning block then one answer block."""
    reason: str | None
    """Why ``well_formed`` is False (``None`` when it is True)."""
    think_tag: str | None
    """``"thinking"`` or ``"think"``: the spelling the completion used."""
    flavour: str = "medix"
    """``"medix"`` (this project's reading) or ``"paper"`` (the release's, see the module docstring)."""

    @property
    def final_answer(self) -> str:
        """The best available final answer, for judging and evaluation.

        The answer block when there is one; else the text after the last closing reasoning tag (what the
        reference eval kit does with free-form model output); else the whole completion. Stripped.
        """
        if self.answer is not None:
            return self.answer
        if self.flavour == "paper":
            return self.text
        last_close = None
        for m in _TAG_TOKEN.finditer(self.text):
            if m.group(1) and m.group(2).lower() in ("thinking", "think"):
                last_close = m
        if last_close is not None:
            return self.text[last_close.end():].strip()
        return self.text.strip()


FLAVOURS = ("medix", "paper")


def parse_completion(text: str | None, flavour: str = "medix") -> ParsedCompletion:
    """Parse a completion into modality tag, reasoning, answer and a well-formed flag.

    ``flavour="paper"`` reads it as the release does (module docstring); the default is this project's
    reading.

    >>> p = parse_completion("<CT_SCAN><thinking>dense lesion</thinking><answer>Liver</answer>")
    >>> (p.modality, p.reasoning, p.answer, p.well_formed)
    ('<CT_SCAN>', 'dense lesion', 'Liver', True)
    >>> parse_completion("<answer>Liver</answer>").reason
    'no <thinking> block'
    """
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise TypeError(f"completion must be a string, got {type(text).__name__}")
    if flavour == "paper":
        return _parse_paper(text)
    if flavour != "medix":
        raise ValueError(f"parser flavour must be one of {', '.join(FLAVOURS)}, got {flavour!r}")

    tokens = [
        (m.start(), m.end(), m.group(1) == "/", "answer" if m.group(2).lower() == "answer" else "think",
         m.group(2).lower())
        for m in _TAG_TOKEN.finditer(text)
    ]

    first_think = next((t for t in tokens if t[3] == "think" and not t[2]), None)
    first_any_open = next((t for t in tokens if not t[2]), None)
    anchor = first_think or first_any_open
    prefix = text[: anchor[0]] if anchor else text
    modality = normalize_tag(prefix) if prefix.strip() else None

    reasoning = None
    think_tag = first_think[4] if first_think else None
    if first_think is not None:
        close = next((t for t in tokens if t[0] > first_think[0] and t[3] == "think" and t[2]), None)
        if close is not None:
            reasoning = text[first_think[1]: close[0]].strip()

    answer = None
    first_answer = next((t for t in tokens if t[3] == "answer" and not t[2]), None)
    if first_answer is not None:
        close = next((t for t in tokens if t[0] > first_answer[0] and t[3] == "answer" and t[2]), None)
        if close is not None:
            answer = text[first_answer[1]: close[0]].strip()

    reason = _malformation(text, tokens, first_think)
    return ParsedCompletion(
        text=text,
        prefix=prefix,
        modality=modality,
        reasoning=reasoning,
        answer=answer,
        well_formed=reason is None,
        reason=reason,
        think_tag=think_tag,
    )


_PAPER_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PAPER_BODY = re.compile(r"<thinking>.*?</thinking>\s*<answer>.*?</answer>", re.DOTALL)
_PAPER_THINKING = re.compile(r"<thinking>(.*?)</thinking>", re.DOTALL)


def _parse_paper(completion: str) -> ParsedCompletion:
    text = squeeze_tag_whitespace(completion)
    m = _PAPER_ANSWER.search(text)
    start = text.find("<thinking>")
    if start < 0:
        prefix, modality, reasoning, well_formed = text, None, None, False
        reason = "empty completion" if not text.strip() else "no <thinking> block"
    else:
        prefix = text[:start]
        modality = prefix.upper()
        t = _PAPER_THINKING.match(text, start)
        reasoning = t.group(1) if t else None
        well_formed = _PAPER_BODY.fullmatch(text, start) is not None
        reason = None if well_formed else "the text from <thinking> on is not <thinking>..</thinking><answer>..</answer>"
    return ParsedCompletion(text=text, prefix=prefix, modality=modality, reasoning=reasoning,
                            answer=m.group(1) if m else None, well_formed=well_formed, reason=reason,
                            think_tag="thinking" if start >= 0 else None, flavour="paper")


def _malformation(text: str, tokens: list, first_think) -> str | None:
    """Return why the structure after the prefix is not ``<thinking>..</thinking> <answer>..</answer>``."""
    if not text.strip():
        return "empty completion"
    if first_think is None:
        return "no <thinking> block"
    stray = next((t for t in tokens if t[0] < first_think[0]), None)
    if stray is not None:
        # An answer block before the reasoning would be the one `answer` reports: never call that well formed.
        return f"<{'/' if stray[2] else ''}{stray[4]}> before <thinking>"
    body = [t for t in tokens if t[0] >= first_think[0]]
    kinds = [(t[3], t[2]) for t in body]
    expected = [("think", False), ("think", True), ("answer", False), ("answer", True)]
    if kinds != expected:
        n_think = sum(1 for k in kinds if k == ("think", False))
        n_answer = sum(1 for k in kinds if k == ("answer", False))
        if n_think > 1:
            return "more than one <thinking> block"
        if ("think", True) not in kinds:
            return "<thinking> is never closed"
        if n_answer == 0:
            return "no <answer> block"
        if n_answer > 1:
            return "more than one <answer> block"
        if ("answer", True) not in kinds:
            return "<answer> is never closed"
        return "block tags out of order or unbalanced"
    if body[0][4] != body[1][4]:
        return f"<{body[0][4]}> closed by </{body[1][4]}>"
    if text[body[1][1]: body[2][0]].strip():
        return "text between </thinking> and <answer>"
    if text[body[3][1]:].strip():
        return "text after </answer>"
    return None


def clean_answer(answer: str | None) -> str:
    """Strip whitespace and leading/trailing full stops (:func:`medix_r1.grading.clean`).

    >>> clean_answer("  The left lung. ")
    'The left lung'
    """
    from medix_r1.grading import clean

    return clean(answer)


_WS_AROUND_BRACKETS = re.compile(r"\s*([<>/])\s*")


def squeeze_tag_whitespace(text: str) -> str:
    """Remove whitespace around ``<``, ``>`` and ``/`` (the reference release's pre-processing).

    Used by the paper-mode reward only: it also joins words around a slash (``"a / b"`` -> ``"a/b"``).
    """
    return _WS_AROUND_BRACKETS.sub(r"\1", text)
