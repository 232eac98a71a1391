"""Build a cached model folder once, atomically, even when several processes race for it.

Models built from bundled weights (the dequantised SmolLM2, the embedded demo policy, tiny test VLMs) take
seconds to minutes to build, so they are cached under ``$MEDIX_CACHE/models/<name>``. A half-written folder
must never be mistaken for a finished one, and two processes (two pytest workers, a test and a demo) must
not both write into the same folder:

- the builder writes into a temporary sibling folder and renames it into place only when it is complete;
- a marker file inside the folder records the recipe version, so a changed recipe triggers a rebuild;
- an exclusive file lock (``<name>.lock`` beside the folder) serialises builders; where file locks are not
  available the rename decides (the first complete folder wins, later ones are discarded).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER = ".medix-build.json"


def is_complete(path: Path, version: str) -> bool:
    """True when ``path`` holds a finished build of recipe ``version``."""
    try:
        info = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == version


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: rely on rename-wins below
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build_once(target: Path, version: str, build: Callable[[Path], dict | None]) -> Path:
    """Return ``target``, building it with ``build(tmp_dir)`` first unless a complete build is there.

    ``build`` writes the whole folder into the empty directory it is given and may return a dict of facts
    (sizes, timings) that is stored in the marker file.
    """
    target = Path(target)
    if is_complete(target, version):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f"{target.name}.lock"):
        if is_complete(target, version):  # another process built it while we waited for the lock
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            start = time.perf_counter()
            facts = build(tmp) or {}
            facts = {"version": version, "build_seconds": round(time.perf_counter() - start, 2), **facts}
            (tmp / MARKER).write_text(json.dumps(facts, indent=1))
            if target.exists():  # stale: an older recipe, or an empty folder left by someone else
                logger.info("replacing stale model folder %s", target)
                old = target.parent / f".{target.name}.old-{os.getpid()}"
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, target)
            except OSError:
                # Lost a lock-free race: someone else's complete folder is in place; keep theirs.
                if not is_complete(target, version):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built %s in %.1f s", target, facts["build_seconds"])
    return target
