"""Field mapping: one raw row (a dict in the source's own columns) -> one canonical
:class:`~medix_r1.data.schema.Sample`, or a :class:`~medix_r1.data.schema.SampleError` naming the field.

MCQ options keep their published positions: an empty, ``nan`` or ``None`` option is not shown, but the
letters and indices of the others do not move (MedMCQA ``opb = "None"``, ``cop = 2`` is still option C). An
answer that does not resolve to a shown option fails the row; it never shifts to a neighbour.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Any

from medix_r1.data.schema import Sample, SampleError
from medix_r1.eval.sources.archives import ImageResolver
from medix_r1.eval.taskspec import FieldMap, TaskSpec
from medix_r1.modalities import normalize_tag

_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Za-z])\s*[\):.]\s*")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_EMPTY_TEXTS = ("", "nan", "none", "null")


def _get_one(row: Any, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def get(row: dict, spec: str) -> Any:
    """A column's value: ``a.b`` for a nested field, ``a.0`` for a list item, ``a|b`` for the first present."""
    for alt in spec.split("|"):
        value = _get_one(row, alt.strip())
        if value is not None:
            return value
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(v) for v in value if v is not None)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (list, tuple, dict)):
        return not value
    return isinstance(value, str) and not value.strip()


def render(spec: str, row: dict, field: str | None = None) -> Any:
    """A column's value (``spec`` names it), a ``{column}`` template's text, or the literal text after a
    leading ``=``. With ``field``, a template whose columns are missing raises :class:`SampleError` naming
    them (the template's literal text alone is not a question).

    >>> render("{context.contexts}\\nQ: {question}", {"question": "Why?", "context": {"contexts": ["a", "b"]}})
    'a\\nb\\nQ: Why?'
    """
    if spec.startswith("="):
        return spec[1:]
    if "{" in spec:
        names = [m.strip() for m in _TEMPLATE.findall(spec)]
        if field is not None:
            absent = [n for n in names if _missing(get(row, n))]
            if absent:
                have = ", ".join(sorted(k for k in row if not k.startswith("__")))[:300]
                raise SampleError(field, f"the template needs column(s) {', '.join(absent)}, missing or empty "
                                         f"in this row (it has: {have})")
        return _TEMPLATE.sub(lambda m: _text(get(row, m.group(1).strip())), spec)
    return get(row, spec)


def _option_items(fm: FieldMap, row: dict) -> list[tuple[str, Any]] | None:
    """Every option slot in its published position (empty ones included)."""
    if not fm.options:
        return None
    if isinstance(fm.options, list):
        values: Any = [get(row, c) for c in fm.options]
    else:
        values = get(row, fm.options)
        if isinstance(values, str) and values.strip().startswith(("[", "{")):
            try:
                values = ast.literal_eval(values.strip())  # MMMU stores options as a Python list literal
            except (ValueError, SyntaxError):
                raise SampleError("options", f"cannot read the options {values[:80]!r}") from None
    if values is None:
        return None
    if isinstance(values, dict):
        return [(str(k).strip().upper(), v) for k, v in values.items()]
    if isinstance(values, (list, tuple)):
        return list(zip(_LETTERS, values))
    raise SampleError("options", f"expected a list or mapping of options, got {type(values).__name__}")


def _shown(fm: FieldMap, items: list[tuple[str, Any]] | None) -> dict[str, str] | None:
    if not items:
        return None
    out: dict[str, str] = {}
    for letter, text in items:
        if _missing(text) or str(text).strip().lower() in _EMPTY_TEXTS:
            continue
        text = str(text).strip()
        if fm.strip_option_prefix:
            text = _OPTION_PREFIX.sub("", text, count=1).strip()
        if text:
            out[letter] = text
    return out or None


def _answer(fm: FieldMap, raw: Any, items: list[tuple[str, Any]] | None,
            options: dict[str, str] | None) -> tuple[str, str | None]:
    """Return ``(answer text, option letter or None)``."""
    if isinstance(raw, (list, tuple)):
        raw = " / ".join(str(r) for r in raw)
    if _missing(raw):
        raise SampleError("answer", "missing or empty")
    fmt = fm.answer_format
    if not options:
        return str(raw).strip(), None
    text = str(raw).strip()
    if fmt == "index" or (fmt == "auto" and isinstance(raw, int) and not isinstance(raw, bool)):
        if not text.lstrip("-").isdigit():
            raise SampleError("answer", f"{text!r} is not an option number")
        idx = int(text) - fm.index_base
        if not 0 <= idx < len(items):
            raise SampleError("answer", f"option number {text} is out of range ({fm.index_base}-"
                                        f"{len(items) - 1 + fm.index_base})")
        letter = items[idx][0]
        if letter not in options:
            raise SampleError("answer", f"option number {text} ({letter}) is an empty option")
        return options[letter], letter
    letter = text.strip("()[]. ").upper()
    prefixed = _OPTION_PREFIX.match(text) if fm.strip_option_prefix else None
    if fmt == "letter" and len(letter) > 1 and prefixed:
        letter = prefixed.group(1).upper()  # "B:Computed tomography" names option B
    if fmt in ("letter", "auto") and len(letter) == 1 and letter.isalpha():
        if letter in options:
            return options[letter], letter
        raise SampleError("answer", f"{text!r} is not one of the shown option letters {', '.join(options)}")
    if fmt == "letter":
        raise SampleError("answer", f"{text!r} is not one of the option letters {', '.join(options)}")
    if fm.strip_option_prefix:
        text = _OPTION_PREFIX.sub("", text, count=1).strip()
    match = [k for k, v in options.items() if v.strip().lower() == text.lower()]
    if not match:
        raise SampleError("answer", f"{text[:80]!r} matches none of the options")
    return options[match[0]], match[0]


