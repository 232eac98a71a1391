"""Summaries and previews of a dataset: the library side of ``medix-r1 data stats`` and ``data show``.

>>> from medix_r1.data import load_samples
>>> stats = compute_stats(load_samples().samples)      # the bundled demo data
>>> stats["rows"] == sum(stats["split"].values())
True
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medix_r1.data.schema import Sample, SampleError

log = logging.getLogger(__name__)

TEXT_ONLY = "(text-only)"


def compute_stats(samples: Iterable[Sample]) -> dict[str, Any]:
    """Counts by modality, answer type, source and split, and with/without image.

    Returns ``{"rows": n, "modality": {...}, "answer_type": {...}, "source": {...}, "split": {...},
    "image": {"with image": a, "text only": b}, "images": distinct image paths}``; each count dict is
    sorted by decreasing count, then name.
    """
    rows = 0
    by: dict[str, Counter] = {k: Counter() for k in ("modality", "answer_type", "source", "split", "image")}
    paths: set[str] = set()
    for s in samples:
        rows += 1
        by["modality"][s.modality or TEXT_ONLY] += 1
        by["answer_type"][s.answer_type] += 1
        by["source"][s.source or "(none)"] += 1
        by["split"][s.split or "(none)"] += 1
        by["image"]["with image" if s.has_image else "text only"] += 1
        paths.update(str(i) for i in s.images if isinstance(i, (str, Path)))
    out: dict[str, Any] = {"rows": rows}
    for key, counter in by.items():
        out[key] = dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
    out["images"] = len(paths)
    return out


def format_stats(stats: dict[str, Any], title: str = "") -> str:
    """A plain-text report: one small two-column table per breakdown, with percentages."""
    total = stats["rows"] or 1
    lines = [title] if title else []
    lines.append(f"rows: {stats['rows']}    distinct image files: {stats['images']}")
    for key, label in (("split", "split"), ("modality", "modality"), ("answer_type", "answer type"),
                       ("source", "source"), ("image", "image")):
        counts = stats[key]
        width = max([len(label), *(len(str(k)) for k in counts)])
        lines.append("")
        lines.append(f"{label:<{width}}  {'rows':>6}  {'share':>6}")
        lines.append(f"{'-' * width}  {'-' * 6}  {'-' * 6}")
        for name, n in counts.items():
            lines.append(f"{name:<{width}}  {n:>6}  {100.0 * n / total:>5.1f}%")
    return "\n".join(lines)


def render_preview(sample: Sample, template) -> str:
    """The prompt a model would see for ``sample`` (``template.render_plain``), with the reference below it."""
    header = (f"=== {sample.id}  [{sample.split or '-'} | {sample.modality or 'text-only'} | "
              f"{sample.answer_type} | {sample.source or '-'}]")
    parts = [header]
    for msg in template.render_plain(sample):
        parts.append(f"--- {msg['role']}")
        parts.append(msg["content"])
    parts.append(f"--- reference: {sample.reference_tagged()}")
    return "\n".join(parts)


def save_thumbnails(samples: Sequence[Sample], out_dir: str | Path, size: int = 256) -> list[Path]:
    """Save each sample's images as ``<out_dir>/<id>_<k>.png`` thumbnails (longest side ``size``).

    Images that cannot be decoded are logged and skipped (``medix-r1 data validate`` reports them).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for s in samples:
        try:
            images = s.load_images()
        except SampleError as exc:
            log.warning("sample %s: %s", s.id, exc)
            continue
        for k, img in enumerate(images):
            thumb = img.copy()
            thumb.thumbnail((size, size))
            path = out / f"{_safe(s.id)}_{k}.png"
            thumb.save(path)
            written.append(path)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]


__all__ = ["compute_stats", "format_stats", "render_preview", "save_thumbnails"]
