"""Eval protocols: ``default`` (this project's improvements) and ``paper`` (the MediX-R1 release's eval kit,
for numbers that can sit beside the published ones).

A protocol fixes what a run sends to the generator and to the judge, and how verdicts become scores; it is
recorded in ``run.json`` and ``results.json``, and an output folder holds one protocol only. docs/eval.md
lists every difference between the two, point by point.

``paper``:

- the generator gets no system prompt and no training template: the image(s) then the text, MCQ options as
  ``question + "\\n\\nChoices:" + "\\nA. ..."`` (a blank line before ``Choices:``; an empty option is skipped
  and the others keep their letters); MMMU shows its first image only; images as JPEG quality 75;
  ``max_tokens`` 2048, temperature 0, top_p 1.0;
- the judge sees the text after the last ``</think>`` (else after the last ``</thinking>``), stripped, answer
  tags kept; one user turn (question with choices, correct answer, predicted answer, a JSON instruction and
  `` /no_think``), temperature 0, ``max_tokens`` 512, asked three times in the same chat; no rule shortcut;
- a reply's verdict is the ``score`` of the JSON between its first ``{`` and last ``}`` (after any
  ``</think>``); binary: 1 when at least two rounds say 1; rubric: the mean of three 0-5 scores / 5.

Unlike the release, a reply without a verdict is a counted ``unparseable`` state (never retried forever),
a rubric score outside 0-5 is invalid (never 1.4), and Overall is a 0-1 fraction like every other number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from medix_r1.errors import UsageError

PROTOCOL_NAMES = ("default", "paper")


@dataclass(frozen=True)
class Protocol:
    name: str
    jpeg_quality: int
    top_p: float | None
    """Sent to the generator when set (the paper's 1.0); ``None`` leaves the server's default."""
    blank_line_before_choices: bool
    rule_shortcuts: bool
    """Decide option-letter and exact-match answers by rule, without asking the judge."""
    judge_sees: str
    """``final_answer`` (the parsed ``<answer>`` text) or ``after_think`` (the text after the last think tag)."""
    judge_max_tokens: int | None
    first_image_only: tuple[str, ...] = ()
    """Task-name prefixes whose samples show only their first image."""
    allows_template: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT = Protocol("default", jpeg_quality=90, top_p=None, blank_line_before_choices=False, rule_shortcuts=True,
                   judge_sees="final_answer", judge_max_tokens=None)
PAPER = Protocol("paper", jpeg_quality=75, top_p=1.0, blank_line_before_choices=True, rule_shortcuts=False,
                 judge_sees="after_think", judge_max_tokens=512, first_image_only=("mmmu",), allows_template=False)
PROTOCOLS = {p.name: p for p in (DEFAULT, PAPER)}


def get_protocol(name: str | Protocol | None) -> Protocol:
    if isinstance(name, Protocol):
        return name
    try:
        return PROTOCOLS[name or "default"]
    except KeyError:
        raise UsageError(f"unknown eval protocol {name!r}", where="--protocol",
                         fix=f"use one of: {', '.join(PROTOCOL_NAMES)}") from None


def text_after_think(completion: str | None) -> str:
    """The text after the last ``</think>``, else after the last ``</thinking>``, else all of it; stripped.

    >>> text_after_think("<think>a</think>b</think> <answer>Liver</answer> ")
    '<answer>Liver</answer>'
    >>> text_after_think("<X_RAY><thinking>t</thinking><answer>No</answer>")
    '<answer>No</answer>'
    """
    text = completion or ""
    for tag in ("</think>", "</thinking>"):
        i = text.rfind(tag)
        if i >= 0:
            return text[i + len(tag):].strip()
    return text.strip()


__all__ = ["DEFAULT", "PAPER", "PROTOCOLS", "PROTOCOL_NAMES", "Protocol", "get_protocol", "text_after_think"]
