"""Reward throughput: one paper RL step (512 prompts x 5 completions = 2,560) against a simulated judge.

A loopback OpenAI-compatible server (medix_r1.testing.openai_stub, in its own process so it does not share
this interpreter's GIL) answers every request after a fixed latency, with a bounded number of concurrent
slots. In one run this prints:

1. the sequential design: one blocking request at a time, as the reference release scores (measured on a
   sample of requests and scaled to the step: at 100 ms a full sequential step takes minutes);
2. medix-r1: ``accuracy_llm`` over the whole step (verdict cache off, injection guard on);
3. the lower bound N x latency / capacity;

then embedding throughput, batched (medix-r1) versus one pair at a time (the reference), and the ratios.
Target at 100 ms latency and 64 slots: medix-r1 >= 20x the sequential design, within 1.5x of the lower bound.

``--cli`` measures the command a user runs instead: ``medix-r1 score`` in its own process on the step written
as JSONL (``accuracy_llm``, cache off, guard on), beside the same bound. Start-up (interpreter, imports, the
judge check, one judge round trip) is measured by the same command on a one-row file and subtracted; the
target is at most 1.15x the bound beyond start-up.

    python benchmarks/reward_throughput.py                       # the paper step
    python benchmarks/reward_throughput.py --latency 0.05 --capacity 32 --json out.json
    python benchmarks/reward_throughput.py --cli                 # through the CLI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from medix_r1.modalities import MODALITY_TAGS
from medix_r1.rewards import Embedder, RewardConfig, RewardSuite
from medix_r1.testing.openai_stub import stub_subprocess

ORGANS = ["liver", "spleen", "left kidney", "right kidney", "pancreas", "gallbladder", "aorta", "left lung",
          "right lung", "heart", "thyroid", "bladder", "uterus", "prostate", "femur", "brain"]
FINDINGS = ["mass", "cyst", "calcification", "abscess", "infarct", "haemorrhage", "fracture", "effusion",
            "nodule", "stenosis", "aneurysm", "laceration"]


def make_step(n_prompts: int, group: int) -> tuple[list[str], dict[str, list]]:
    """``n_prompts x group`` distinct completions and their reference columns (one reference per prompt)."""
    completions, answers, modality, questions = [], [], [], []
    for p in range(n_prompts):
        tag = MODALITY_TAGS[p % len(MODALITY_TAGS)]
        ref = f"{FINDINGS[p % len(FINDINGS)]} of the {ORGANS[(p // len(FINDINGS)) % len(ORGANS)]} (case {p})"
        for g in range(group):
            ans = f"{FINDINGS[(p + g) % len(FINDINGS)]} in the {ORGANS[(p * 7 + g) % len(ORGANS)]}, variant {g}"
            completions.append(f"{tag}<thinking>Looking at the image, sample {p}.{g}.</thinking><answer>{ans}</answer>")
            answers.append(ref)
            modality.append(tag)
            questions.append(f"What is the main finding in case {p}?")
    return completions, {"answer": answers, "modality": modality, "question": questions}


def sequential(url: str, model: str, suite: RewardSuite, completions, cols, sample: int) -> float:
    """Seconds for ``sample`` blocking requests, one after another (the reference's design)."""
    import httpx

    prepared = suite._prepare(completions[:sample], {k: v[:sample] for k, v in cols.items()})
    from medix_r1.judge import JudgeRequest

    prompt = suite.judge.prompt
    with httpx.Client(base_url=url, timeout=60) as client:
        t0 = time.perf_counter()
        for p in prepared:
            msgs = prompt.build(JudgeRequest(p.reference, p.answer, p.question))
            r = client.post("/chat/completions", json={"model": model, "messages": msgs, "max_tokens": 4,
                                                       "temperature": 0})
            prompt.parse(r.json()["choices"][0]["message"]["content"])
        return time.perf_counter() - t0


def concurrent(suite: RewardSuite, completions, cols) -> tuple[float, dict]:
    async def run():
        try:
            t0 = time.perf_counter()
            out = await suite.aaccuracy_llm(completions=completions, **cols)
            return time.perf_counter() - t0, out
        finally:
            await suite.aclose()

    elapsed, out = asyncio.run(run())
    if any(v is None for v in out):
        raise SystemExit(f"{sum(v is None for v in out)} judgements failed: the figures would not mean anything")
    return elapsed, suite.stats.judge.as_dict()


def embedding(completions, cols, pairs: int, per_pair_sample: int) -> dict:
    emb = Embedder("minilm")
    model = emb.load()
    suite = RewardSuite(RewardConfig(components=["accuracy_embed"], embedding_model="minilm"), embedder=emb)
    prepared = suite._prepare(completions[:pairs], {k: v[:pairs] for k, v in cols.items()})
    a = [p.answer for p in prepared]
    b = [p.reference for p in prepared]
    model.encode(["warm up"], show_progress_bar=False)
    t0 = time.perf_counter()
    emb.similarity(a, b)  # batched, each distinct reference once
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for x, y in zip(a[:per_pair_sample], b[:per_pair_sample]):  # the reference: two encode calls per pair
        model.encode([x], show_progress_bar=False)
        model.encode([y], show_progress_bar=False)
    per_pair = (time.perf_counter() - t0) / per_pair_sample * pairs
    return {"pairs": pairs, "batched_s": batched, "per_pair_s_scaled": per_pair, "per_pair_sample": per_pair_sample,
            "batched_pairs_per_s": pairs / batched, "per_pair_pairs_per_s": pairs / per_pair,
            "speedup": per_pair / batched, "model": emb.name}


def cli_run(url: str, model: str, completions, cols, conc: int, workdir: str, tag: str) -> float:
    """Wall-clock seconds of ``medix-r1 score`` (a fresh process) on these completions."""
    inp, out = os.path.join(workdir, f"{tag}.jsonl"), os.path.join(workdir, f"{tag}.out.jsonl")
    with open(inp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": i, "completion": c, "reference": f"{cols['modality'][i]} {cols['answer'][i]}",
                                 "question": cols["question"][i]}) + "\n" for i, c in enumerate(completions))
    cmd = [sys.executable, "-m", "medix_r1.cli", "score", "--input", inp, "--output", out,
           "--components", "accuracy_llm", "--judge-url", url, "--judge-model", model, "--no-cache",
           "--no-progress", "--judge-concurrency", str(conc), "--judge-timeout", "60"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"medix-r1 score exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed


def main_cli(args, completions, cols, n: int, conc: int) -> dict:
    model = "stub-judge"
    with stub_subprocess("YES", latency=args.latency, capacity=args.capacity, model=model) as url, \
            tempfile.TemporaryDirectory(prefix="medix-reward-cli-") as tmp:
        startup = min(cli_run(url, model, completions[:1], cols, conc, tmp, f"one{k}") for k in range(2))
        total = cli_run(url, model, completions, cols, conc, tmp, "step")
    bound = n * args.latency / args.capacity
    beyond = total - startup
    print(f"medix-r1 score (CLI): {n} completions, simulated judge {args.latency * 1000:.0f} ms/request, "
          f"{args.capacity} slots, --judge-concurrency {conc}")
    print(f"  wall clock {total:.2f} s; start-up (one-row run) {startup:.2f} s; beyond start-up {beyond:.2f} s")
    print(f"  lower bound N x latency / cap {bound:.2f} s; beyond start-up / bound: {beyond / bound:.2f}x "
          f"(target <= 1.15x)")
    return {"n": n, "latency_s": args.latency, "capacity": args.capacity, "concurrency": conc,
            "cli_wall_s": total, "cli_startup_s": startup, "cli_beyond_startup_s": beyond, "lower_bound_s": bound,
            "ratio_to_lower_bound": beyond / bound}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=512, help="prompts per step (default 512)")
    ap.add_argument("--group", type=int, default=5, help="completions per prompt (default 5)")
    ap.add_argument("--latency", type=float, default=0.1, help="simulated judge latency in seconds (default 0.1)")
    ap.add_argument("--capacity", type=int, default=64, help="simulated judge slots (default 64)")
    ap.add_argument("--concurrency", type=int, default=None, help="medix-r1 requests in flight (default: capacity)")
    ap.add_argument("--sequential-sample", type=int, default=64,
                    help="requests timed for the sequential design, scaled to the step (default 64)")
    ap.add_argument("--embed-pairs", type=int, default=2560, help="pairs for the batched embedding figure")
    ap.add_argument("--embed-per-pair-sample", type=int, default=100,
                    help="pairs timed one at a time, scaled to --embed-pairs (default 100)")
    ap.add_argument("--skip-embedding", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch CPU threads for the embedding figures (default: torch's choice). On a machine "
                         "shared with other jobs, 1 avoids thread oversubscription, which slows small batches most")
    ap.add_argument("--cli", action="store_true",
                    help="measure `medix-r1 score` in its own process instead (module docstring)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    n = args.prompts * args.group
    completions, cols = make_step(args.prompts, args.group)
    conc = args.concurrency or args.capacity
    if args.cli:
        results = main_cli(args, completions, cols, n, conc)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=2)
        return 0
    model = "stub-judge"
    results: dict = {"n": n, "latency_s": args.latency, "capacity": args.capacity, "concurrency": conc}
    with stub_subprocess("YES", latency=args.latency, capacity=args.capacity, model=model) as url:
        cfg = RewardConfig.from_dict({"components": ["accuracy_llm"], "judge": {
            "url": url, "model": model, "cache": False, "concurrency": conc, "timeout": 60}})
        warm = RewardSuite(cfg)
        asyncio.run(warm.aaccuracy_llm(completions=completions[:conc], **{k: v[:conc] for k, v in cols.items()}))
        seq = sequential(url, model, RewardSuite(cfg), completions, cols, args.sequential_sample)
        seq_step = seq / args.sequential_sample * n
        ours, judge_stats = concurrent(RewardSuite(cfg), completions, cols)
    bound = n * args.latency / args.capacity
    results.update({"sequential_s": seq_step, "sequential_sample": args.sequential_sample, "medix_r1_s": ours,
                    "lower_bound_s": bound, "speedup_vs_sequential": seq_step / ours,
                    "ratio_to_lower_bound": ours / bound, "judge": judge_stats})

    print(f"reward throughput: {n} completions ({args.prompts} prompts x {args.group}), simulated judge "
          f"{args.latency * 1000:.0f} ms/request, {args.capacity} slots; medix-r1 concurrency {conc}")
    print(f"  1. sequential (reference design)  {seq_step:9.1f} s   (timed {args.sequential_sample} requests: "
          f"{seq / args.sequential_sample * 1000:.1f} ms each)")
    print(f"  2. medix-r1 accuracy_llm          {ours:9.2f} s   ({n / ours:.0f} verdicts/s)")
    print(f"  3. lower bound N x latency / cap  {bound:9.2f} s")
    print(f"  speed-up vs sequential: {seq_step / ours:.1f}x (target >= 20x); "
          f"medix-r1 / lower bound: {ours / bound:.2f}x (target <= 1.5x)")
    if not args.skip_embedding:
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        e = embedding(completions, cols, min(args.embed_pairs, n), args.embed_per_pair_sample)
        results["embedding"] = e
        print(f"embedding ({e['model']}, {e['pairs']} pairs): batched {e['batched_s']:.1f} s "
              f"({e['batched_pairs_per_s']:.0f} pairs/s); one pair at a time {e['per_pair_s_scaled']:.1f} s "
              f"({e['per_pair_pairs_per_s']:.0f} pairs/s, timed {e['per_pair_sample']}); "
              f"batched is {e['speedup']:.1f}x faster")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
