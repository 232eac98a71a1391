"""The reward's training wiring (medix_r1.train.rewards): the failed-verdict group rule, counts summed over
processes, the total used by dynamic sampling, the global budget, and closing the judge's connections."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from medix_r1.testing import StubChatServer
from medix_r1.train.rewards import build_rewards, fill_failed_verdicts, rates_from_counts, sum_counts

NAN = float("nan")


def test_fill_failed_verdicts_uses_the_group_mean_of_that_component_only():
    # columns: accuracy_llm, modality; two groups of 3
    r = torch.tensor([[1.0, NAN], [0.0, NAN], [NAN, NAN],     # text-only group, one judge failure
                      [NAN, 1.0], [NAN, 0.0], [NAN, 1.0]])    # the judge failed on every completion
    filled, mask = fill_failed_verdicts(r, 3)
    assert filled[2].tolist()[0] == 0.5 and math_nan(filled[2, 1])  # modality stays absent for the group
    assert all(math_nan(x) for x in filled[3:, 0])  # no value to fill from: the component is absent
    assert mask.sum() == 1 and bool(mask[2, 0])
    with pytest.raises(ValueError, match="groups of 4"):
        fill_failed_verdicts(r, 4)


def math_nan(x) -> bool:
    return bool(torch.isnan(torch.as_tensor(x)))


def test_counts_are_summed_before_rates_are_derived():
    # rank 0: 100 calls, none failed; rank 1: 4 calls, all failed. The mean of the two rates would be 50%.
    parts = [{"judge/requests": 120, "judge/model_calls": 100, "judge/model_failures": 0, "judge/cache_hits": 20,
              "judge/latency_total_s": 10.0, "reward/accuracy_llm/n": 120, "reward/accuracy_llm/none": 0,
              "time/reward_judge_s": 2.0},
             {"judge/requests": 4, "judge/model_calls": 4, "judge/model_failures": 4, "judge/cache_hits": 0,
              "judge/latency_total_s": 0.4, "reward/accuracy_llm/n": 0, "reward/accuracy_llm/none": 4,
              "time/reward_judge_s": 4.0, "judge/last_error": "HTTP 500"}]
    total = sum_counts(parts)
    assert total["judge/model_calls"] == 104 and total["judge/last_error"] == "HTTP 500"
    m = rates_from_counts(total, n_processes=2)
    assert m["judge/error_rate"] == pytest.approx(4 / 104)
    assert m["judge/cache_hit_rate"] == pytest.approx(20 / 124)
    assert m["judge/mean_latency_s"] == pytest.approx(10.4 / 104)
    assert m["reward/accuracy_llm/none_frac"] == pytest.approx(4 / 124)
    assert m["time/reward_judge_s"] == pytest.approx(3.0) and "judge/latency_total_s" not in m


def _section(url: str) -> dict:
    return {"components": ["accuracy_llm", "format"],
            "judge": {"backend": "openai", "url": url, "model": "stub-judge", "cache": False, "max_retries": 0,
                      "max_error_rate": 0.1, "error_window": 50}}


def test_build_rewards_moves_the_budget_to_the_trainer():
    setup = build_rewards(_section("http://127.0.0.1:9/v1"))
    judge = setup.funcs[0].suite.judge
    assert judge.budget is None  # one process alone must not stop: the trainer checks global counts
    assert setup.budget.window == 50 and setup.budget.max_error_rate == 0.1
    assert "--resume" in setup.budget.exceeded().fix


def test_close_releases_the_pools_of_the_loop_the_rewards_ran_in():
    # Regression (issue 12 item 9): close() ran aclose() in a fresh asyncio.run loop, which only closes that
    # loop's pools; the pools TRL's background reward loop opened stayed open.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with StubChatServer("YES") as server:
            setup = build_rewards(_section(server.url))
            llm = setup.funcs[0]
            comp = "<thinking>r</thinking><answer>a pleural effusion</answer>"
            out = asyncio.run_coroutine_threadsafe(
                llm(completions=[comp], answer=["Pleural effusion on the left"]), loop).result(timeout=30)
            assert out == [1.0] and server.request_count == 1
            backend = llm.suite.judge.backend
            clients = [c for pools in backend._pools.values() for c in pools.clients]
            assert clients and not any(c.is_closed for c in clients)
            setup.loops.append(loop)
            setup.close()
            assert all(c.is_closed for c in clients) and not backend._pools
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
