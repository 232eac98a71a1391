"""Where a source's files and images live: a folder, or a zip archive read in place (never extracted).

Images stay references until generation decodes them: :class:`ArchiveMember` (a member of a zip) and
:class:`ArrowImage` (an image cell of a Parquet / hub table) both have ``read_bytes()``, which
:func:`medix_r1.data.schema.load_image` calls. Loading a task therefore reads no image bytes at all.

Image names resolve the way the releases write them: the name as given, under ``image_root``, and else by
its trailing path inside the archive (SLAKE's ``xmlab1/source.jpg`` is the member ``imgs/xmlab1/source.jpg``;
OmniMedVQA's ``Images/X/a.png`` is ``OmniMedVQA/Images/X/a.png``).
"""

from __future__ import annotations

import fnmatch
import threading
import zipfile
from pathlib import Path
from typing import Any

from medix_r1.data.schema import SampleError

_ZIPS: dict[str, ZipTree] = {}
_ZIPS_LOCK = threading.Lock()


def _match(name: str, pattern: str) -> bool:
    """``pattern`` matches the path or a trailing part of it (a release folder may sit above it)."""
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*/" + pattern)


class ZipTree:
    """A zip archive: its member names, indexed by file name for trailing-path lookups; reads are locked
    because several generation threads decode images at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            from medix_r1.eval.sources.base import DataUnavailable

            raise DataUnavailable(f"cannot open the archive: {exc}", where=str(self.path),
                                  fix="download the archive again (it may be truncated)") from None
        self.names = [n for n in self._zip.namelist() if not n.endswith("/")]
        self._by_basename: dict[str, list[str]] = {}
        for n in self.names:
            self._by_basename.setdefault(n.rsplit("/", 1)[-1], []).append(n)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> ZipTree:
        key = str(Path(path).resolve())
        with _ZIPS_LOCK:
            if key not in _ZIPS:
                _ZIPS[key] = cls(key)
            return _ZIPS[key]

    def glob(self, pattern: str) -> list[str]:
        return sorted(n for n in self.names if _match(n, pattern))

    def read(self, member: str) -> bytes:
        with self._lock:
            return self._zip.read(member)

    def find(self, name: str, roots: list[str | None]) -> str | None:
        """The member holding ``name``: exact, under one of ``roots``, else the shortest member ending in it."""
        name = name.replace("\\", "/").lstrip("./")
        wanted = [f"{r.strip('/')}/{name}" for r in roots if r] + [name]
        for w in wanted:
            if w in self._by_basename.get(w.rsplit("/", 1)[-1], ()):
                return w
        for w in wanted:
            hits = [m for m in self._by_basename.get(w.rsplit("/", 1)[-1], ()) if m.endswith("/" + w)]
            if hits:
                return min(hits, key=len)
        return None


class LazyImage:
    """An image that is read only when decoded (``read_bytes``). ``str()`` says where it is."""

    def read_bytes(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError


class ArchiveMember(LazyImage):
    """One image inside a zip archive."""

    def __init__(self, archive: str | Path, member: str):
        self.archive = str(archive)
        self.member = member

    def read_bytes(self) -> bytes:
        tree = ZipTree.open(self.archive)
        try:
            return tree.read(self.member)
        except KeyError:
            raise SampleError("image", f"{self.member!r} is not in the archive {self.archive}") from None

    def __str__(self) -> str:
        return f"{self.archive}!/{self.member}"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArchiveMember) and (self.archive, self.member) == (other.archive, other.member)

    def __hash__(self) -> int:
        return hash((self.archive, self.member))


class ArrowImage(LazyImage):
    """An image cell (``{bytes, path}``, the ``datasets`` Image layout) of an Arrow table, read on demand.
    The table is memory-mapped (Parquet file or the hub's cache), so holding it costs no image memory."""

    def __init__(self, column: Any, index: int, where: str, base: Path | None = None):
        self.column, self.index, self.where, self.base = column, index, where, base

    def read_bytes(self) -> bytes:
        value = self.column[self.index].as_py() or {}
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            p = Path(value["path"])
            p = p if p.is_absolute() or self.base is None else self.base / p
            if p.is_file():
                return p.read_bytes()
            raise SampleError("image", f"image file not found: {p}")
        raise SampleError("image", f"{self.where}: the image cell has neither bytes nor a path")

    def __str__(self) -> str:
        return f"{self.where}[{self.index}]"

    __repr__ = __str__


class ImageResolver:
    """Turns a row's image value (a relative name, a path, bytes, a lazy cell) into something
    :func:`~medix_r1.data.schema.load_image` reads, without reading it.

    A relative name is looked up in the data folder (under ``image_root``, then as given), then in the image
    archive. A name found nowhere stays a path: generation reports it as that sample's bad input.
    """

    def __init__(self, base: Path | None, image_root: str | None, archive: Path | None):
        self.base, self.image_root, self.archive = base, image_root, archive

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        p = Path(value)
        if p.is_absolute():
            return p
        candidates = []
        if self.base is not None:
            if self.image_root:
                candidates.append(self.base / self.image_root / p)
            candidates.append(self.base / p)
            for c in candidates:
                if c.is_file():
                    return c
        if self.archive is not None:
            member = ZipTree.open(self.archive).find(value, [self.image_root])
            # Not found: the archive's error names it (the dataset ships its images there).
            return ArchiveMember(self.archive, member or value)
        return candidates[0] if candidates else p


__all__ = ["ArchiveMember", "ArrowImage", "ImageResolver", "LazyImage", "ZipTree"]
