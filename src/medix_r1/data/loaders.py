"""Loaders: every supported source becomes a list of canonical :class:`~medix_r1.data.schema.Sample`.

Two row layouts are understood, detected per row:

- **MediX RL layout** (``MBZUAI/medix-rl-data``): ``id``, ``image`` (list of images), ``source``, ``problem``,
  ``solution`` = ``"<TAG> answer"``.
- **Canonical layout**: ``id``, ``question``, ``answer``, optional ``image`` (path or list of paths),
  ``options``, ``answer_type``, ``modality``, ``source``, ``split``, ``metadata``.

from these containers: a JSONL file, a Parquet file, a ``datasets.save_to_disk`` folder, or a hub dataset id
(through ``datasets.load_dataset``). Relative image paths resolve against the data file's folder.

Bad rows are never dropped silently: with ``on_error="raise"`` the first bad row raises
:class:`DataError` naming file, row, id and field; with ``on_error="skip"`` bad rows are skipped, counted,
returned in :attr:`LoadResult.issues` and logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medix_r1.data.schema import Sample, SampleError, load_image
from medix_r1.errors import InputError
from medix_r1.modalities import split_tagged_answer

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
BUNDLED_DIR = Path(__file__).parent / "bundled"


@dataclass(frozen=True)
class RowIssue:
    """One problem with one row: where it is and what is wrong."""

    file: str
    row: int | None  # 1-based line number for JSONL, 0-based row index for tables
    id: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.row}" if self.row is not None else self.file
        rid = f" id={self.id}" if self.id is not None else ""
        fld = f" field={self.field}" if self.field else ""
        return f"{where}{rid}{fld}: {self.message}"


class DataError(InputError, ValueError):
    """A row could not be turned into a sample (raised with ``on_error="raise"``)."""

    def __init__(self, issue: RowIssue):
        super().__init__(str(issue))
        self.issue = issue


@dataclass
class LoadResult:
    samples: list[Sample]
    issues: list[RowIssue] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len({(i.file, i.row) for i in self.issues})


# --------------------------------------------------------------------------------------------- raw rows
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def _not_text(path: Path, lineno: int, exc: UnicodeDecodeError) -> DataError:
    hint = " (a Parquet file must end in .parquet)" if path.suffix != ".parquet" else ""
    return DataError(RowIssue(str(path), lineno, None, None,
                              f"not UTF-8 text ({exc.reason}): a JSONL file holds one JSON object per line{hint}"))


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` of a UTF-8 text file; a binary file (a Parquet file or an image given where
    JSONL was expected) raises :class:`DataError` naming the file and line, not a UnicodeDecodeError.
    Lines are decoded one by one (text mode decodes in blocks, which would blame the wrong line)."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_text(path, lineno, exc) from None


def _first_char(path: Path) -> str:
    for _n, line in _text_lines(path):
        if line.strip():
            return line.strip()[0]
    return ""


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, dict | str]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file, or ``(line_number, message)``
    when the line is not a JSON object. The one JSONL reader of the package: callers decide what a bad line
    costs (a :class:`RowIssue`, a skipped row, an error). A file that is not UTF-8 text raises
    :class:`DataError`."""
    for lineno, line in _text_lines(Path(path)):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, f"malformed JSON: {exc.msg} (column {exc.colno})"
            continue
        yield lineno, (row if isinstance(row, dict) else "a row must be a JSON object")


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict | RowIssue]]:
    for lineno, row in iter_json_lines(path):
        yield lineno, (row if isinstance(row, dict) else RowIssue(str(path), lineno, None, None, row))


def _iter_table(ds: Any, name: str) -> Iterator[tuple[int, dict]]:
    """Rows of a table; image cells become :class:`~medix_r1.data.table_images.TableImage` references, so
    samples never hold image bytes (they are read when a batch needs them)."""
    from medix_r1.data.table_images import ImageTable, row_references

    table = ImageTable(ds, name)
    columns = table.image_columns()
    if not columns:
        for i in range(len(ds)):
            yield i, ds[i]
        return
    counts = {c: table.counts(c) for c in columns}
    for i, row in enumerate(table.text_rows()):
        for c in columns:
            row[c] = row_references(table, c, i, counts[c][i])
        yield i, row


