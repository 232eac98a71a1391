"""Memory of one training process after loading a large image dataset (issue 12 item 6). Prints figures.

Builds (once, under ``--work``) a synthetic 20,000-row image dataset in the MediX RL hub layout (columns
``id``, ``image`` = a list of images, ``source``, ``problem``, ``solution`` = ``"<TAG> answer"``; the layout of
``MBZUAI/medix-rl-data`` as ``medix_r1.data.loaders`` documents it), written with ``datasets.save_to_disk``
(memory-mapped Arrow, as ``load_dataset`` caches a hub dataset) and as one Parquet file. Then, in a fresh
process per case, loads it the way ``medix-r1 train`` does (``load_training_samples`` + ``build_dataset``),
reads one batch of 8 rows (decoding their images), and prints the process's resident memory (RSS) and the
image bytes the samples hold.

Cases: ``lazy`` (today's code: samples hold a reference to their table row, images are read and decoded
when the trainer reads a batch) and ``eager`` (the old behaviour, kept to compare: every sample holds its
images' encoded bytes, as the loader produced them before the change).

Measured on the 2-core CPU machine (20,000 rows, one 160 x 160 JPEG each: 279 MB of encoded images, 281 MB
of Arrow; RSS after loading + one batch; 148 MB of it are the imports):

==============  ==============  ==============
case            save_to_disk    Parquet
==============  ==============  ==============
before (eager)  494 - 498 MB    807 MB
after (lazy)    243 MB          830 MB
==============  ==============  ==============

``before`` was first measured with the code before the change (494 MB for save_to_disk; the Parquet figure
then, 517 MB, was taken with the imports outside the baseline), and ``eager`` reproduces it (498 MB). A
memory-mapped table costs almost nothing more than its text once samples stop copying the images (95 MB
over the imports, against 350 MB). A Parquet file is decompressed into memory by pyarrow whatever the samples
hold (``pyarrow.parquet.read_table`` alone takes this process from 147 to 874 MB; its allocator keeps the
decompression buffers), so its figure stays high: convert large image sets with ``datasets.save_to_disk``
(or let ``load_dataset`` cache them) for training. The old loader also cast the image columns with
``cast_column(Image(decode=False))``, which wrote a second copy of the table (295 MB here) as a cache file
into the ``save_to_disk`` folder on first use; references need no cast.

Run:
``python benchmarks/train_memory.py [--rows 20000] [--work /tmp/medix-train-memory]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TAGS = ("CT_SCAN", "MRI_SCAN", "X_RAY", "ULTRASOUND", "MICROSCOPY")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _jpeg(i: int, size: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(i)
    base = np.linspace(0, 255, size, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 40, (size, size, 3))
    arr = np.clip(base + noise, 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def build(work: Path, rows: int, size: int) -> tuple[Path, Path]:
    """The synthetic dataset as a save_to_disk folder and a Parquet file (built once per rows/size)."""
    import datasets

    datasets.disable_progress_bars()
    folder, parquet = work / f"medix-{rows}-{size}", work / f"medix-{rows}-{size}.parquet"
    if (folder / "dataset_info.json").exists() and parquet.exists():
        return folder, parquet
    work.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({
        "id": datasets.Value("string"), "image": datasets.List(datasets.Image()),
        "source": datasets.Value("string"), "problem": datasets.Value("string"),
        "solution": datasets.Value("string")})

    def gen():
        for i in range(rows):
            tag = TAGS[i % len(TAGS)]
            yield {"id": f"syn-{i}", "image": [{"bytes": _jpeg(i, size), "path": None}], "source": "synthetic",
                   "problem": f"<image>What abnormality is visible in this image (case {i})?",
                   "solution": f"<{tag}> finding number {i % 97}"}

    ds = datasets.Dataset.from_generator(gen, features=features, cache_dir=str(work / "hf-cache"))
    ds.save_to_disk(str(folder))
    ds.to_parquet(str(parquet))
    return folder, parquet


def measure(source: str, mode: str) -> dict:
    """Runs in a fresh process: load like ``medix-r1 train``, read one batch, report RSS."""
    start = rss_mb()
    import datasets
    import PIL.Image  # noqa: F401 - imported before the baseline: the figure is what the data costs

    from medix_r1.prompts import get_template
    from medix_r1.train.dataset import build_dataset, load_training_samples

    datasets.disable_progress_bars()
    imported = rss_mb()
    t0 = time.perf_counter()
    samples, _ = load_training_samples(source, split=None, on_error="raise", limit=None)
    if mode == "eager":  # the old behaviour: every sample holds its images' encoded bytes
        for s in samples:
            s.images = [_bytes_of(img) for img in s.images]
    ds = build_dataset(samples, get_template("medix"), max_pixels=128 * 128)
    batch = ds[:8]
    assert len(batch["images"]) == 8 and batch["images"][0][0].size[0] > 0
    held = sum(len(img.get("bytes") or b"") if isinstance(img, dict) else len(img) if isinstance(img, bytes) else 0
               for s in samples for img in s.images)
    return {"mode": mode, "source": source, "rows": len(samples), "rss_start_mb": round(start),
            "rss_after_imports_mb": round(imported), "rss_after_load_mb": round(rss_mb()),
            "image_bytes_held_mb": round(held / 2**20, 1), "load_s": round(time.perf_counter() - t0, 1)}


def _bytes_of(img) -> dict:
    cell = getattr(img, "cell", None)  # a TableImage reference -> the stored {"bytes", "path"} cell
    return cell() if callable(cell) else img


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=160, help="image edge in pixels (JPEG)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/medix-train-memory"))
    ap.add_argument("--modes", default="lazy,eager")
    ap.add_argument("--_measure", nargs=2, metavar=("SOURCE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure:
        print(json.dumps(measure(*args._measure)))
        return 0
    folder, parquet = build(args.work, args.rows, args.size)
    on_disk = sum(f.stat().st_size for f in folder.glob("*.arrow"))
    print(f"dataset: {args.rows} rows, {args.size}px JPEG, {on_disk / 2**20:.0f} MB of Arrow on disk")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for source in (folder, parquet):
        for mode in args.modes.split(","):
            proc = subprocess.run([sys.executable, __file__, "--_measure", str(source), mode], env=env,
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                print(f"{source.name} {mode}: failed\n{proc.stderr[-2000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{source.suffix or 'save_to_disk':13} {mode:6} RSS {r['rss_after_load_mb']:6} MB "
                  f"(after imports {r['rss_after_imports_mb']} MB), image bytes held by samples "
                  f"{r['image_bytes_held_mb']} MB, load {r['load_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
