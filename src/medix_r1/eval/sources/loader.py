"""The entry points: :func:`load_task_data` (one task) and :func:`load_tasks` (a ``--tasks`` selection under
a protocol). Rows are read lazily and mapped one by one, so ``limit`` stops the read (and nothing decodes an
image here: generation does, per sample)."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medix_r1.data.schema import Sample, SampleError
from medix_r1.eval.sources import hub
from medix_r1.eval.sources.archives import ImageResolver, ZipTree
from medix_r1.eval.sources.base import DataUnavailable, LoadIssue, TaskData
from medix_r1.eval.sources.files import (
    glob_files,
    is_split_file,
    read_table,
    saved_dataset_rows,
    split_files,
)
from medix_r1.eval.sources.locate import missing_message, resolve_data_path
from medix_r1.eval.sources.mapping import map_row, passes, row_id
from medix_r1.eval.taskspec import FieldMap, TaskSpec

log = logging.getLogger(__name__)


@dataclass
class RawRow:
    """One row as the source has it, with what it needs to be mapped: where it is, how its image names
    resolve, and the field map of the file it came from."""

    position: str
    row: dict
    where: str
    resolve: ImageResolver
    fields: FieldMap


# --------------------------------------------------------------------------------------------- table sources
@dataclass
class _Table:
    name: str
    rows: Iterator[dict]


def _fields_for(spec: TaskSpec, file_name: str) -> FieldMap:
    for pattern, over in (spec.source.file_fields or {}).items():
        if fnmatch.fnmatchcase(Path(file_name).name, pattern):
            return dataclasses.replace(spec.fields, **over)
    return spec.fields


def _split_names(spec: TaskSpec) -> list[str]:
    return [spec.source.split, *spec.source.split_aliases]


def _zip_split_members(tree: ZipTree, spec: TaskSpec) -> list[str]:
    if spec.source.files:
        return tree.glob(spec.source.files)
    return sorted(n for n in tree.names if is_split_file(n, _split_names(spec)))


def _zip_tables(zip_path: Path, spec: TaskSpec) -> list[_Table]:
    tree = ZipTree.open(zip_path)
    members = _zip_split_members(tree, spec)
    if not members:
        what = spec.source.files or f"file of split {spec.source.split!r}"
        raise DataUnavailable(f"task {spec.name}: found no {what} inside {zip_path}", where=str(zip_path))
    return [_Table(f"{zip_path}!/{m}", _member_rows(tree, m)) for m in members]


def _member_rows(tree: ZipTree, member: str) -> Iterator[dict]:
    # A generator, so a member is read only when its rows are reached (not at all past --limit).
    yield from read_table(member, data=tree.read(member))


def _path_tables(files: list[Path]) -> list[_Table]:
    return [_Table(str(f), read_table(f.name, path=f)) for f in files]


def _beside(folder: Path, pattern: str | None) -> Path | None:
    if not pattern:
        return None
    hits = glob_files(folder, pattern)
    return hits[0] if hits else None


def _local_tables(path: Path, spec: TaskSpec, config: str | None) -> tuple[list[_Table], ImageResolver]:
    src = spec.source
    if path.is_file() and path.suffix.lower() == ".zip":
        return _zip_tables(path, spec), ImageResolver(None, src.image_root, path)
    if path.is_file():
        return _path_tables([path]), ImageResolver(path.parent, src.image_root, _beside(path.parent, src.archive))
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return ([_Table(str(path), saved_dataset_rows(path, src.split))],
                ImageResolver(path, src.image_root, _beside(path, src.archive)))
    folder = path / config if config and (path / config).is_dir() else path
    archive = _beside(path, src.archive)
    resolver = ImageResolver(path, src.image_root, archive)
    files = glob_files(folder, src.files) if src.files else []
    if not files and src.local_files:
        files = glob_files(folder, src.local_files)
    if not files and not src.files:
        files = split_files(folder, _split_names(spec))
        if config and folder == path:
            # No <config>/ folder: the path is that config's own folder, so other configs' folders inside it
            # are not this task's (a cais/mmlu root without clinical_knowledge/ must not yield anatomy rows).
            files = [f for f in files if len(f.relative_to(path).parts) == 1
                     or f.relative_to(path).parts[0] in ("data", *_split_names(spec))]
    if files:
        return _path_tables(files), resolver
    if archive is not None and src.files_in_archive:
        return _zip_tables(archive, spec), resolver
    what = src.files or f"file of split {src.split!r}"
    if config and folder == path:
        what += f" (and no {config}/ folder)"
    raise DataUnavailable(f"task {spec.name}: found no {what} under {folder}", where=str(folder),
                          fix=f"pass --data-dir {spec.name}=PATH with the dataset in its published layout")


def _hub_tables(spec: TaskSpec, config: str | None) -> tuple[list[_Table], ImageResolver]:
    src = spec.source
    archive = hub.archive(spec) if src.archive else None
    if src.files and src.files_in_archive:
        return _zip_tables(archive, spec), ImageResolver(None, src.image_root, archive)
    if src.files:
        files = hub.repo_files(spec, src.files)
        return _path_tables(files), ImageResolver(files[0].parent, src.image_root, archive)
    where = f"{src.hub}" + (f"/{config}" if config else "")
    return [_Table(where, hub.dataset_split_rows(spec, config))], ImageResolver(None, src.image_root, archive)


def iter_raw_rows(spec: TaskSpec, path: Path | None) -> Iterator[RawRow]:
    """Every raw row of a table-format task, in source order, lazily."""
    configs = spec.source.config if isinstance(spec.source.config, list) else [spec.source.config]
    for config in configs:
        if path is not None:
            tables, resolver = _local_tables(path, spec, config)
        elif spec.source.hub:
            tables, resolver = _hub_tables(spec, config)
        else:
            raise DataUnavailable(missing_message(spec))
        prefix = f"{config}-" if len(configs) > 1 and config else ""
        i = 0
        for table in tables:
            fields = _fields_for(spec, table.name)
            for n, row in enumerate(table.rows):
                yield RawRow(f"{prefix}{spec.source.split}-{i}", row, f"{table.name}[{n}]", resolver, fields)
                i += 1


# --------------------------------------------------------------------------------------------- entry points
def _load_canonical(spec: TaskSpec, path: Path | None, data: TaskData, add) -> None:
    from medix_r1.data import BUNDLED_DIR, RowIssue, iter_samples

    source = path if path is not None else (BUNDLED_DIR if spec.source.bundled else None)
    if source is None:
        raise DataUnavailable(missing_message(spec))
    try:
        for file, n, item in iter_samples(source, split=spec.source.split if source == BUNDLED_DIR else None):
            if isinstance(item, RowIssue):
                item = LoadIssue(item.id or f"row-{n}", f"{file}:{n}", item.field, item.message)
            data.rows_read += 1
            if add(item):
                return
    except DataUnavailable:
        raise
    except Exception as exc:
        raise DataUnavailable(f"task {spec.name}: cannot read {source}: {exc}", where=str(source)) from exc
    data.row_count_checked = True


def load_task_data(spec: TaskSpec, data_dirs: dict[str, str | Path] | str | Path | None = None,
                   limit: int | None = None, protocol: str | None = None) -> TaskData:
    """Load a task's samples (and the rows that failed) from its local path, the bundled data or the hub.

    ``protocol`` (``default`` / ``paper``) loads that variant of the task (:meth:`TaskSpec.for_protocol`);
    ``None`` keeps ``spec`` as given.

    ``limit`` keeps the first N rows (after filtering) and stops reading there. Ids must be unique within a
    task: a repeated id is an issue, not a silent overwrite. A full read whose row count differs from the
    task's ``rows:`` logs a warning and records it in :meth:`TaskData.load_report`.
    """
    if protocol is not None:
        spec = spec.for_protocol(protocol)
    path = resolve_data_path(spec, data_dirs)
    data = TaskData(spec=spec, origin=str(path) if path else (spec.source.hub or "bundled"),
                    expected_rows=spec.rows)
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
        _load_canonical(spec, path, data, add)
    else:
        stopped = False
        for raw in iter_raw_rows(spec, path):
            row = raw.row
            if not isinstance(row, dict):
                data.rows_read += 1
                stopped = add(LoadIssue(f"row-{raw.position}", raw.where, None, "a row must be a mapping"))
            elif "__issue__" in row:
                data.rows_read += 1
                stopped = add(LoadIssue(f"row-{raw.position}", raw.where, None, row["__issue__"]))
            elif passes(spec.source.filter, row):
                data.rows_read += 1
                stopped = add(_map(spec, raw))
            if stopped:
                break
        data.row_count_checked = not stopped
    if data.rows_differ:
        msg = (f"task {spec.name}: read {data.rows_read} rows from {data.origin}, the release has "
               f"{data.expected_rows}")
        data.warnings.append(msg)
        log.warning("%s", msg)
    if data.issues:
        log.warning("task %s: %d row(s) could not be read; first: %s", spec.name, len(data.issues), data.issues[0])
    return data


def _map(spec: TaskSpec, raw: RawRow) -> Sample | LoadIssue:
    try:
        return map_row(spec, raw.row, raw.position, raw.resolve, raw.fields)
    except SampleError as exc:
        rid = row_id(raw.fields, raw.row, f"row-{raw.position}")
        return LoadIssue(rid, raw.where, exc.field, exc.message)


def load_tasks(tasks, data_dirs: dict | str | Path | None = None, *, limit: int | None = None,
               skip_missing: bool = False, protocol: str = "default") -> list[TaskData]:
    """Resolve ``tasks`` (names, groups, JSONL paths or specs) under ``protocol`` and load their data.

    Missing data raises one :class:`DataUnavailable` listing every missing task and how to supply it, unless
    ``skip_missing`` (those tasks are then left out, with a warning).
    """
    from medix_r1.eval.registry import resolve_tasks

    loaded, missing = [], []
    for spec in resolve_tasks(tasks, protocol=protocol):
        try:
            loaded.append(load_task_data(spec, data_dirs, limit=limit))
        except DataUnavailable as exc:
            missing.append(str(exc))
    if missing:
        if not skip_missing or not loaded:
            listing = "\n  - ".join(missing)
            raise DataUnavailable(f"cannot load the data of {len(missing)} task(s):\n  - {listing}")
        for m in missing:
            log.warning("skipping: %s", m)
    return loaded


__all__ = ["RawRow", "iter_raw_rows", "load_task_data", "load_tasks"]
