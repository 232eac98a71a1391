"""Where medix-r1 keeps caches: one directory, ``$MEDIX_CACHE`` (default ``~/.cache/medix-r1``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Return (and create) ``$MEDIX_CACHE/<parts...>``."""
    root = Path(os.environ.get("MEDIX_CACHE") or Path.home() / ".cache" / "medix-r1").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
