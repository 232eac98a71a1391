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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import tempfile
import time
from pathlib import Path

from medix_r1.eval import load_tasks, run_eval
from medix_r1.eval.generation import openai_generator
from medix_r1.eval.judge_phase import JudgeSettings
from medix_r1.judge import OpenAIChatBackend
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
    print(f"speed-up {seq_s / con_s:.1f}x; concurrent run at {100 * (gen_lb + judge_lb) / con_s:.0f}% of the bound; "
          f"identical accuracies: {same}")
    print(json.dumps({"n": n, "sequential_s": round(seq_s, 3), "concurrent_s": round(con_s, 3),
                      "lower_bound_concurrent_s": round(gen_lb + judge_lb, 3),
                      "lower_bound_sequential_s": round(seq_lb, 3)}))


if __name__ == "__main__":
    main()
