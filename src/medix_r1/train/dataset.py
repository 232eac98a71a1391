"""Samples -> the dataset TRL's ``GRPOTrainer`` reads.

TRL wants a ``datasets.Dataset`` whose rows hold a conversational ``prompt`` and, for VLMs, an ``images`` list
of PIL images; every other column reaches the reward functions as a keyword argument. The reward functions
read ``question``, ``answer``, ``modality`` and ``answer_type``, so those columns are always present.

Images are never held as bytes: a sample loaded from a table (Parquet, a ``save_to_disk`` folder, a hub
dataset) holds a reference to its row (:class:`~medix_r1.data.table_images.TableImage`: the table, row and
column), a JSONL sample the image's path. The Arrow table built here holds only small columns (a row index
and the text fields); the prompt is rendered with the recipe's template and the images are read, decoded and
size-bounded when the trainer's data loader reads a batch (``set_transform``), so every training process
holds the text of the dataset, not its images (``benchmarks/train_memory.py`` measures it). A Parquet file is
still decompressed into memory by pyarrow when it is read; large image sets train leaner from a
``save_to_disk`` folder or a hub dataset, which are memory-mapped. An image that
cannot be decoded raises :class:`TrainingDataError` naming the sample id, its source and the field.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from medix_r1.data import Sample, SampleError, load_samples
from medix_r1.errors import InputError
from medix_r1.prompts import PromptTemplate

log = logging.getLogger(__name__)


class TrainingDataError(InputError, ValueError):
    """A training sample cannot be used (bad image, empty data, prompt too long...). Says which and how to fix."""


def fit_pixels(image, min_pixels: int | None, max_pixels: int | None):
    """Resize ``image`` (keeping its aspect ratio) so that its area lies in ``[min_pixels, max_pixels]``.

    >>> from PIL import Image
    >>> fit_pixels(Image.new("RGB", (4096, 1024)), 512 * 512, 2048 * 2048).size
    (4096, 1024)
    >>> fit_pixels(Image.new("RGB", (100, 50)), 512 * 512, None).size
    (725, 362)
    """
    w, h = image.size
    area = w * h
    scale = 1.0
    if max_pixels is not None and area > max_pixels:
        scale = math.sqrt(max_pixels / area)
    elif min_pixels is not None and area < min_pixels:
        scale = math.sqrt(min_pixels / area)
    if scale == 1.0:
        return image
    from PIL import Image

    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


@dataclass
class DatasetReport:
    """What became of the loaded samples: how many were kept, skipped (bad rows) or dropped (too long)."""

    source: str
    loaded: int = 0
    skipped_rows: int = 0
    dropped_no_image: int = 0
    dropped_too_long: int = 0
    with_images: int = 0
    first_issues: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.loaded - self.dropped_no_image - self.dropped_too_long


def _row_columns(sample: Sample, index: int) -> dict[str, Any]:
    return {
        "_row": index,
        "id": sample.id,
        "question": sample.question,
        "answer": sample.answer,
        "modality": sample.modality,
        "answer_type": sample.answer_type,
        "source": sample.source,
    }


class _RenderRows:
    """The ``set_transform`` function: render prompts and decode images of a batch of rows on access."""

    def __init__(self, samples: list[Sample], template: PromptTemplate, min_pixels: int | None,
                 max_pixels: int | None, source: str):
        self.samples = samples
        self.template = template
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.source = source

    def images_of(self, sample: Sample) -> list:
        try:
            images = sample.load_images()
        except SampleError as exc:
            raise TrainingDataError(
                f"{self.source}: sample id={sample.id} field={exc.field}: {exc.message}. Fix or remove the row "
                "(`medix-r1 data validate` lists every bad row), or set data.on_error: skip together with "
                "an image check") from exc
        return [fit_pixels(img, self.min_pixels, self.max_pixels) for img in images]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = {k: list(v) for k, v in batch.items() if k != "_row"}
        prompts, images = [], []
        for row in batch["_row"]:
            sample = self.samples[row]
            prompts.append(self.template.render(sample))
            images.append(self.images_of(sample))
        out["prompt"] = prompts
        out["images"] = images
        return out


def build_dataset(samples: list[Sample], template: PromptTemplate, *, min_pixels: int | None = None,
                  max_pixels: int | None = None, source: str = "data"):
    """A ``datasets.Dataset`` of TRL rows (``prompt``, ``images``, ``question``, ``answer``, ``modality``,
    ``answer_type``, ``id``, ``source``) rendered lazily from ``samples``."""
    import datasets

    if not samples:
        raise TrainingDataError(f"{source}: no usable samples (check data.train / data.split / data.limit)")
    columns = [_row_columns(s, i) for i, s in enumerate(samples)]
    features = datasets.Features({
        "_row": datasets.Value("int64"),
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "modality": datasets.Value("string"),
        "answer_type": datasets.Value("string"),
        "source": datasets.Value("string"),
    })
    ds = datasets.Dataset.from_list(columns, features=features)
    ds.set_transform(_RenderRows(samples, template, min_pixels, max_pixels, source))
    return ds


def _is_hub_id(source: str) -> bool:
    from pathlib import Path

    return "/" in source and not source.startswith((".", "/", "~")) and not Path(source).exists()


def load_training_samples(source: str | None, *, split: str | None, on_error: str, limit: int | None,
                          image_only: bool = False, offline_ok: bool = False,
                          ) -> tuple[list[Sample], DatasetReport | None]:
    """Load samples with the foundation's loaders (``source`` ``"bundled"`` or ``None``: the bundled demo data).

    With ``offline_ok`` (``--dry-run``), a hub dataset that cannot be reached gives ``([], None)`` and a
    warning instead of an error: a GPU recipe is validated on a machine that cannot download its data.
    """
    from medix_r1.data import DataError

    src = None if source in (None, "bundled") else source
    try:
        result = load_samples(src, split=split, on_error=on_error, limit=limit)
    except DataError as exc:
        if offline_ok and src is not None and _is_hub_id(src) and exc.issue.row is None:
            log.warning("hub dataset %s not reachable here (%s); its rows were not checked", src, exc)
            return [], None
        raise
    report = DatasetReport(source=str(source or "bundled"), loaded=len(result.samples),
                           skipped_rows=result.skipped, first_issues=[str(i) for i in result.issues[:5]],
                           with_images=sum(1 for s in result.samples if s.has_image))
    samples = result.samples
    if image_only:
        samples = [s for s in samples if s.has_image]
        report.dropped_no_image = report.loaded - len(samples)
    if not samples:
        raise TrainingDataError(
            f"{report.source} (split={split!r}): no samples loaded"
            + (f"; {report.skipped_rows} bad row(s), first: {report.first_issues[0]}" if report.first_issues else "")
            + (f"; {report.dropped_no_image} without an image (data.image_only)" if image_only else "")
            + ". Check data.train and data.split")
    return samples, report


def drop_long_prompts(samples: list[Sample], template: PromptTemplate, tokenizer, max_tokens: int | None,
                      report: DatasetReport) -> list[Sample]:
    """Drop samples whose rendered prompt (text only, chat template applied) exceeds ``max_tokens`` tokens.

    Images are bounded separately by ``model.max_pixels``; counting their tokens would need every image
    decoded. Dropped samples are counted in ``report`` and logged, never silently.
    """
    if max_tokens is None or tokenizer is None:
        return samples
    kept = []
    for sample in samples:
        messages = template.render_plain(sample)
        try:
            ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            n = len(ids)
        except Exception:  # noqa: BLE001 - no (usable) chat template: count the plain text instead
            n = len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])
        if n > max_tokens:
            report.dropped_too_long += 1
            if len(report.first_issues) < 5:
                report.first_issues.append(f"id={sample.id}: prompt has {n} tokens > data.max_prompt_length "
                                           f"{max_tokens}")
            continue
        kept.append(sample)
    if report.dropped_too_long:
        log.warning("%s: dropped %d of %d samples whose prompt is longer than data.max_prompt_length=%d tokens",
                    report.source, report.dropped_too_long, len(samples), max_tokens)
    if not kept:
        raise TrainingDataError(f"{report.source}: every prompt is longer than data.max_prompt_length="
                                f"{max_tokens} tokens; raise it")
    return kept
