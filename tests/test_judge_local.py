"""The in-process judge on the bundled SmolLM2-135M-Instruct (real weights, offline).

Its verdict quality is not asserted (it is a weak judge, as the warning says); its behaviour is: loads once,
warns, answers every request with a parseable verdict, batches, and generates free text when asked to."""

import asyncio
import logging

import pytest

from medix_r1.judge import Judge, JudgeRequest, LocalChatBackend, reward_prompt_for
from medix_r1.judge.base import BackendError
from medix_r1.testing.grading_cases import GRADING_CASES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend():
    b = LocalChatBackend("smollm2", max_batch_size=8)
    return b


def test_local_judge_gives_verdicts_and_warns(backend, caplog):
    with caplog.at_level(logging.WARNING):
        backend.load()
    assert "weak judge" in caplog.text
    judge = Judge(backend, reward_prompt_for("default", few_shot=True))
    cases = GRADING_CASES[:4]
    v = judge.judge([JudgeRequest(c.reference, c.prediction, c.question) for c in cases])
    assert [x.status for x in v] == ["ok"] * 4 and {x.raw for x in v} <= {"YES", "NO"}
    assert judge.stats.model_calls == 4 and judge.stats.error_rate == 0.0


def test_shared_prefix_cache_changes_nothing(backend, monkeypatch):
    prompt = reward_prompt_for("paper", few_shot=True)
    convs = [prompt.build(JudgeRequest(c.reference, c.prediction, c.question)) for c in GRADING_CASES[8:11]]
    with_prefix = backend.choose_batch(convs, ("YES", "NO"))
    assert backend._prefix_cache  # the worked examples were run once and kept
    whole = lambda tok, conv: ("", LocalChatBackend._split_prompt(tok, conv)[0]
                                + LocalChatBackend._split_prompt(tok, conv)[1])
    monkeypatch.setattr(backend, "_split_prompt", whole)
    assert backend.choose_batch(convs, ("YES", "NO")) == with_prefix


def test_local_backend_generates_free_text(backend):
    async def go():
        return await asyncio.gather(*[
            backend.complete([{"role": "user", "content": f"Name one organ of the abdomen. ({i})"}], max_tokens=6)
            for i in range(3)])

    replies = asyncio.run(go())
    assert len(replies) == 3 and all(isinstance(r, str) and r for r in replies)


def test_local_backend_bad_model_is_a_backend_error(tmp_path):
    with pytest.raises(BackendError, match="cannot load the local judge"):
        LocalChatBackend(str(tmp_path / "no-such-model")).load()
