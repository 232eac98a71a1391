"""Task data: read a task's rows (hub dataset or a local copy in the source's own format) and map them to
canonical :class:`~medix_r1.data.schema.Sample` objects.

Hub datasets go through ``datasets.load_dataset``; a local path (``--data-dir``, ``source.path`` or the
``source.env`` variable) replaces the download and is read in the source's own layout: Parquet, JSONL, a JSON
list or a JSON object keyed by id, CSV, a ``datasets.save_to_disk`` folder, or a folder of those (per config
sub-folder and per split file, as the hub stores them). Either way the rows pass through the same mapping code,
so a tiny fixture in the hub's format tests the real loader.

A row that cannot become a sample (empty question, unknown answer letter...) becomes a :class:`LoadIssue`:
evaluation writes it as an error row and counts it in the report. It is never silently dropped.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medix_r1.data.schema import Sample, SampleError
from medix_r1.errors import InputError
from medix_r1.eval.taskspec import TaskSpec
from medix_r1.modalities import normalize_tag

log = logging.getLogger(__name__)

_TABLE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv")


class DataUnavailable(InputError, RuntimeError):
    """A task's data cannot be found or read; the message says how to supply it."""


@dataclass(frozen=True)
class LoadIssue:
    """A row that could not become a sample. ``id`` is the row's id when known, else ``row-<n>``."""

    id: str
    where: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.where} id={self.id}" + (f" field={self.field}" if self.field else "") + f": {self.message}"


@dataclass
class TaskData:
    """A task's samples in source order, plus the rows that failed (kept, to be counted as errors)."""

    spec: TaskSpec
    samples: list[Sample] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    origin: str = ""

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples] + [i.id for i in self.issues]

    @property
    def n(self) -> int:
        return len(self.samples) + len(self.issues)

    @property
    def kind(self) -> str:
        if self.spec.kind != "auto":
            return self.spec.kind
        return "vision" if any(s.images for s in self.samples) else "text"


# --------------------------------------------------------------------------------------------- locating
def resolve_data_path(spec: TaskSpec, data_dirs: dict[str, str | Path] | str | Path | None = None) -> Path | None:
    """Where a task's local data is, or ``None`` to use the hub / bundled data.

    ``data_dirs`` is either a mapping task name -> path, or one root folder in which ``<root>/<task name>``
    (a file with any supported suffix, or a folder) is looked up. Then ``source.path``, then ``$source.env``.
    """
    if isinstance(data_dirs, dict):
        if spec.name in data_dirs:
            return _existing(Path(data_dirs[spec.name]).expanduser(), spec, "--data-dir")
        root = data_dirs.get("*")
    else:
        root = data_dirs
    if root:
        root = Path(root).expanduser()
        for cand in [root / spec.name, *[root / f"{spec.name}{s}" for s in _TABLE_SUFFIXES]]:
            if cand.exists():
                return cand
    if spec.source.path:
        p = Path(spec.source.path).expanduser()
        if not p.is_absolute() and spec.file:
            # A relative path in a task file is relative to the working directory, then to the task file.
            p = p if p.exists() else Path(spec.file).parent / p
        return _existing(p, spec, "source.path")
    if spec.source.env and os.environ.get(spec.source.env):
        return _existing(Path(os.environ[spec.source.env]).expanduser(), spec, f"${spec.source.env}")
    return None


def _existing(path: Path, spec: TaskSpec, how: str) -> Path:
    if not path.exists():
        raise DataUnavailable(f"task {spec.name}: {how} points to {path}, which does not exist")
    return path


# --------------------------------------------------------------------------------------------- raw rows
def _read_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        rows.append({"__issue__": f"{path}:{n}: malformed JSON ({exc.msg})"})
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataUnavailable(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, list):
            return data
        if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
            # Some releases (e.g. PubMedQA's ori_pqal.json) key rows by id.
            return [{"_key": k, **v} for k, v in data.items()]
        raise DataUnavailable(f"{path}: expected a JSON list of rows or an object of rows keyed by id")
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    raise DataUnavailable(f"{path}: unsupported file type {suffix!r} (use {', '.join(_TABLE_SUFFIXES)})")


