"""What every reward needs from TRL's arguments: completion texts and per-row references.

TRL passes ``completions`` as strings (standard format) or as message lists (conversational format:
``[{"role": "assistant", "content": "..."}]``, where content may itself be a list of parts). It passes the
dataset's other columns as keyword lists. :func:`completion_texts` and :func:`row_references` are the one
place that reads them, so no reward repeats ``completion[0]["content"]``.

Reference columns understood (the first present wins): ``answer`` (plain text, with the tag in ``modality``),
``solution`` or ``reference`` (``"<TAG> answer"``, the MediX layout; a plain answer works too). A tagged
reference is split once, at the first ``>`` of a leading tag, as the release does: ``"<CT_SCAN> <MRI_SCAN> x"``
has the tag ``<CT_SCAN>`` and the answer ``"<MRI_SCAN> x"``. An ``answer`` that comes with a ``modality`` value is
used verbatim. ``medix-r1 score`` passes its rows through the same function, so it reads references as
training does. Optional MCQ columns: ``options`` (``{"A": "...", ...}`` or its JSON) and ``answer_letter``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medix_r1.modalities import normalize_tag, split_tagged_answer


def completion_text(completion: Any) -> str:
    """The assistant text of one completion, whichever TRL format it comes in."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        parts = [_content_text(m.get("content")) for m in completion
                 if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return "".join(parts)
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    return str(content)


def completion_texts(completions: Sequence[Any] | None) -> list[str]:
    """:func:`completion_text` for each completion."""
    if completions is None:
        raise TypeError("reward functions need completions=[...]")
    return [completion_text(c) for c in completions]


@dataclass(frozen=True)
class RowReference:
    """One row's reference: answer text, modality tag (``None`` = text-only), question and answer type."""

    answer: str | None
    tag: str | None
    question: str | None = None
    answer_type: str | None = None
    raw_reference: str | None = None
    """The reference string as given."""
    options: Mapping[str, str] | None = None
    """MCQ options by letter, when the row has them."""
    answer_letter: str | None = None


def _col(kwargs: dict, name: str, n: int) -> list | None:
    value = kwargs.get(name)
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value] * n  # one value for every row (convenient outside TRL)
    if len(value) != n:
        raise ValueError(f"column {name!r} has {len(value)} values for {n} completions; TRL passes one per "
                         f"completion (repeat each prompt's value for its generations)")
    return list(value)


def row_references(n: int, kwargs: dict) -> list[RowReference]:
    """Read the reference columns (``answer``/``solution``/``reference``, ``modality``, ``question``,
    ``answer_type``) for ``n`` completions."""
    answers = _col(kwargs, "answer", n)
    tagged = _col(kwargs, "solution", n) or _col(kwargs, "reference", n)
    modality = _col(kwargs, "modality", n)
    questions = _col(kwargs, "question", n) or _col(kwargs, "problem", n)
    types = _col(kwargs, "answer_type", n)
    options = _col(kwargs, "options", n)
    letters = _col(kwargs, "answer_letter", n)
    out = []
    for i in range(n):
        tag = None
        raw = None
        answer = answers[i] if answers is not None else None
        has_modality = modality is not None and modality[i] not in (None, "")
        if answer is None and tagged is not None and tagged[i] is not None:
            raw = str(tagged[i])
            tag, answer = split_tagged_answer(raw)
        elif answer is not None:
            answer = str(answer)
            raw = answer
            lead, rest = split_tagged_answer(answer)
            # "<CT_SCAN> liver" in the answer column, with no modality column to say otherwise
            if not has_modality and lead is not None and normalize_tag(lead) is not None:
                tag, answer = lead, rest
            else:
                answer = answer.strip()
        if has_modality:
            tag = normalize_tag(str(modality[i]), brackets=False) or str(modality[i]).upper()
            if not tag.startswith("<"):
                tag = f"<{tag}>"
        q = questions[i] if questions is not None else None
        if isinstance(q, str):
            q = q.replace("<image>", "").strip() or None
        out.append(RowReference(answer=answer, tag=tag, question=q,
                                answer_type=types[i] if types is not None else None, raw_reference=raw,
                                options=_options(options[i] if options is not None else None),
                                answer_letter=letters[i] if letters is not None else None))
    return out


def _options(value: Any) -> Mapping[str, str] | None:
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"column 'options' must map letters to option texts, got {value[:60]!r}") from exc
    if not isinstance(value, Mapping):
        raise TypeError(f"column 'options' must map letters to option texts, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}
