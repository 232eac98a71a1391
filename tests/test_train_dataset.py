"""Training samples hold references to their rows, never image bytes (issue 12 item 6).

Regression: every training process loaded every sample with its images' encoded bytes (a 20,000-row image
set cost each process its whole image payload; ``benchmarks/train_memory.py`` has the figures). The fixture is
the MediX RL hub layout (``MBZUAI/medix-rl-data``: ``id``, ``image`` = a list of images, ``source``,
``problem``, ``solution`` = ``"<TAG> answer"``) written with ``datasets.save_to_disk``.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from medix_r1.prompts import get_template
from medix_r1.train.dataset import TrainingDataError, build_dataset, load_training_samples


def _png(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def medix_folder(tmp_path):
    import datasets

    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.List(datasets.Image()),
                                  "source": datasets.Value("string"), "problem": datasets.Value("string"),
                                  "solution": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({
        "id": ["r0", "r1", "r2"],
        "image": [[{"bytes": _png((40, 30), (255, 0, 0)), "path": None}],
                  [{"bytes": _png((30, 40), (0, 255, 0)), "path": None},
                   {"bytes": _png((50, 50), (0, 0, 255)), "path": None}],
                  [{"bytes": b"not an image at all", "path": None}]],
        "source": ["s"] * 3,
        "problem": ["<image> What is shown?", "<image> Compare the two images.", "<image> Broken?"],
        "solution": ["<CT_SCAN> red", "<MRI_SCAN> green and blue", "<X_RAY> none"],
    }, features=features)
    folder = tmp_path / "medix"
    ds.save_to_disk(str(folder))
    return folder


def test_samples_hold_row_references_and_images_decode_at_batch_time(medix_folder):
    samples, report = load_training_samples(str(medix_folder), split=None, on_error="raise", limit=None)
    assert report.loaded == 3 and report.with_images == 3
    held = [img for s in samples for img in s.images]
    assert len(held) == 4 and all(type(img).__name__ == "TableImage" for img in held)
    assert not any(isinstance(img, (bytes, dict)) for img in held)  # no image bytes in any sample
    assert sorted(p.name for p in medix_folder.iterdir() if p.name.startswith("cache-")) == []  # no copy

    ds = build_dataset(samples, get_template("medix"), source=str(medix_folder))
    batch = ds[0:2]  # what the trainer's data loader reads: decoded now
    assert [[im.size for im in imgs] for imgs in batch["images"]] == [[(40, 30)], [(30, 40), (50, 50)]]
    assert batch["images"][1][1].getpixel((0, 0)) == (0, 0, 255)  # the second image of row 1, not the first
    with pytest.raises(TrainingDataError, match=r"sample id=r2 field=images\[0\]"):
        ds[2]
