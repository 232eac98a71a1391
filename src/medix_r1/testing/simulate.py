"""Scripted stand-ins for an eval policy and judge, as reply functions for
:class:`medix_r1.testing.openai_stub.StubChatServer`: deterministic, model-free, and fast.

Used by the eval tests (resume after SIGKILL must give identical results, so replies depend only on the
prompt) and by ``benchmarks/eval_throughput.py`` (simulated loopback generator and judge).

- :func:`policy_reply`: answers in the MediX format; for a multiple-choice prompt it picks an option letter,
  otherwise one of a few stock answers, both chosen by a hash of the prompt (so some answers are right and
  some wrong, the same on every run).
- :func:`judge_reply`: reads the reference and candidate blocks of the eval judge prompt and replies
  ``{"score": 1}`` when one contains the other (case-insensitive), else ``{"score": 0}``; for the rubric prompt
  5 or 1. Self-check turns get the same verdict as the first turn.
- :func:`paper_judge_reply`: the same for the ``paper`` protocol's judge prompt (its "Correct answer:" and
  "Predicted answer:" sections; answer tags in the prediction are ignored), after a ``<think>`` block, as a
  thinking judge would reply.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

STOCK_ANSWERS = ("Yes", "No", "Computed tomography", "Magnetic resonance imaging", "X-ray", "Liver", "Left",
                 "Normal", "Ultrasound", "Brain")
_BLOCK = re.compile(r"<(reference|candidate)>\n(.*?)\n</\1>", re.DOTALL)
_CHOICE_LINE = re.compile(r"^([A-Z])\. ", re.MULTILINE)
_PAPER_SECTIONS = re.compile(r"Correct answer:\n(.*?)\n\nPredicted answer:\n(.*?)\n\n", re.DOTALL)
_PAPER_REPORT = re.compile(r"Reference report:\n(.*?)\n\nPredicted report:\n(.*?)\n\n", re.DOTALL)
_TAGS = re.compile(r"</?[A-Za-z_]+>")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def policy_reply(messages: list[dict], request: dict | None = None) -> str:
    """A deterministic MediX-format completion for the last user turn."""
    text = _text(messages[-1].get("content")) if messages else ""
    h = _digest(text)
    if "Choices:" in text:
        letters = _CHOICE_LINE.findall(text.split("Choices:", 1)[1]) or ["A"]
        answer = letters[h % len(letters)]
    else:
        answer = STOCK_ANSWERS[h % len(STOCK_ANSWERS)]
    return f"<OTHER><thinking>Considering the question step by step.</thinking><answer>{answer}</answer>"


def judge_reply(messages: list[dict], request: dict | None = None) -> str:
    """A deterministic verdict for the eval judge prompts (binary JSON or 0-5 rubric)."""
    graded = next((m for m in reversed(messages) if "<candidate>" in _text(m.get("content"))), None)
    if graded is None:
        return "I cannot find an answer to grade."
    body = _text(graded.get("content"))
    blocks = dict(_BLOCK.findall(body))
    ref = blocks.get("reference", "").strip().lower().rstrip(".")
    cand = blocks.get("candidate", "").strip().lower().rstrip(".")
    match = bool(ref and cand and (ref in cand or cand in ref))
    if "0 to 5" in body:
        return json.dumps({"score": 5 if match else 1})
    return json.dumps({"score": int(match)})


def paper_judge_reply(messages: list[dict], request: dict | None = None) -> str:
    """A deterministic verdict for the paper protocol's judge prompt (binary 0/1 or rubric 5/1)."""
    first = _text(messages[0].get("content")) if messages else ""
    m = _PAPER_SECTIONS.search(first) or _PAPER_REPORT.search(first)
    if m is None:
        return "I cannot find an answer to grade."
    ref = m.group(1).strip().lower().rstrip(".")
    cand = _TAGS.sub("", m.group(2)).strip().lower().rstrip(".")
    match = bool(ref and cand and (ref in cand or cand in ref))
    score = (5 if match else 1) if "Reference report:" in first else int(match)
    return f"<think>Comparing the two.</think>{json.dumps({'score': score})}"


__all__ = ["STOCK_ANSWERS", "judge_reply", "paper_judge_reply", "policy_reply"]