def _split_files(folder: Path, split: str) -> list[Path]:
    """Files of one split inside a folder, in the hub's naming (``test.jsonl``, ``test-00000-of-00001.parquet``,
    ``test_2.csv``, ``data/test-*.parquet``)."""
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in _TABLE_SUFFIXES:
            continue
        stem = p.name[: -len(p.suffix)]
        if stem == split or re.match(rf"^{re.escape(split)}[-_.]", stem) or p.parent.name == split:
            found.append(p)
    return found


def _read_local(path: Path, spec: TaskSpec, config: str | None) -> tuple[list[dict], Path]:
    if path.is_file():
        return _read_file(path), path.parent
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if spec.source.split not in ds:
                raise DataUnavailable(f"{path}: no split {spec.source.split!r} (has {', '.join(ds)})")
            ds = ds[spec.source.split]
        return [ds[i] for i in range(len(ds))], path
    folder = path
    if config and (path / config).is_dir():
        folder = path / config
    if spec.source.files:
        files = sorted(folder.glob(spec.source.files))
    else:
        files = _split_files(folder, spec.source.split)
    if not files:
        what = spec.source.files or f"a file of split {spec.source.split!r}"
        raise DataUnavailable(f"task {spec.name}: found no {what} under {folder}")
    rows: list[dict] = []
    for f in files:
        rows.extend({"__file__": str(f), **r} if isinstance(r, dict) else r for r in _read_file(f))
    return rows, path


def _read_hub(spec: TaskSpec, config: str | None) -> list[dict]:
    src = spec.source
    try:
        import datasets

        ds = datasets.load_dataset(src.hub, config, split=src.split)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; say what to do instead
        raise DataUnavailable(
            f"task {spec.name}: cannot load {src.hub}"
            + (f" (config {config})" if config else "") + f" split {src.split} from the hub "
            f"({type(exc).__name__}: {str(exc)[:200]}). Download it on a machine with hub access and pass "
            f"--data-dir {spec.name}=PATH (the dataset folder or file in its own format)") from None
    return [ds[i] for i in range(len(ds))]


def iter_raw_rows(spec: TaskSpec, path: Path | None) -> Iterator[tuple[str, dict, Path | None]]:
    """Yield ``(position, row, base_dir)`` for every raw row of a table-format task."""
    configs = spec.source.config if isinstance(spec.source.config, list) else [spec.source.config]
    for config in configs:
        if path is not None:
            rows, base = _read_local(path, spec, config)
        elif spec.source.hub:
            rows, base = _read_hub(spec, config), None
        else:
            raise DataUnavailable(_missing_message(spec))
        prefix = f"{config}-" if len(configs) > 1 and config else ""
        for i, row in enumerate(rows):
            yield f"{prefix}{spec.source.split}-{i}", row, base


def _missing_message(spec: TaskSpec) -> str:
    msg = f"task {spec.name}: no local data given"
    if spec.source.credentials:
        msg += f". {spec.source.credentials.strip()}"
    how = f"--data-dir {spec.name}=PATH"
    if spec.source.env:
        how += f" or set ${spec.source.env}=PATH"
    return msg + f" Then pass {how}."


# --------------------------------------------------------------------------------------------- mapping
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Za-z])\s*[\):.]\s*")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _get(row: dict, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(_text(v) for v in value if v is not None)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render(spec: str, row: dict) -> Any:
    """A column's value (``spec`` names it, dotted for nested fields), a ``{column}`` template's text, or the
    literal text after a leading ``=``.

    >>> render("{context.contexts}\\nQ: {question}", {"question": "Why?", "context": {"contexts": ["a", "b"]}})
    'a\\nb\\nQ: Why?'
    """
    if spec.startswith("="):
        return spec[1:]
    if "{" in spec:
        return _TEMPLATE.sub(lambda m: _text(_get(row, m.group(1).strip())), spec)
    return _get(row, spec)


