"""The windowed error budget (medix_r1.budget.ErrorBudget), shared by the reward's judge and eval."""

from __future__ import annotations

import pytest

from medix_r1.budget import ErrorBudget
from medix_r1.errors import EXIT_SERVICE, BudgetExceeded


def test_an_outage_after_2000_good_calls_stops_within_the_window():
    # Regression (issue 10): a lifetime rate read 200 failures after 2,000 good verdicts as 9.1% < 10%.
    budget = ErrorBudget("the judge", max_error_rate=0.1, window=200, fix="start the judge",
                         resume="rerun with --resume")
    for _ in range(2000):
        budget.add(1, 0)
    stopped_after = None
    for k in range(1, 201):
        try:
            budget.add(1, 1, error="timeout: no reply within 60s", kinds={"timeout": 1})
        except BudgetExceeded as exc:
            stopped_after, err = k, exc
            break
    # 180 good + 21 failed of the last 200 is the first share over 10%
    assert stopped_after == 21
    assert err.exit_code == EXIT_SERVICE
    text = str(err)
    assert "the judge: 21 of the last 200 calls failed (10.5%" in text
    assert "21 of 2021 calls failed since the start (timeout 21)" in text
    assert "Last error: timeout: no reply within 60s" in text
    assert err.fix == "start the judge. rerun with --resume"


def test_a_step_block_of_failures_stops_at_once():
    budget = ErrorBudget("the reward's judge", max_error_rate=0.1, window=256)
    for _ in range(100):
        budget.add(calls=64, failures=1)  # 1.6%: a normal run
    assert budget.calls == 256 and budget.failures == 4  # the window keeps its share of the oldest block
    with pytest.raises(BudgetExceeded, match="67 of the last 256 calls failed"):
        budget.add(calls=64, failures=64)


def test_old_failures_leave_the_window():
    budget = ErrorBudget("x", max_error_rate=0.5, window=10, min_calls=1)
    budget.record(5, 5)
    assert budget.over()
    budget.record(10, 0)
    assert (budget.calls, budget.failures, budget.rate) == (10, 0, 0.0)
    budget.check()
    assert (budget.total_calls, budget.total_failures) == (15, 5)


def test_min_calls_and_final_check():
    budget = ErrorBudget("generation", max_error_rate=0.1, min_calls=20)
    for _ in range(5):
        budget.add(1, 1)  # too few calls to judge a rate
    with pytest.raises(BudgetExceeded, match="all 5 calls failed"):
        budget.check(final=True)
    unlimited = ErrorBudget("generation", max_error_rate=None)
    unlimited.add(50, 50)
    with pytest.raises(BudgetExceeded):
        unlimited.check(final=True)
    ok = ErrorBudget("generation", max_error_rate=None)
    ok.add(3, 1)
    ok.check(final=True)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_error_rate"):
        ErrorBudget("x", max_error_rate=1.5)
    with pytest.raises(ValueError, match="window"):
        ErrorBudget("x", window=0)
    with pytest.raises(ValueError, match="failures <= calls"):
        ErrorBudget("x").record(1, 2)
