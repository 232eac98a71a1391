"""The 16 imaging-modality tags of MediX-R1 and helpers to read ``<TAG> answer`` references.

The policy is taught to open every completion with exactly one of these tags (docs/background.md §2), and the
training data stores its references as ``<TAG> answer text``.
"""

from __future__ import annotations

import re

MODALITY_TAGS: tuple[str, ...] = (
    "<X_RAY>",
    "<MICROSCOPY>",
    "<CLINICAL_PHOTOGRAPHY>",
    "<CT_SCAN>",
    "<GRAPHICS>",
    "<ANGIOGRAPHY>",
    "<PET_SCAN>",
    "<ULTRASOUND>",
    "<MRI_SCAN>",
    "<FUNDUS_PHOTOGRAPHY>",
    "<OCT_SCAN>",
    "<ENDOSCOPY>",
    "<MAMMOGRAPHY>",
    "<FLUOROSCOPY>",
    "<OTHER>",
    "<SPECT>",
)
_TAG_SET = frozenset(MODALITY_TAGS)

# A bare tag such as "<CT_SCAN>" or "< ct_scan >": letters, digits and underscores only.
_BARE_TAG = re.compile(r"^\s*<\s*([A-Za-z][A-Za-z0-9_]*)\s*>\s*$")
_NAME = re.compile(r"^\s*<?\s*([A-Za-z][A-Za-z0-9_]*)\s*>?\s*$")
# A reference that starts with a tag: "<CT_SCAN> The liver".
_LEADING_TAG = re.compile(r"^\s*<\s*([A-Za-z][A-Za-z0-9_]*)\s*>")


def normalize_tag(text: str | None, *, brackets: bool = True) -> str | None:
    """Return the canonical ``<TAG>`` spelling of ``text`` if it names one of the 16 tags, else ``None``.

    With ``brackets=False`` (for data files) the angle brackets may be left out.

    >>> normalize_tag(" < ct_scan > ")
    '<CT_SCAN>'
    >>> normalize_tag("MRI_SCAN") is None, normalize_tag("MRI_SCAN", brackets=False)
    (True, '<MRI_SCAN>')
    >>> normalize_tag("<LIVER>") is None
    True
    """
    if text is None:
        return None
    m = (_BARE_TAG if brackets else _NAME).match(text)
    if not m:
        return None
    tag = f"<{m.group(1).upper()}>"
    return tag if tag in _TAG_SET else None


def is_modality_tag(text: str | None) -> bool:
    return normalize_tag(text) is not None


def split_tagged_answer(solution: str) -> tuple[str | None, str]:
    """Split a MediX reference ``"<TAG> answer"`` into ``(tag, answer)``.

    The tag is returned as written but upper-cased (it may be unknown: callers validate it); the answer is
    the text after the first ``>``, stripped. A solution with no leading tag gives ``(None, solution)``.

    >>> split_tagged_answer("<CT_SCAN> Left kidney")
    ('<CT_SCAN>', 'Left kidney')
    >>> split_tagged_answer("plain answer")
    (None, 'plain answer')
    """
    m = _LEADING_TAG.match(solution)
    if not m:
        return None, solution.strip()
    return f"<{m.group(1).upper()}>", solution[m.end():].strip()