_MODALITY_WORDS = (
    ("<PET_SCAN>", ("pet",)), ("<SPECT>", ("spect",)), ("<OCT_SCAN>", ("oct", "optical coherence")),
    ("<CT_SCAN>", ("ct", "computed tomography")), ("<MRI_SCAN>", ("mr", "mri", "magnetic resonance")),
    ("<MAMMOGRAPHY>", ("mammo",)), ("<ANGIOGRAPHY>", ("angio",)), ("<FLUOROSCOPY>", ("fluoro",)),
    ("<X_RAY>", ("x-ray", "xray", "x ray", "radiograph", "cxr")), ("<ULTRASOUND>", ("ultrasound", "us", "sonograph")),
    ("<FUNDUS_PHOTOGRAPHY>", ("fundus",)), ("<ENDOSCOPY>", ("endoscop", "colonoscop")),
    ("<MICROSCOPY>", ("microscop", "patholog", "histolog", "cytolog")),
    ("<CLINICAL_PHOTOGRAPHY>", ("dermoscop", "dermatolog", "clinical photo", "photograph")),
)


def guess_modality(name: Any) -> str | None:
    """Map a source's modality label (``CT``, ``MR (Magnetic Resonance Imaging)``, ``X-Ray``...) to a tag.

    >>> guess_modality("CT(Computed Tomography)"), guess_modality("X-Ray"), guess_modality("Dermoscopy")
    ('<CT_SCAN>', '<X_RAY>', '<CLINICAL_PHOTOGRAPHY>')
    """
    if not name:
        return None
    text = str(name).strip()
    tag = normalize_tag(text, brackets=False)
    if tag:
        return tag
    low = text.lower()
    words = set(re.findall(r"[a-z]+", low))
    for tag, keys in _MODALITY_WORDS:
        for k in keys:
            if (len(k) <= 3 and k in words) or (len(k) > 3 and k in low):
                return tag
    return None


def _images(fm: FieldMap, row: dict, resolve: ImageResolver) -> list:
    if not fm.image:
        return []
    out = []
    for c in fm.image if isinstance(fm.image, list) else [fm.image]:
        value = render(c, row) if "{" in c else get(row, c)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            out.append(resolve(v))
    return out


def passes(filters: dict | None, row: dict) -> bool:
    """The row satisfies ``source.filter`` (column == value, or value in a list)."""
    for col, want in (filters or {}).items():
        have = get(row, col)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def row_id(fm: FieldMap, row: dict, position: str) -> str:
    rid = render(fm.id, row) if fm.id else None
    if _missing(rid):
        rid = row.get("_key")  # the key of a JSON object of rows (PubMedQA's PMIDs)
    return position if _missing(rid) else str(rid).strip()


def map_row(spec: TaskSpec, row: dict, position: str, base: Path | None | ImageResolver = None,
            fields: FieldMap | None = None) -> Sample:
    """Turn one raw row into a :class:`Sample` (raises :class:`SampleError` naming the field). ``base`` is the
    folder relative image names resolve against, or an :class:`ImageResolver`; ``fields`` overrides the
    task's field map (per-file overrides)."""
    fm = fields or spec.fields
    resolve = base if isinstance(base, ImageResolver) else ImageResolver(base, spec.source.image_root, None)
    question = render(fm.question, row, "question")
    if not isinstance(question, str):
        question = _text(question)
    if fm.question_remove:
        question = re.sub(fm.question_remove, "", question, flags=re.DOTALL)
    items = _option_items(fm, row)
    options = _shown(fm, items)
    answer, letter = _answer(fm, render(fm.answer, row, "answer"), items, options)
    if fm.drop_options:
        options = None
    metadata: dict[str, Any] = {k: get(row, k) for k in fm.metadata}
    if letter and options:
        metadata["answer_letter"] = letter
    modality = spec.modality
    if fm.modality:
        raw = get(row, fm.modality)
        mapped = (fm.modality_map or {}).get(str(raw)) if raw is not None else None
        modality = normalize_tag(mapped, brackets=False) if mapped else guess_modality(raw) or modality
    if spec.answer_type in ("auto", "report"):
        answer_type = Sample.infer_answer_type(answer, options)
        if fm.answer_type and get(row, fm.answer_type) and not options:
            declared = str(get(row, fm.answer_type)).strip().lower()
            answer_type = "closed" if declared in ("closed", "yes/no", "closed-ended") else "open"
    else:
        answer_type = spec.answer_type
    if answer_type == "mcq" and not options:
        raise SampleError("options", "an mcq question without options")
    if answer_type == "mcq" and letter is None:
        raise SampleError("answer", f"{answer[:80]!r} is not one of the options")
    return Sample(
        id=row_id(fm, row, position),
        question=question.strip() if isinstance(question, str) else "",
        answer=answer,
        images=_images(fm, row, resolve),
        modality=modality,
        answer_type=answer_type,
        options=options,
        source=spec.source.hub or spec.name,
        split=spec.source.split,
        metadata=metadata,
    )


__all__ = ["get", "guess_modality", "map_row", "passes", "render", "row_id"]
