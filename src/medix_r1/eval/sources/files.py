"""Reading table files in the layouts the releases publish: Parquet (hub shards, image cells left lazy),
JSON Lines (``.jsonl``, and ``.json`` files that hold one object per line such as MedMCQA's ``dev.json``), a
JSON list, a JSON object of rows keyed by id (PubMedQA's ``test_set.json``, keyed by PMID), CSV / TSV, and a
``datasets.save_to_disk`` folder. A file may also be a member of a zip archive.

Rows come out one at a time as dicts; a malformed JSON line becomes a row ``{"__issue__": message}`` so the
loader counts it instead of failing the file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medix_r1.eval.sources.archives import ArrowImage
from medix_r1.eval.sources.base import DataUnavailable

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv")
_BATCH = 512


def _is_image_struct(type_: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(type_) and {type_.field(i).name for i in range(type_.num_fields)} >= {"bytes", "path"}


def iter_arrow_rows(table: Any, where: str, base: Path | None = None) -> Iterator[dict]:
    """Rows of an Arrow table as dicts; image cells (``{bytes, path}`` structs) become :class:`ArrowImage`
    references, so no image is copied out of the (memory-mapped) table here."""
    image_cols = [f.name for f in table.schema if _is_image_struct(f.type)]
    other = [c for c in table.column_names if c not in image_cols]
    null_masks = {c: table.column(c).is_null().to_pylist() for c in image_cols}
    columns = {c: table.column(c) for c in image_cols}
    for start in range(0, table.num_rows, _BATCH):
        chunk = table.slice(start, _BATCH).select(other).to_pylist()
        for offset, row in enumerate(chunk):
            i = start + offset
            for c in image_cols:
                row[c] = None if null_masks[c][i] else ArrowImage(columns[c], i, f"{where}:{c}", base)
            yield row


def _json_rows(text: str, where: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        try:
            one_line = json.loads(first)
        except json.JSONDecodeError:
            one_line = None
        if not isinstance(one_line, dict):
            raise DataUnavailable(f"not valid JSON ({exc.msg} at line {exc.lineno})", where=where,
                                  fix="pass a JSON list, an object of rows keyed by id, or JSON Lines") from None
        return _json_lines(text.splitlines(), where)  # one object per line, in a .json file
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        return [{"_key": k, **v} for k, v in data.items()]  # rows keyed by id (PubMedQA's PMIDs)
    raise DataUnavailable("expected a JSON list of rows, an object of rows keyed by id, or JSON Lines",
                          where=where)


def _json_lines(lines: list[str], where: str) -> list[dict]:
    rows: list[dict] = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                rows.append({"__issue__": f"{where}:{n}: malformed JSON ({exc.msg})"})
    return rows


def read_table(name: str, data: bytes | None = None, path: Path | None = None) -> Iterator[dict]:
    """Rows of one table file, from ``path`` or from its bytes (a zip member named ``name``)."""
    suffix = Path(name).suffix.lower()
    where = str(path or name)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path, memory_map=True) if path is not None else pq.read_table(pa.BufferReader(data))
        yield from iter_arrow_rows(table, where, path.parent if path is not None else None)
        return
    if data is None:
        data = path.read_bytes()
    text = data.decode("utf-8-sig")
    if suffix == ".jsonl":
        yield from _json_lines(text.splitlines(), where)
    elif suffix == ".json":
        yield from _json_rows(text, where)
    elif suffix in (".csv", ".tsv"):
        yield from csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise DataUnavailable(f"unsupported file type {suffix!r}", where=where,
                              fix=f"pass one of {', '.join(TABLE_SUFFIXES)}")


def is_split_file(path: str, splits: list[str]) -> bool:
    """A table file of one of ``splits`` in the hub's naming (``test.jsonl``, ``test-00000-of-00001.parquet``,
    ``test_2.csv``, ``data/train-*.parquet``, ``validation/...``)."""
    p = Path(path)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        return False
    stem = p.name[: -len(p.suffix)]
    return any(stem == s or re.match(rf"^{re.escape(s)}[-_.]", stem) or p.parent.name == s for s in splits)


def split_files(folder: Path, splits: str | list[str]) -> list[Path]:
    """Files of a split (or of any of its names) inside a folder."""
    names = [splits] if isinstance(splits, str) else splits
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and is_split_file(str(p), names)]


def glob_files(folder: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` under ``folder``, or one folder down (a release's own top folder)."""
    hits = sorted(p for p in folder.glob(pattern) if p.is_file())
    return hits or sorted(p for p in folder.glob(f"*/{pattern}") if p.is_file())


def saved_dataset_rows(path: Path, split: str) -> Iterator[dict]:
    """Rows of a ``datasets.save_to_disk`` folder (one split of a DatasetDict)."""
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataUnavailable(f"no split {split!r} (has {', '.join(ds)})", where=str(path))
        ds = ds[split]
    yield from dataset_rows(ds, str(path))


def dataset_rows(ds: Any, where: str) -> Iterator[dict]:
    """Rows of a ``datasets.Dataset`` straight from its Arrow table, images left undecoded."""
    if getattr(ds, "_indices", None) is not None:
        ds = ds.flatten_indices()
    yield from iter_arrow_rows(ds.data.table, where)


__all__ = ["TABLE_SUFFIXES", "dataset_rows", "glob_files", "is_split_file", "iter_arrow_rows", "read_table", "saved_dataset_rows",
           "split_files"]
