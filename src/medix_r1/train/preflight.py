"""Checks a training run makes before it loads anything heavy, shared by ``--dry-run`` and the real run.

Each failure is a :mod:`medix_r1.errors` error naming the thing and the fix, so a mistake found here costs
seconds, not the minutes of loading a judge, an embedder and a policy first:

- :func:`check_model_source`: the policy exists (an alias, a local model folder, or a hub id in the local
  hub cache; a hub id not in the cache is "not checked" when offline, downloaded at start otherwise);
- :func:`check_output_dir`: the run folder can be written;
- :func:`load_data`: the data loads (a bad row, a wrong column or a missing file is an input error);
- :func:`decode_images`: every image of the data decodes (with a progress bar).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError, UsageError

log = logging.getLogger(__name__)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def check_model_source(name_or_path: str) -> str:
    """Say where the policy ``name_or_path`` comes from, or raise :class:`InputError` when it cannot load.

    Nothing is loaded or built: an alias is reported as such, a folder must hold a ``config.json`` (or an
    adapter), a hub id is looked up in the local hub cache only."""
    from medix_r1.models.loading import ALIASES, PolicyNotFoundError, resolve_policy_source

    name = os.fspath(name_or_path)
    if name in ALIASES:
        return f"alias {name!r} (built from bundled weights on first use)"
    try:
        source = resolve_policy_source(name)
    except PolicyNotFoundError as exc:
        raise InputError(str(exc), where="model.name_or_path") from None
    if Path(source).expanduser().is_dir():
        return f"local folder {source}"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return f"hub id {source} (in the local hub cache)"
    if _offline():
        return f"hub id {source}: not checked: offline (HF_HUB_OFFLINE is set and it is not in the local cache)"
    return f"hub id {source}: not in the local hub cache, downloaded at start"


def check_output_dir(out: Path) -> None:
    """Raise :class:`InputError` when the run folder ``out`` cannot be created or written. Leaves nothing
    behind: the probe file is a temporary file in ``out`` or in its nearest existing parent."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("the run folder is a file", where=str(out), fix="choose another --output-dir")
    probe_dir = out
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise InputError(f"cannot create the run folder: {probe_dir} is a file", where=str(out),
                         fix="choose another --output-dir")
    try:
        with tempfile.TemporaryFile(dir=probe_dir, prefix=".medix-write-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"the run folder cannot be written ({exc.strerror or exc})", where=str(out),
                         fix="choose a writable --output-dir") from None


def load_data(source: str | None, *, field: str, split: str | None, on_error: str, limit: int | None,
              image_only: bool, offline_ok: bool = False):
    """:func:`medix_r1.train.dataset.load_training_samples`, its data errors turned into :class:`InputError`
    naming the recipe key (``data.train`` / ``data.eval``)."""
    from medix_r1.data import DataError
    from medix_r1.train.dataset import TrainingDataError, load_training_samples

    try:
        return load_training_samples(source, split=split, on_error=on_error, limit=limit,
                                     image_only=image_only, offline_ok=offline_ok)
    except DataError as exc:
        issue = exc.issue
        if issue.row is None:  # the source itself: a missing file, an unreadable folder, an unknown format
            raise InputError(str(exc), where=field, fix=f"check {field} in the recipe (or --set {field}=PATH)") from None
        columns = _table_columns(issue.file) if issue.field and "missing" in issue.message else None
        raise InputError(str(exc) + (f" (the file's columns: {', '.join(columns)})" if columns else ""),
                         where=field,
                         fix="`medix-r1 data validate PATH` lists every bad row; fix them, or set "
                             "data.on_error: skip to train without them (they are counted)") from None
    except TrainingDataError as exc:
        raise InputError(str(exc), where=field) from None


def _table_columns(file: str) -> list[str] | None:
    """The column names of a Parquet file (to show next to a missing-column error), else None."""
    if not str(file).endswith(".parquet") or not Path(file).is_file():
        return None
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(file).names)
    except (OSError, ValueError, ImportError):
        return None


def decode_images(samples: list, *, source: str, progress: bool = True) -> int:
    """Decode every image of ``samples`` (as the collator will); returns how many. The first image that does
    not decode is an :class:`InputError` naming the sample and the field."""
    from medix_r1.data import SampleError

    todo = [s for s in samples if getattr(s, "images", None)]
    total = sum(len(s.images) for s in todo)
    if not total:
        return 0
    bar = _progress(total, progress)
    try:
        for sample in todo:
            try:
                images = sample.load_images()
            except SampleError as exc:
                raise InputError(f"sample id={sample.id} field={exc.field}: {exc.message}", where=source,
                                 fix="fix or remove the row (`medix-r1 data validate PATH` checks every "
                                     "image)") from None
            bar.update(len(images))
            del images
    finally:
        bar.close()
    return total


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="decoding images", unit="img", disable=not enabled, leave=False)


def check_template(name: str):
    """The prompt template ``name``, or a :class:`UsageError` naming ``data.template`` and the valid ones."""
    from medix_r1.prompts import get_template
    from medix_r1.registry import UnknownNameError

    try:
        return get_template(name)
    except UnknownNameError as exc:
        raise UsageError(str(exc), where="data.template") from None
