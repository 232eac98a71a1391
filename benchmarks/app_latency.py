"""App latency: start to ready, first streamed token of the embedded policy, and paging a 1,000-sample run.

    .venv/bin/python benchmarks/app_latency.py
    .venv/bin/python benchmarks/app_latency.py --samples 1000 --tokens 32 --json latency.json

What is measured (each against a real `medix-r1 app` process on 127.0.0.1, through gradio_client):

- **ready**: from starting the process to its "app ready" line (the page answers from then on);
- **first token**: from sending an Ask request to the first streamed piece of the reply of the embedded
  policy, three ways: *cold* (the first request after start: loads the policy, then generates), *after
  upload* (the Ask tab starts loading the policy when an image is uploaded; the request follows a 5 s pause,
  a person typing the question) and *warm* (policy already loaded);
- **paging**: a 1,000-sample eval run with one image each (a real `eval run` against scripted loopback
  servers): the first page of the sample browser (reads the records), the next call (cached), a filtered
  page, the last page; and in-process, the number of images decoded to show one page and one sample.

Reports `uptime`'s load average with the figures: the development machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def first_token(client, image: str, question: str, tokens: int) -> tuple[float, float, str]:
    """(seconds to the first non-empty streamed reply, seconds to the end, the reply)."""
    from gradio_client import handle_file

    t0 = time.perf_counter()
    job = client.submit("embedded", "", "", False, handle_file(image), question, "", "", "", tokens, api_name="/ask")
    first = None
    for out in job:
        if first is None and out and out[0]:
            first = time.perf_counter() - t0
    final = job.result()
    total = time.perf_counter() - t0
    if final[1].startswith("**Error"):
        raise RuntimeError(final[1])
    return (first if first is not None else total), total, final[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=1000, help="samples in the paging run (default 1000)")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens per answer (default 32)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from gradio_client import Client, handle_file

    from medix_r1.app import runs as runs_mod
    from medix_r1.data import BUNDLED_DIR
    from medix_r1.testing.app_runs import AppProcess, make_eval_run, make_image_task

    fig: dict = {"load_average_before": load_average(), "cpus": os.cpu_count()}
    image = str(BUNDLED_DIR / "images" / "ct-chest.png")
    question = "What imaging modality is shown here?"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        task = make_image_task(Path(tmp) / "data", args.samples)
        _, fig["make_run_s"] = timed(make_eval_run, root / "big", tasks=[str(task)], model="bench")

        ready = []
        for _ in range(2):
            with AppProcess(root) as app:
                ready.append(app.ready_s)
        fig["ready_s"] = ready

        with AppProcess(root) as app:
            client = Client(app.url, verbose=False, download_files=False)
            fig["first_token_cold_s"], fig["answer_cold_s"], _ = first_token(client, image, question, args.tokens)
            warm = [first_token(client, image, question, args.tokens) for _ in range(3)]
            fig["first_token_warm_s"] = statistics.median(w[0] for w in warm)
            fig["answer_warm_s"] = statistics.median(w[1] for w in warm)
            fig["reply_example"] = warm[0][2][:200]

        with AppProcess(root) as app:
            client = Client(app.url, verbose=False, download_files=False)
            client.predict(handle_file(image), "embedded", api_name="/preview")
            time.sleep(5.0)
            fig["first_token_after_upload_s"], _, _ = first_token(client, image, question, args.tokens)

            q = {"run": "big", "page": 1}
            res, fig["page_first_s"] = timed(client.predict, json.dumps(q), api_name="/samples")
            fig["n_samples"] = res["total"]
            _, fig["page_cached_s"] = timed(client.predict, json.dumps({**q, "page": 2}), api_name="/samples")
            res, fig["page_filtered_s"] = timed(client.predict, json.dumps({**q, "state": "correct",
                                                                            "modality": "<CT_SCAN>"}),
                                                api_name="/samples")
            fig["filtered_matching"] = res["matching"]
            res, fig["page_last_s"] = timed(client.predict, json.dumps({**q, "page": 10_000}), api_name="/samples")
            fig["pages"] = res["pages"]

        # In-process: how many images one page and one sample decode.
        from PIL import Image

        opened = []
        real_open = Image.open

        def counting_open(*a, **kw):
            opened.append(a[0] if a else kw.get("fp"))
            return real_open(*a, **kw)

        Image.open = counting_open
        try:
            samples, _ = runs_mod.eval_samples(root / "big")
            runs_mod.page_of(samples, 3, 20)
            fig["images_decoded_for_a_page"] = len(opened)
            img, fig["sample_image_first_s"] = timed(runs_mod.sample_image, root / "big", samples[0]["task"],
                                                     samples[45]["id"])
            assert img is not None, "the 1,000-sample run's images were not found"
            _, fig["sample_image_next_s"] = timed(runs_mod.sample_image, root / "big", samples[0]["task"],
                                                  samples[46]["id"])
            fig["images_decoded_for_two_samples"] = len(opened)
        finally:
            Image.open = real_open
    fig["load_average_after"] = load_average()

    print(f"cpus {fig['cpus']}; load average (1, 5, 15 min) before {fig['load_average_before']}, "
          f"after {fig['load_average_after']}")
    print(f"start to ready: {', '.join(f'{s:.1f} s' for s in fig['ready_s'])}")
    print(f"first token, embedded policy ({args.tokens} new tokens max): cold (loads the policy) "
          f"{fig['first_token_cold_s']:.1f} s, after an upload + 5 s {fig['first_token_after_upload_s']:.1f} s, "
          f"warm {fig['first_token_warm_s']:.2f} s; whole answer warm {fig['answer_warm_s']:.1f} s")
    print(f"sample browser on {fig['n_samples']} samples ({fig['pages']} pages): first page "
          f"{fig['page_first_s']:.2f} s, next page {fig['page_cached_s']:.2f} s, filtered "
          f"({fig['filtered_matching']} match) {fig['page_filtered_s']:.2f} s, last page {fig['page_last_s']:.2f} s")
    print(f"images decoded: {fig['images_decoded_for_a_page']} for a page, "
          f"{fig['images_decoded_for_two_samples']} for a page and two samples "
          f"(first sample {fig['sample_image_first_s']:.2f} s incl. reading the task's image list, next "
          f"{fig['sample_image_next_s']:.3f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
