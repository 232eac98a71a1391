"""Append-only JSONL records keyed by (task, sample id): how the eval phases survive crashes and SIGKILL.

Each finished sample is one line, written with a single ``write`` on an ``O_APPEND`` descriptor and then
``fsync``-ed (concurrent appends share one ``fsync``: group commit), so a killed process loses at most the
samples still in flight. A kill in the middle of a write
can leave a torn last line (no trailing newline); opening the store for appending cuts it off (it belongs to
a sample that was not finished, which is then redone). A malformed line anywhere else is real corruption and
raises, naming the file and line.

Reading keeps the *last* record per key: a failed attempt (status ``error``) followed by a success on a
later run resolves to the success without rewriting the file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError

log = logging.getLogger(__name__)

Key = tuple[str, str]


class StoreCorrupt(InputError, RuntimeError):
    """A line in the middle of a results file is not JSON (a torn *last* line is repaired instead)."""


def record_key(rec: dict) -> Key:
    return str(rec["task"]), str(rec["id"])


class JsonlStore:
    """One append-only JSONL file of records with ``task`` and ``id`` fields.

    >>> import tempfile, pathlib
    >>> s = JsonlStore(pathlib.Path(tempfile.mkdtemp()) / "g.jsonl")
    >>> s.append({"task": "t", "id": "1", "status": "error"}); s.append({"task": "t", "id": "1", "status": "ok"})
    >>> s.latest()[("t", "1")]["status"]
    'ok'
    """

    def __init__(self, path: str | Path, *, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._written = 0  # async writes so far, and the last one an fsync is known to cover
        self._synced = 0
        self._sync_task = None
        self.repaired_bytes = 0

    # ------------------------------------------------------------------ reading
    def __iter__(self) -> Iterator[dict]:
        return iter(self.read())

    def read(self) -> list[dict]:
        """All complete records in file order (a torn last line is ignored, not repaired)."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        torn = lines[-1]  # b"" when the file ends with a newline
        out = []
        for n, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StoreCorrupt(f"{self.path}:{n}: not a JSON record ({exc.msg}); the file was edited or "
                                   "corrupted: move it away to start this phase over") from None
            out.append(rec)
        if torn.strip():
            log.warning("%s: ignoring a torn last line (%d bytes) left by an interrupted write",
                        self.path, len(torn))
        return out

    def latest(self) -> dict[Key, dict]:
        """The last record per (task, id)."""
        out: dict[Key, dict] = {}
        for rec in self.read():
            out[record_key(rec)] = rec
        return out

    def count_by_key(self) -> dict[Key, int]:
        counts: dict[Key, int] = {}
        for rec in self.read():
            k = record_key(rec)
            counts[k] = counts.get(k, 0) + 1
        return counts

    # ------------------------------------------------------------------ writing
    def _repair(self) -> None:
        """Cut a torn last line (an interrupted write) so the next record starts on its own line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            # Walk back to the last newline; everything after it is an unfinished record.
            pos, chunk = size, 4096
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                buf = fh.read(pos - start)
                idx = buf.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            else:
                keep = 0
            if keep < size:
                fh.truncate(keep)
                fh.flush()
                os.fsync(fh.fileno())
                self.repaired_bytes = size - keep
                log.warning("%s: removed a torn last line (%d bytes) left by an interrupted run",
                            self.path, size - keep)

    def open(self) -> JsonlStore:
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._repair()
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    @staticmethod
    def _encode(records: list[dict[str, Any]]) -> bytes:
        for r in records:
            if "task" not in r or "id" not in r:
                raise ValueError("a record needs 'task' and 'id'")
        return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True, default=str) + "\n"
                       for r in records).encode("utf-8")

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.open()
        with self._lock:
            view = memoryview(data)
            while view:  # a regular file takes it in one write; loop anyway rather than lose a tail
                view = view[os.write(self._fd, view):]

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, durably (``fsync``) before returning."""
        self.append_many([record])

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Write several records with one write and one ``fsync`` (for records decided in bulk)."""
        if not records:
            return
        self._write(self._encode(records))
        if self.fsync:
            os.fsync(self._fd)

    async def aappend(self, record: dict[str, Any]) -> None:
        """:meth:`append` for event loops (see :meth:`aappend_many`)."""
        await self.aappend_many([record])

    async def aappend_many(self, records: list[dict[str, Any]]) -> None:
        """:meth:`append_many` for event loops: the lines are written at once (so records keep their order),
        the ``fsync`` (milliseconds on a real disk) runs in a worker thread so other requests keep flowing."""
        if not records:
            return
        self._write(self._encode(records))
        self._written += 1
        if self.fsync:
            await self._group_fsync(self._written)

    async def _group_fsync(self, upto: int) -> None:
        """Wait until an ``fsync`` that started after write number ``upto`` has finished.

        Group commit: while one ``fsync`` runs, the writers that arrive meanwhile wait for the next one, which
        covers all of them, so N concurrent appends cost about two ``fsync`` calls instead of N.
        """
        import asyncio

        while self._synced < upto:
            task = self._sync_task
            if task is None:
                target = self._written
                task = self._sync_task = asyncio.ensure_future(asyncio.to_thread(os.fsync, self._fd))
                try:
                    await asyncio.shield(task)
                    self._synced = max(self._synced, target)
                finally:
                    if self._sync_task is task:
                        self._sync_task = None
            else:
                await asyncio.wait([task])  # someone else's fsync: then look again

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JsonlStore:  # noqa: PYI034
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["JsonlStore", "Key", "StoreCorrupt", "record_key"]