def _iter_json_array(path: Path) -> Iterator[tuple[int, dict | RowIssue]]:
    """A ``.json`` file holding one array of row objects (row numbers are 0-based indices)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        yield exc.lineno, RowIssue(str(path), exc.lineno, None, None,
                                   f"malformed JSON: {exc.msg} (line {exc.lineno}, col {exc.colno})")
        return
    if not isinstance(rows, list):
        yield 0, RowIssue(str(path), None, None, None, "a .json file must hold an array of row objects "
                                                       "(or use .jsonl: one object per line)")
        return
    for i, row in enumerate(rows):
        yield i, row if isinstance(row, dict) else RowIssue(str(path), i, None, None, "a row must be a JSON object")


def iter_rows(source: str | Path, split: str | None = None) -> Iterator[tuple[str, int, dict | RowIssue]]:
    """Yield ``(file, row_number, row_or_issue)`` for every row of a data source."""
    path = Path(source)
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):
            is_array = path.suffix == ".json" and _first_char(path) == "["
            for n, row in (_iter_json_array(path) if is_array else _iter_jsonl(path)):
                yield str(path), n, row
            return
        if path.suffix == ".parquet":
            import datasets
            import pyarrow as pa
            import pyarrow.parquet as pq

            # In memory, not Dataset.from_parquet: that copies the file into a cache folder on every new path.
            # The features (e.g. Image columns) come back from the schema metadata datasets wrote.
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                raise DataError(RowIssue(str(path), None, None, None, f"cannot be read as Parquet ({exc})")) from exc
            ds = datasets.Dataset(table)
            for n, row in _iter_table(ds, str(path)):
                yield str(path), n, row
            return
        raise DataError(RowIssue(str(path), None, None, None,
                                 f"unsupported file type {path.suffix!r}: use .jsonl, .parquet or a dataset folder"))
    if path.is_dir():
        jsonls = sorted(path.glob("*.jsonl"))
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                splits = [split] if split else list(ds.keys())
                for s in splits:
                    for n, row in _iter_table(ds[s], f"{path}[{s}]"):
                        yield f"{path}[{s}]", n, {"split": s, **row}
            else:
                for n, row in _iter_table(ds, str(path)):
                    yield str(path), n, row
            return
        if jsonls:
            for f in jsonls:
                if split and f.stem != split:
                    continue
                for n, row in _iter_jsonl(f):
                    yield str(f), n, ({"split": f.stem, **row} if isinstance(row, dict) else row)
            return
        raise DataError(RowIssue(str(path), None, None, None,
                                 "folder holds neither *.jsonl files nor a datasets.save_to_disk dataset"))
    if Path(str(source)).suffix in _DATA_SUFFIXES:
        raise DataError(RowIssue(str(source), None, None, None, "no such file (check the path)"))
    if "/" in str(source) and not str(source).startswith((".", "/", "~")):
        import datasets

        try:
            ds = datasets.load_dataset(str(source), split=split or "train")
        except Exception as exc:  # the hub raises many types; name the source and what to do
            raise DataError(RowIssue(str(source), None, None, None,
                                     f"could not load hub dataset ({type(exc).__name__}: {exc}); "
                                     "check the id, your network or HF_TOKEN, or pass a local path")) from exc
        for n, row in _iter_table(ds, str(source)):
            yield f"{source}[{split or 'train'}]", n, {"split": split or "train", **row}
        return
    raise DataError(RowIssue(str(source), None, None, None, "no such file or folder"))


# --------------------------------------------------------------------------------------------- row -> Sample
def _resolve_image(img: Any, base: Path | None) -> Any:
    if base is None:
        return img
    if hasattr(img, "base_dir"):  # a TableImage: its stored relative path resolves when it is read
        img.base_dir = base
        return img
    if isinstance(img, str):
        p = Path(img)
        return p if p.is_absolute() else (base / p)
    if isinstance(img, dict) and not img.get("bytes") and isinstance(img.get("path"), str):
        p = Path(img["path"])
        return {**img, "path": str(p if p.is_absolute() else base / p)}
    return img


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def row_to_sample(row: dict, *, base_dir: Path | None = None, default_split: str = "") -> Sample:
    """Turn one raw row (either layout) into a :class:`Sample`; raises :class:`SampleError` naming the field."""
    if "problem" in row or "solution" in row:  # MediX RL layout
        for key in ("problem", "solution"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise SampleError(key, "missing or empty")
        tag, answer = split_tagged_answer(row["solution"])
        images = [_resolve_image(i, base_dir) for i in _as_list(row.get("image", row.get("images")))]
        question = row["problem"].replace("<image>", "").strip()
        return Sample(
            id=_require_id(row),
            question=question,
            answer=answer,
            images=images,
            modality=tag,
            answer_type=Sample.infer_answer_type(answer),
            source=str(row.get("source") or ""),
            split=str(row.get("split") or default_split),
            metadata={"raw_problem": row["problem"]} if "<image>" in row["problem"] else {},
        )
    for key in ("question", "answer"):
        if key not in row or row[key] is None:
            raise SampleError(key, "missing")
        if not isinstance(row[key], str):
            raise SampleError(key, f"must be a string, got {type(row[key]).__name__}")
    images = [_resolve_image(i, base_dir) for i in _as_list(row.get("image", row.get("images")))]
    options = row.get("options") or None
    if isinstance(options, (list, tuple)):
        options = {chr(ord("A") + i): str(o) for i, o in enumerate(options)}
    if options is not None and not isinstance(options, dict):
        raise SampleError("options", "must be an object of letter -> option text, or a list of option texts")
    answer_type = row.get("answer_type") or Sample.infer_answer_type(row["answer"], options)
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise SampleError("metadata", "must be an object")
    answer = row["answer"]
    if answer_type == "mcq" and options:
        answer, letter = _mcq_answer(answer, options)
        metadata = {**metadata, "answer_letter": metadata.get("answer_letter", letter)}
    return Sample(
        id=_require_id(row),
        question=row["question"],
        answer=answer,
        images=images,
        modality=row.get("modality"),
        answer_type=answer_type,
        options=options,
        source=str(row.get("source") or ""),
        split=str(row.get("split") or default_split),
        metadata=metadata,
    )


def _mcq_answer(answer: str, options: dict) -> tuple[str, str]:
    """Return ``(option text, letter)`` for an MCQ answer given as either (the reference uses the text)."""
    texts = {str(v).strip(): str(k) for k, v in options.items()}
    if answer.strip() in texts:
        return answer.strip(), texts[answer.strip()]
    letter = answer.strip().rstrip(".)").strip().upper()
    if letter in options:
        return str(options[letter]), letter
    raise SampleError("answer", f"an mcq answer must be one of the option texts or letters "
                                f"({', '.join(map(str, options))}), got {answer!r}")


def _require_id(row: dict) -> str:
    rid = row.get("id")
    if rid is None or str(rid).strip() == "":
        raise SampleError("id", "missing")
    return str(rid)


def _base_dir(file: str) -> Path | None:
    p = Path(file.split("[")[0])
    if p.is_file():
        return p.parent
    if p.is_dir():
        return p
    return None


def iter_samples(source: str | Path, *, split: str | None = None, check_images: bool = False,
                 ) -> Iterator[tuple[str, int, Sample | RowIssue]]:
    """Yield ``(file, row, sample_or_issue)``; with ``check_images`` every image is decoded once."""
    seen_ids: dict[str, tuple[str, int]] = {}
    for file, n, row in iter_rows(source, split=split):
        if isinstance(row, RowIssue):
            yield file, n, row
            continue
        rid = None if row.get("id") is None else str(row.get("id"))
        try:
            sample = row_to_sample(row, base_dir=_base_dir(file))
            if check_images:
                sample.load_images()
        except SampleError as exc:
            yield file, n, RowIssue(file, n, rid, exc.field, exc.message)
            continue
        if sample.id in seen_ids:
            f0, n0 = seen_ids[sample.id]
            yield file, n, RowIssue(file, n, sample.id, "id", f"duplicate id (first seen at {f0}:{n0})")
            continue
        seen_ids[sample.id] = (file, n)
        yield file, n, sample


def load_samples(source: str | Path | None = None, *, split: str | None = None, on_error: OnError = "raise",
                 check_images: bool = False, limit: int | None = None) -> LoadResult:
    """Load a data source into samples. ``source=None`` loads the bundled demo data.

    >>> res = load_samples(split="test")            # the bundled demo test split
    >>> len(res.samples) > 0, res.skipped
    (True, 0)
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    source = BUNDLED_DIR if source is None else source
    samples: list[Sample] = []
    issues: list[RowIssue] = []
    for _file, _n, item in iter_samples(source, split=split, check_images=check_images):
        if isinstance(item, RowIssue):
            if on_error == "raise":
                raise DataError(item)
            issues.append(item)
            continue
        samples.append(item)
        if limit is not None and len(samples) >= limit:
            break
    if issues:
        log.warning("skipped %d bad row(s) of %s (on_error=skip); first: %s", len(issues), source, issues[0])
    return LoadResult(samples=samples, issues=issues)


def validate(source: str | Path | None = None, *, split: str | None = None) -> tuple[int, list[RowIssue]]:
    """Check every row (images decoded too). Returns ``(rows_ok, issues)``; never stops at the first issue."""
    source = BUNDLED_DIR if source is None else source
    ok = 0
    issues: list[RowIssue] = []
    for _file, _n, item in iter_samples(source, split=split, check_images=True):
        if isinstance(item, RowIssue):
            issues.append(item)
        else:
            ok += 1
    return ok, issues


__all__ = ["BUNDLED_DIR", "DataError", "LoadResult", "RowIssue", "iter_json_lines", "iter_rows", "iter_samples", "load_image",
           "load_samples", "row_to_sample", "validate"]