def _options(fm, row: dict) -> dict[str, str] | None:
    if not fm.options:
        return None
    if isinstance(fm.options, list):
        values = [_get(row, c) for c in fm.options]
    else:
        values = _get(row, fm.options)
        if isinstance(values, str) and values.strip().startswith(("[", "{")):
            try:
                values = ast.literal_eval(values.strip())  # MMMU stores options as a Python list literal
            except (ValueError, SyntaxError):
                raise SampleError("options", f"cannot read the options {values[:80]!r}") from None
    if values is None:
        return None
    if isinstance(values, dict):
        items = [(str(k).strip().upper(), v) for k, v in values.items()]
    elif isinstance(values, (list, tuple)):
        items = list(zip(_LETTERS, values))
    else:
        raise SampleError("options", f"expected a list or mapping of options, got {type(values).__name__}")
    out: dict[str, str] = {}
    for letter, text in items:
        if text is None or str(text).strip() in ("", "nan", "None"):
            continue
        text = str(text).strip()
        if fm.strip_option_prefix:
            text = _OPTION_PREFIX.sub("", text, count=1).strip()
        out[letter] = text
    return out or None


def _answer(fm, raw: Any, options: dict[str, str] | None) -> tuple[str, str | None]:
    """Return ``(answer text, option letter or None)``."""
    if isinstance(raw, (list, tuple)):
        raw = " / ".join(str(r) for r in raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise SampleError("answer", "missing or empty")
    fmt = fm.answer_format
    if options:
        text = str(raw).strip()
        if fmt in ("index", "auto") and (isinstance(raw, int) or (fmt == "index" and text.lstrip("-").isdigit())):
            idx = int(raw)
            letters = list(options)
            if not 0 <= idx < len(letters):
                raise SampleError("answer", f"option index {idx} out of range (0-{len(letters) - 1})")
            return options[letters[idx]], letters[idx]
        letter = text.strip("()[]. ").upper()
        if fmt in ("letter", "auto") and len(letter) == 1 and letter in options:
            return options[letter], letter
        if fmt == "letter":
            raise SampleError("answer", f"{text!r} is not one of the option letters {', '.join(options)}")
        if fm.strip_option_prefix:
            text = _OPTION_PREFIX.sub("", text, count=1).strip()
        match = [k for k, v in options.items() if v.strip().lower() == text.lower()]
        return text, (match[0] if match else None)
    return str(raw).strip(), None


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


def _images(fm, row: dict, base: Path | None, image_root: str | None) -> list:
    if not fm.image:
        return []
    cols = fm.image if isinstance(fm.image, list) else [fm.image]
    out = []
    root = (base / image_root) if (base is not None and image_root) else base
    for c in cols:
        value = render(c, row) if "{" in c else _get(row, c)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            if isinstance(v, str):
                p = Path(v)
                v = p if p.is_absolute() or root is None else root / p
            out.append(v)
    return out


def _passes(filters: dict | None, row: dict) -> bool:
    for col, want in (filters or {}).items():
        have = _get(row, col)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def map_row(spec: TaskSpec, row: dict, position: str, base: Path | None) -> Sample:
    """Turn one raw row into a :class:`Sample` (raises :class:`SampleError` naming the field)."""
    fm = spec.fields
    rid = render(fm.id, row) if fm.id else (row.get("_key") or position)
    if rid is None or str(rid).strip() == "":
        rid = position
    question = render(fm.question, row)
    if not isinstance(question, str):
        question = _text(question)
    if fm.question_remove:
        question = re.sub(fm.question_remove, "", question, flags=re.DOTALL)
    options = _options(fm, row)
    answer, letter = _answer(fm, render(fm.answer, row), options)
    if fm.drop_options:
        options = None
    metadata: dict[str, Any] = {k: _get(row, k) for k in fm.metadata}
    if letter and options:
        metadata["answer_letter"] = letter
    modality = spec.modality
    if fm.modality:
        raw = _get(row, fm.modality)
        mapped = (fm.modality_map or {}).get(str(raw)) if raw is not None else None
        modality = normalize_tag(mapped, brackets=False) if mapped else guess_modality(raw) or modality
    if spec.answer_type in ("auto", "report"):
        answer_type = Sample.infer_answer_type(answer, options)
        if fm.answer_type and _get(row, fm.answer_type) and not options:
            declared = str(_get(row, fm.answer_type)).strip().lower()
            answer_type = "closed" if declared in ("closed", "yes/no", "closed-ended") else "open"
    else:
        answer_type = spec.answer_type
    if answer_type == "mcq" and not options:
        raise SampleError("options", "an mcq question without options")
    return Sample(
        id=str(rid).strip(),
        question=question.strip() if isinstance(question, str) else "",
        answer=answer,
        images=_images(fm, row, base, spec.source.image_root),
        modality=modality,
        answer_type=answer_type,
        options=options,
        source=spec.source.hub or spec.name,
        split=spec.source.split,
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------- entry point
def load_task_data(spec: TaskSpec, data_dirs: dict[str, str | Path] | str | Path | None = None,
                   limit: int | None = None) -> TaskData:
    """Load a task's samples (and the rows that failed) from its local path, the bundled data or the hub.

    ``limit`` keeps the first N rows (after filtering), for smoke tests. Ids must be unique within a task: a
    repeated id is an issue, not a silent overwrite.
    """
    path = resolve_data_path(spec, data_dirs)
    data = TaskData(spec=spec, origin=str(path) if path else (spec.source.hub or "bundled"))
    seen: set[str] = set()

    def add(item: Sample | LoadIssue) -> bool:
        key = item.id
        if key in seen:
            item = LoadIssue(f"{key}#dup{len(data.issues)}", getattr(item, "where", data.origin), "id",
                             f"duplicate id {key!r} in {data.origin}")
        seen.add(item.id)
        (data.issues if isinstance(item, LoadIssue) else data.samples).append(item)
        return limit is not None and data.n >= limit

    if spec.source.format == "canonical":
        from medix_r1.data import BUNDLED_DIR, RowIssue, iter_samples

        source = path if path is not None else (BUNDLED_DIR if spec.source.bundled else None)
        if source is None:
            raise DataUnavailable(_missing_message(spec))
        try:
            stream = iter_samples(source, split=spec.source.split if source == BUNDLED_DIR else None)
            for file, n, item in stream:
                if isinstance(item, RowIssue):
                    item = LoadIssue(item.id or f"row-{n}", f"{file}:{n}", item.field, item.message)
                if add(item):
                    break
        except Exception as exc:
            if isinstance(exc, DataUnavailable):
                raise
            raise DataUnavailable(f"task {spec.name}: cannot read {source}: {exc}") from exc
        return data

    for position, row, base in iter_raw_rows(spec, path):
        if not isinstance(row, dict):
            add(LoadIssue(f"row-{position}", data.origin, None, "a row must be a mapping"))
            continue
        if "__issue__" in row:
            add(LoadIssue(f"row-{position}", data.origin, None, row["__issue__"]))
            continue
        if not _passes(spec.source.filter, row):
            continue
        where = f"{row.get('__file__', data.origin)}[{position}]"
        try:
            item: Sample | LoadIssue = map_row(spec, row, position, base)
        except SampleError as exc:
            rid = render(spec.fields.id, row) if spec.fields.id else row.get("_key")
            item = LoadIssue(str(rid) if rid not in (None, "") else f"row-{position}", where, exc.field,
                             exc.message)
        if add(item):
            break
    if data.issues:
        log.warning("task %s: %d row(s) could not be read; first: %s", spec.name, len(data.issues), data.issues[0])
    return data


__all__ = ["DataUnavailable", "LoadIssue", "TaskData", "guess_modality", "iter_raw_rows", "load_task_data",
           "map_row", "render", "resolve_data_path"]
