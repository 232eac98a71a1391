"""Eval throughput: concurrent vs sequential evaluation of the bundled test split against simulated loopback
servers (an OpenAI-compatible generator and judge with a fixed latency per request and a bounded number of
concurrent slots), in one run. Prints both wall times and the lower bound the servers allow.

    .venv/bin/python benchmarks/eval_throughput.py
    .venv/bin/python benchmarks/eval_throughput.py --gen-latency 0.2 --gen-capacity 16 --rounds 1

Both servers run in their own processes (they must not share the client's GIL). The stub policy gives an
answer that no rule can decide, so every sample goes to the judge (``rounds`` sequential calls each).

Lower bound for a phase: requests are served ``capacity`` at a time, each holding a slot for ``latency``, and
a sample's judge rounds are sequential, so generation needs at least ``ceil(N / gen_capacity) * gen_latency``
and judging at least ``max(rounds, ceil(N * rounds / judge_capacity)) * judge_latency``; the phases run one
after the other.

Beside it, in the same run, the loopback floor: the same requests (N generations, then N chains of
``rounds`` judge requests) sent by the same HTTP client with the same concurrency and nothing else (no data,
prompts, records or scoring). The eval's time over that floor is what eval itself adds; over the bound, what
eval and the HTTP client add together. On a busy machine both floors rise; compare figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import tempfile
import time
from pathlib import Path

from medix_r1.clients.openai import OpenAIChatBackend
from medix_r1.eval import load_tasks, run_eval
from medix_r1.eval.generation import openai_generator
from medix_r1.eval.judge_phase import JudgeSettings
from medix_r1.testing.openai_stub import stub_subprocess

POLICY_REPLY = "<OTHER><thinking>Looking at it step by step.</thinking><answer>Probably unremarkable</answer>"


def one_run(tasks: str, gen_url: str, judge_url: str, out: Path, *, concurrency: int, judge_concurrency: int,
            rounds: int) -> tuple[float, dict]:
    generator = openai_generator(gen_url, "sim-policy", concurrency=concurrency, max_retries=0, timeout=60)
    judge = JudgeSettings(backend=OpenAIChatBackend(judge_url, "sim-judge", concurrency=judge_concurrency,
                                                    max_retries=0, timeout=60),
                          cache=None, rounds=rounds, concurrency=judge_concurrency)
    t0 = time.perf_counter()
    res = run_eval(tasks, generator, judge, out, progress=False, bootstrap=200, charts=False)
    return time.perf_counter() - t0, res


async def _raw_loopback(gen_url: str, judge_url: str, n: int, *, concurrency: int, judge_concurrency: int,
                        rounds: int) -> tuple[float, float]:
    """The same requests with the bare client: (generation seconds, judging seconds)."""
    gen = OpenAIChatBackend(gen_url, "sim-policy", concurrency=concurrency, max_retries=0, timeout=60,
                            disable_thinking=False)
    judge = OpenAIChatBackend(judge_url, "sim-judge", concurrency=judge_concurrency, max_retries=0, timeout=60)
    msgs = [[{"role": "user", "content": f"question {i}"}] for i in range(n)]
    try:
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(concurrency)

        async def one_gen(m):
            async with sem:
                return await gen.complete(m, max_tokens=2048, temperature=0.0)

        await asyncio.gather(*(one_gen(m) for m in msgs))
        t1 = time.perf_counter()
        jsem = asyncio.Semaphore(judge_concurrency)

        async def chain(m):
            async with jsem:
                convo = list(m)
                for _ in range(rounds):
                    reply = await judge.complete(convo, max_tokens=24, temperature=0.0)
                    convo = [*convo, {"role": "assistant", "content": reply}, {"role": "user", "content": "again"}]

        await asyncio.gather(*(chain(m) for m in msgs))
        return t1 - t0, time.perf_counter() - t1
    finally:
        await gen.aclose()
        await judge.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="medix-demo", help="tasks to evaluate (default: the bundled test split)")
    ap.add_argument("--gen-latency", type=float, default=0.05, help="generator seconds per request")
    ap.add_argument("--gen-capacity", type=int, default=8, help="generator concurrent slots")
    ap.add_argument("--judge-latency", type=float, default=0.02, help="judge seconds per request")
    ap.add_argument("--judge-capacity", type=int, default=16, help="judge concurrent slots")
    ap.add_argument("--rounds", type=int, default=3, help="judge self-check rounds per sample")
    ap.add_argument("--concurrency", type=int, default=16, help="generation requests in flight (concurrent run)")
    ap.add_argument("--judge-concurrency", type=int, default=32, help="judgements in flight (concurrent run)")
    args = ap.parse_args()

    n = sum(td.n for td in load_tasks(args.tasks))
    judge_calls = n * args.rounds
    gen_lb = math.ceil(n / args.gen_capacity) * args.gen_latency
    judge_lb = max(args.rounds, math.ceil(judge_calls / args.judge_capacity)) * args.judge_latency
    seq_lb = n * args.gen_latency + judge_calls * args.judge_latency

    with contextlib.ExitStack() as stack:
        gen_url = stack.enter_context(stub_subprocess(POLICY_REPLY, latency=args.gen_latency,
                                                      capacity=args.gen_capacity, model="sim-policy"))
        judge_url = stack.enter_context(stub_subprocess('{"score": 1}', latency=args.judge_latency,
                                                        capacity=args.judge_capacity, model="sim-judge"))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        seq_s, seq = one_run(args.tasks, gen_url, judge_url, tmp / "sequential", concurrency=1,
                             judge_concurrency=1, rounds=args.rounds)
        con_s, con = one_run(args.tasks, gen_url, judge_url, tmp / "concurrent", concurrency=args.concurrency,
                             judge_concurrency=args.judge_concurrency, rounds=args.rounds)
        raw_gen, raw_judge = asyncio.run(_raw_loopback(gen_url, judge_url, n, concurrency=args.concurrency,
                                                       judge_concurrency=args.judge_concurrency,
                                                       rounds=args.rounds))

    def phase_s(res: dict) -> str:
        return ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in res["phases"].items())

    same = {k: v["accuracy"] for k, v in seq["tasks"].items()} == {k: v["accuracy"] for k, v in con["tasks"].items()}
    print(f"bundled set: {n} samples ({args.tasks}); judge rounds {args.rounds} -> {judge_calls} judge requests")
    print(f"generator: {args.gen_latency * 1000:.0f} ms/request, {args.gen_capacity} slots; "
          f"judge: {args.judge_latency * 1000:.0f} ms/request, {args.judge_capacity} slots (separate processes)")
    print(f"sequential (1 request in flight):   {seq_s:6.2f} s   [{phase_s(seq)}]   "
          f"lower bound {seq_lb:.2f} s")
    print(f"concurrent ({args.concurrency} gen / {args.judge_concurrency} judge in flight): {con_s:6.2f} s   "
          f"[{phase_s(con)}]   lower bound {gen_lb + judge_lb:.2f} s "
          f"(generate {gen_lb:.2f} + judge {judge_lb:.2f})")
    raw = raw_gen + raw_judge
    print(f"loopback floor (same requests, bare client, same run): {raw:6.2f} s   [generate {raw_gen:.2f} s, "
          f"judge {raw_judge:.2f} s]")
    bound = gen_lb + judge_lb
    print(f"concurrent eval = {con_s / bound:.2f}x the bound, {con_s / raw:.2f}x the loopback floor; speed-up "
          f"{seq_s / con_s:.1f}x over sequential; identical accuracies: {same}")
    print(json.dumps({"n": n, "sequential_s": round(seq_s, 3), "concurrent_s": round(con_s, 3),
                      "lower_bound_concurrent_s": round(bound, 3), "loopback_floor_s": round(raw, 3),
                      "x_bound": round(con_s / bound, 3), "x_loopback_floor": round(con_s / raw, 3),
                      "lower_bound_sequential_s": round(seq_lb, 3)}))


if __name__ == "__main__":
    main()
