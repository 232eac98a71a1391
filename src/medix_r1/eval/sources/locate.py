"""Where a task's local data is: ``--data-dir`` (per task, or one root folder), ``source.path`` or the
``source.env`` variable. ``None`` means the hub (or the bundled data)."""

from __future__ import annotations

import os
from pathlib import Path

from medix_r1.eval.sources.base import DataUnavailable
from medix_r1.eval.sources.files import TABLE_SUFFIXES
from medix_r1.eval.taskspec import TaskSpec


def resolve_data_path(spec: TaskSpec, data_dirs: dict[str, str | Path] | str | Path | None = None) -> Path | None:
    """Where a task's local data is, or ``None`` to use the hub / bundled data.

    ``data_dirs`` is either a mapping task name -> path, or one root folder in which ``<root>/<task name>``
    (a file with any supported suffix, a zip, or a folder) is looked up. Then ``source.path``, then
    ``$source.env``.
    """
    if isinstance(data_dirs, dict):
        if spec.name in data_dirs:
            return _existing(Path(data_dirs[spec.name]).expanduser(), spec, "--data-dir")
        root = data_dirs.get("*")
    else:
        root = data_dirs
    if root:
        root = Path(root).expanduser()
        for cand in [root / spec.name, *[root / f"{spec.name}{s}" for s in (*TABLE_SUFFIXES, ".zip")]]:
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
        raise DataUnavailable(f"task {spec.name}: {how} points to {path}, which does not exist", where=how,
                              fix=f"pass --data-dir {spec.name}=PATH with an existing file or folder")
    return path


def missing_message(spec: TaskSpec) -> str:
    msg = f"task {spec.name}: no local data given"
    if spec.source.credentials:
        msg += f". {spec.source.credentials.strip()}"
    how = f"--data-dir {spec.name}=PATH"
    if spec.source.env:
        how += f" or set ${spec.source.env}=PATH"
    return msg + f" Then pass {how}."


__all__ = ["missing_message", "resolve_data_path"]
