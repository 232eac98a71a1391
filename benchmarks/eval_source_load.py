"""Eval source loading: time and peak memory of loading a PathVQA-sized hub split (6,719 rows, one JPEG each)
lazily, in full and with a limit, beside materialising every row as ``datasets`` does by default (which
decodes every image). Prints the figures; nothing is downloaded (the split is written to a temporary folder
in the hub's Parquet layout and served as if it came from the hub).

    .venv/bin/python benchmarks/eval_source_load.py
    .venv/bin/python benchmarks/eval_source_load.py --rows 2000 --size 512

Each measurement runs in its own process so that peak RSS is its own.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_split(path: Path, rows: int, size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    data = []
    for i in range(rows):
        buf = io.BytesIO()
        Image.effect_noise((size, size), 20 + i % 50).convert("RGB").save(buf, "JPEG", quality=75)
        data.append({"image": {"bytes": buf.getvalue(), "path": f"test_{i:05d}.jpg"}, "question": f"q{i}?",
                     "answer": "yes" if i % 2 else "hematoxylin and eosin"})
    table = pa.Table.from_pylist(data, schema=pa.schema([("image", image), ("question", pa.string()),
                                                         ("answer", pa.string())]))
    features = {"image": {"_type": "Image"}, "question": {"dtype": "string", "_type": "Value"},
                "answer": {"dtype": "string", "_type": "Value"}}
    pq.write_table(table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}})}),
                   path)


def measure(path: str, mode: str) -> None:
    import datasets
    import pyarrow.parquet as pq

    from medix_r1.eval.registry import get_task
    from medix_r1.eval.sources import load_task_data

    ds = datasets.Dataset(pq.read_table(path, memory_map=True))
    datasets.load_dataset = lambda *a, **k: ds  # the hub route, served from the local split
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if mode == "materialise":
        n = len([ds[i] for i in range(len(ds))])
    else:
        n = load_task_data(get_task("path_vqa"), limit=None if mode == "lazy" else int(mode)).n
    seconds = time.perf_counter() - t
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    label = {"materialise": "every row materialised (images decoded)", "lazy": "lazy, full split"}.get(
        mode, f"lazy, --limit {mode}")
    print(f"{label:<42} {n:>6} samples  {seconds:7.2f} s  peak RSS +{grown:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=6719)
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test-00000-of-00001.parquet"
        make_split(path, args.rows, args.size)
        print(f"split: {args.rows} rows of {args.size}x{args.size} JPEG, {path.stat().st_size / 2**20:.1f} MiB")
        for mode in ("materialise", "lazy", str(args.limit)):
            subprocess.run([sys.executable, __file__, "--measure", str(path), mode], check=True)


if __name__ == "__main__":
    main()
