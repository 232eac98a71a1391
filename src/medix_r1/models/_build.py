"""Build a cached model folder once, atomically, even when several processes race for it.

Models built from bundled weights (the dequantised SmolLM2, the embedded demo policy, tiny test VLMs) take
seconds to minutes to build, so they are cached under ``$MEDIX_CACHE/models/<name>``. A half-written folder
must never be mistaken for a finished one, and two processes (two pytest workers, a test and a demo) must
not both write into the same folder:

- the builder writes into a temporary sibling folder and renames it into place only when it is complete;
- a marker file inside the folder records the recipe version, so a changed recipe triggers a rebuild;
- a folder counts as complete only with its marker *and* the model files (``config.json`` with a
  ``model_type``, and every safetensors weight file), so a folder that lost them is rebuilt, never loaded;
- an exclusive file lock (``<name>.lock`` beside the folder) makes exactly one process build while the others
  wait for it (under ``torchrun`` / ``accelerate launch`` every rank asks for the model at once); where file
  locks are not available the rename decides (the first complete folder wins, later ones are discarded).

Inside a distributed launch ``save_pretrained`` writes nothing on any rank but 0 (transformers' rule for
checkpoints), while tokenizers and processors still save: a rank-1 builder used to produce a folder without
``config.json`` or weights. :func:`save_model` saves from whichever process holds the build lock.
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
from typing import Any

logger = logging.getLogger(__name__)

MARKER = ".medix-build.json"


def missing_model_files(path: Path) -> list[str]:
    """What a loadable model folder lacks: ``config.json`` (with a ``model_type``) and its safetensors weights."""
    path = Path(path)
    missing = []
    try:
        config = json.loads((path / "config.json").read_text())
        if not isinstance(config, dict) or not config.get("model_type"):
            missing.append("config.json model_type")
    except (OSError, ValueError):
        missing.append("config.json")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            shards = [index.name]
        missing += [s for s in shards if not (path / s).is_file() or (path / s).stat().st_size == 0]
    elif not any(p.stat().st_size > 0 for p in path.glob("*.safetensors")):
        missing.append("*.safetensors weights")
    return missing


def is_complete(path: Path, version: str) -> bool:
    """True when ``path`` holds a finished build of recipe ``version``: the marker and the model files."""
    try:
        info = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == version and not missing_model_files(path)


def save_model(model: Any, out: Path) -> None:
    """``model.save_pretrained(out)`` (safetensors) from any process, also a non-zero rank of a launch.

    Only the process holding the build lock calls this, into its own temporary folder, so lifting
    transformers' "rank 0 writes" rule here cannot make two processes write the same files.
    """
    model.should_save_on_this_rank = lambda is_main_process=True: True
    try:
        model.save_pretrained(str(out), safe_serialization=True)
    finally:
        del model.should_save_on_this_rank


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: rely on rename-wins below
        yield
        return
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process to finish building %s", lock_path.with_suffix(""))
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
            missing = missing_model_files(tmp)
            if missing:
                raise RuntimeError(f"building {target.name} left out {', '.join(missing)}; nothing was cached. "
                                   "This is a bug in medix-r1: please report it with the command you ran.")
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
