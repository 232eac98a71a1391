"""Eval grading: verdict parsing, rule decisions (MCQ letter/text, exact), self-check majority vote, failure and
unparseable accounting, bootstrap CI, the results store, judge calibration. Judges and generators are scripted
OpenAI-compatible stub servers on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medix_r1 import grading
from medix_r1.errors import ServiceError
from medix_r1.eval import run_eval
from medix_r1.eval.calibrate import (
    DEFAULT_LABELS,
    LabelFileError,
    agreement,
    calibrate,
    cohen_kappa,
    read_labels,
)
from medix_r1.eval.generation import openai_generator
from medix_r1.eval.judge_phase import JudgeSettings
from medix_r1.eval.judging import parse_binary_verdict, parse_rubric_verdict
from medix_r1.eval.rundir import ErrorBudgetExceeded
from medix_r1.eval.scoring import bootstrap_ci
from medix_r1.eval.store import JsonlStore, StoreCorrupt
from medix_r1.judge import OpenAIChatBackend, VerdictCache
from medix_r1.testing.openai_stub import StubChatServer, StubFault, refused_url
from medix_r1.testing.simulate import judge_reply, policy_reply


def write_task(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def judge_settings(server: StubChatServer, **kw) -> JudgeSettings:
    backend = OpenAIChatBackend(server.url, server.model, max_retries=kw.pop("max_retries", 0), timeout=5)
    return JudgeSettings(backend=backend, cache=kw.pop("cache", None), **kw)


def gen(server: StubChatServer, **kw):
    return openai_generator(server.url, server.model, max_retries=kw.pop("max_retries", 0), timeout=5, **kw)


def records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in JsonlStore(path).latest().values()}


# --------------------------------------------------------------------------------------------- parsing, rules
def test_verdict_parsers_are_strict_and_anchored():
    assert parse_binary_verdict('{"score": 1}') == 1.0
    assert parse_binary_verdict('```json\n{"score": 0, "reason": "other organ"}\n```') == 0.0
    assert parse_binary_verdict("<think>compare...</think>\nYES") == 1.0
    assert parse_binary_verdict("no") == 0.0
    for bad in ('The candidate says {"score": 1}', '{"score": 3}', '{"score": true}', "Score: 1", "", None,
                '{"verdict": 1}'):
        assert parse_binary_verdict(bad) is None, bad
    assert parse_rubric_verdict('{"score": 5}') == 1.0 and parse_rubric_verdict("2 - several missing") == 0.4
    assert parse_rubric_verdict('{"score": 6}') is None and parse_rubric_verdict("good") is None


def test_eval_rule_layer_is_the_shared_grading_module(tmp_path):
    """Eval decides without the judge exactly where medix_r1.grading.decide (the reward's rule layer) does,
    with the same reason; everything else goes to the judge."""
    rows = [
        {"id": "mcq-letter", "question": "Which type?", "answer": "Type 1 diabetes",
         "options": ["Type 2 diabetes", "Type 1 diabetes", "Diabetes insipidus"]},
        {"id": "mcq-other", "question": "Which type again?", "answer": "Type 1 diabetes",
         "options": ["Type 2 diabetes", "Type 1 diabetes", "Diabetes insipidus"]},
        {"id": "mcq-prose", "question": "Which type, in words?", "answer": "Type 1 diabetes",
         "options": ["Type 2 diabetes", "Type 1 diabetes", "Diabetes insipidus"]},
        {"id": "closed", "question": "Is there a fracture?", "answer": "No"},
        {"id": "side", "question": "Which lung?", "answer": "Left lung"},
        {"id": "exact", "question": "Which organ?", "answer": "Liver"},
        {"id": "open", "question": "Which organ is enlarged?", "answer": "Spleen"},
    ]
    replies = {"Which type?": "B", "Which type again?": "(c) Diabetes insipidus",
               "Which type, in words?": "probably the autoimmune one", "Is there a fracture?": "Yes, distal radius",
               "Which lung?": "the right lung", "Which organ?": "liver.", "Which organ is enlarged?": "splenomegaly"}

    def policy(messages, request):
        text = messages[-1]["content"]
        q = next(q for q in sorted(replies, key=len, reverse=True) if text.startswith(q))
        return f"<thinking>t</thinking><answer>{replies[q]}</answer>"

    task = write_task(tmp_path / "rules.jsonl", rows)
    with StubChatServer(policy, model="policy") as pol, StubChatServer('{"score": 1}', model="judge") as jud:
        run_eval(str(task), gen(pol), judge_settings(jud, rounds=1), tmp_path / "out", progress=False)
        asked = jud.request_count
    j = records(tmp_path / "out" / "judgements.jsonl")
    g = records(tmp_path / "out" / "generations.jsonl")
    for rid, rec in j.items():
        d = grading.decide(g[rid]["reference"], g[rid]["final_answer"], options=g[rid].get("options"),
                           correct_letter=g[rid].get("answer_letter"))
        if d.score is None:
            assert rec["method"] == "judge", rid
        else:
            assert (rec["method"], rec["score"], rec["reason"]) == ("rule", d.score, d.reason), rid
    assert {r: j[r]["score"] for r in ("mcq-letter", "mcq-other", "closed", "side", "exact")} == {
        "mcq-letter": 1.0, "mcq-other": 0.0, "closed": 0.0, "side": 0.0, "exact": 1.0}
    assert asked == 2 and j["mcq-prose"]["method"] == j["open"]["method"] == "judge"


# --------------------------------------------------------------------------------------------- majority vote
SCRIPTS = {  # question -> judge reply per round (1-based by number of earlier assistant turns)
    "q-major": ['{"score": 1}', '{"score": 0}', '{"score": 1}'],
    "q-unanimous-no": ['{"score": 0}', "NO", '{"score": 0}'],
    "q-tie": ['{"score": 1}', '{"score": 0}', "it depends"],
    "q-never": ["I think so", "maybe", "hard to say"],
    "q-flip": ["NO", "YES", "YES"],
}


def scripted_judge(messages, request):
    body = "\n".join(m["content"] for m in messages if isinstance(m["content"], str))
    qid = next(q for q in SCRIPTS if q in body)
    rounds_done = sum(1 for m in messages if m["role"] == "assistant")
    return SCRIPTS[qid][rounds_done]


def test_self_check_majority_unparseable_and_accounting(tmp_path):
    rows = [{"id": q, "question": f"Question {q}?", "answer": "reference answer"} for q in SCRIPTS]
    rows.append({"id": "exact", "question": "Which one?", "answer": "Same"})
    task = write_task(tmp_path / "majority.jsonl", rows)

    def policy(messages, request):
        text = messages[-1]["content"]
        return "<thinking>t</thinking><answer>Same</answer>" if "Which one" in text else \
            "<thinking>t</thinking><answer>a paraphrase</answer>"

    with StubChatServer(policy, model="policy") as pol, StubChatServer(scripted_judge, model="judge") as jud:
        res = run_eval(str(task), gen(pol), judge_settings(jud, rounds=3), tmp_path / "out", progress=False)
        assert jud.request_count == 3 * len(SCRIPTS)  # three rounds each; the exact match asked nothing
    j = records(tmp_path / "out" / "judgements.jsonl")
    assert (j["q-major"]["status"], j["q-major"]["score"], j["q-major"]["votes"]) == ("ok", 1.0, [1.0, 0.0, 1.0])
    assert (j["q-unanimous-no"]["score"], j["q-flip"]["score"]) == (0.0, 1.0)
    assert (j["q-tie"]["status"], j["q-tie"]["score"]) == ("unparseable", None)
    assert j["q-never"]["status"] == "unparseable" and len(json.loads(j["q-never"]["raw"])) == 3
    assert (j["exact"]["status"], j["exact"]["method"], j["exact"]["score"]) == ("exact", "rule", 1.0)
    t = res["tasks"]["majority"]
    assert t["counts"]["unparseable"] == 2 and t["counts"]["exact"] == 1 and t["counts"]["judged"] == 3
    assert t["n"] == 6 and t["n_scored"] == 4
    assert t["accuracy"] == pytest.approx((1 + 0 + 1 + 1) / 4)  # unparseable kept out of accuracy
    assert t["rates"]["unparseable"] == pytest.approx(2 / 6)


def test_one_round_is_cheaper(tmp_path):
    task = write_task(tmp_path / "one.jsonl", [{"id": "q-major", "question": "Question q-major?", "answer": "x y"}])
    with StubChatServer(policy_reply, model="policy") as pol, StubChatServer(scripted_judge, model="judge") as jud:
        res = run_eval(str(task), gen(pol), judge_settings(jud, rounds=1), tmp_path / "out", progress=False)
        assert jud.request_count == 1
    assert res["tasks"]["one"]["accuracy"] == 1.0
    assert res["judge"]["prompts"]["binary"] == "eval-binary-r1@1"


def test_rubric_tasks_average_rounds(tmp_path):
    from medix_r1.eval.taskspec import PromptSpec, SourceSpec, TaskSpec

    task = write_task(tmp_path / "reports.jsonl", [{"id": "r1", "question": "Findings: small effusion.",
                                                    "answer": "Small effusion"}])
    spec = TaskSpec(name="reports", kind="text", source=SourceSpec(format="canonical", path=str(task)),
                    answer_type="report", scorer="rubric", prompt=PromptSpec())
    replies = iter(['{"score": 4}', '{"score": 3}', "5"])
    with StubChatServer("<answer>Effusion, small</answer>", model="policy") as pol, \
            StubChatServer(lambda m, r: next(replies), model="judge") as jud:
        res = run_eval(spec, gen(pol), judge_settings(jud), tmp_path / "out", progress=False)
    assert res["tasks"]["reports"]["accuracy"] == pytest.approx((4 + 3 + 5) / 15)
    assert res["tasks"]["reports"]["by_answer_type"]["report"]["n"] == 1


# --------------------------------------------------------------------------------------------- failures
def test_failed_verdicts_are_counted_then_retried_on_rerun(tmp_path):
    rows = [{"id": f"s{i}", "question": f"Question number {i}?", "answer": "Liver"} for i in range(6)]
    task = write_task(tmp_path / "flaky.jsonl", rows)

    def flaky(messages, request):
        body = messages[1]["content"]
        return StubFault.http(500) if ("number 1?" in body or "number 4?" in body) else judge_reply(messages)

    out = tmp_path / "out"
    with StubChatServer(policy_reply, model="policy") as pol:
        with StubChatServer(flaky, model="judge") as jud:
            res = run_eval(str(task), gen(pol), judge_settings(jud, rounds=1, max_error_rate=None), out,
                           progress=False)
        t = res["tasks"]["flaky"]
        assert t["counts"]["judge_failed"] == 2 and t["n_scored"] == 4
        assert t["rates"]["failure"] == pytest.approx(2 / 6)
        failed = [r for r in records(out / "judgements.jsonl").values() if r["status"] == "error"]
        assert {r["id"] for r in failed} == {"s1", "s4"} and all("HTTP 500" in r["error"] for r in failed)
        with StubChatServer(judge_reply, model="judge") as jud:  # the judge is healthy again: only 2 redone
            res2 = run_eval(str(task), gen(pol), judge_settings(jud, rounds=1), out, progress=False)
            assert jud.request_count == 2
    assert res2["tasks"]["flaky"]["counts"]["judge_failed"] == 0 and res2["tasks"]["flaky"]["n_scored"] == 6


def test_generator_down_stops_with_a_clear_message_and_rerun_resumes(tmp_path):
    rows = [{"id": f"s{i}", "question": f"Which organ {i}?", "answer": "Liver"} for i in range(25)]
    task = write_task(tmp_path / "down.jsonl", rows)
    out = tmp_path / "out"
    dead = openai_generator(refused_url(), "policy", max_retries=0, timeout=2, concurrency=4)
    with pytest.raises(ServiceError, match="cannot reach the model server") as exc:
        run_eval(str(task), dead, None, out, phases=("generate",), progress=False)
    assert exc.value.where == "--model-url" and not (out / "generations.jsonl").exists()  # found before any work
    with StubChatServer(policy_reply, model="policy") as failing:
        failing.fault = StubFault.http(500)  # it answers /models, then every chat request fails
        with pytest.raises(ErrorBudgetExceeded) as exc:
            run_eval(str(task), gen(failing, concurrency=4), None, out, phases=("generate",), progress=False)
    msg = str(exc.value)
    assert "calls failed" in msg and "rerun the same command to resume" in msg and "model server" in msg
    n_failed = sum(1 for r in JsonlStore(out / "generations.jsonl").read() if r["status"] == "error")
    assert 20 <= n_failed < 25  # stopped by the budget once 20 requests had failed, before the end
    with StubChatServer(policy_reply, model="policy") as pol:
        run_eval(str(task), gen(pol), None, out, phases=("generate",), progress=False)
        assert pol.request_count == 25  # the failed ones and the never-tried ones, nothing else
    latest = JsonlStore(out / "generations.jsonl").latest()
    assert len(latest) == 25 and all(r["status"] == "ok" for r in latest.values())


def test_bad_inputs_become_counted_error_rows(tmp_path):
    fix = Path(__file__).parent / "fixtures" / "eval"
    with StubChatServer(policy_reply, model="policy") as pol, StubChatServer(judge_reply, model="judge") as jud:
        res = run_eval(["vqa_rad", str(fix / "canonical" / "clinic_qa.jsonl")], gen(pol), judge_settings(jud),
                       tmp_path / "out", data_dirs={"vqa_rad": fix / "vqa_rad"}, progress=False)
        assert pol.request_count == 2 + 3  # the undecodable image and the empty question were not sent
    assert res["tasks"]["vqa_rad"]["counts"]["bad_input"] == 1 and res["tasks"]["vqa_rad"]["n"] == 3
    assert res["tasks"]["clinic_qa"]["counts"]["bad_input"] == 1
    g = records(tmp_path / "out" / "generations.jsonl")
    assert "cannot decode image" in g["test-2"]["error"] and g["c4"]["field"] == "question"


def test_verdict_cache_is_shared_between_runs(tmp_path):
    task = write_task(tmp_path / "cached.jsonl", [{"id": f"s{i}", "question": f"Organ {i}?", "answer": "Liver"}
                                                  for i in range(4)])
    cache = VerdictCache(tmp_path / "verdicts.sqlite")
    with StubChatServer(policy_reply, model="policy") as pol, StubChatServer(judge_reply, model="judge") as jud:
        a = run_eval(str(task), gen(pol), judge_settings(jud, cache=cache), tmp_path / "a", progress=False)
        first = jud.request_count
        b = run_eval(str(task), gen(pol), judge_settings(jud, cache=cache), tmp_path / "b", progress=False)
        assert jud.request_count == first  # every verdict came from the cache
    assert a["tasks"]["cached"]["accuracy"] == b["tasks"]["cached"]["accuracy"]
    assert all(r.get("cached") for r in records(tmp_path / "b" / "judgements.jsonl").values()
               if r["method"] == "judge")


# --------------------------------------------------------------------------------------------- scores, store
def test_bootstrap_ci_is_seeded():
    scores = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1] * 5
    a = bootstrap_ci(scores, seed=3, label="t")
    assert a == bootstrap_ci(scores, seed=3, label="t")
    assert a != bootstrap_ci(scores, seed=4, label="t")
    assert a[0] < sum(scores) / len(scores) < a[1] and 0.4 < a[0] and a[1] < 0.9
    assert bootstrap_ci([], seed=0) is None and bootstrap_ci([1.0], seed=0) == (1.0, 1.0)


def test_store_repairs_a_torn_last_line_and_refuses_corruption(tmp_path):
    p = tmp_path / "g.jsonl"
    s = JsonlStore(p)
    s.append({"task": "t", "id": "1", "status": "ok"})
    s.close()
    with p.open("ab") as fh:
        fh.write(b'{"task": "t", "id": "2", "sta')  # a write cut short by SIGKILL
    assert list(JsonlStore(p).latest()) == [("t", "1")]
    s = JsonlStore(p).open()
    assert s.repaired_bytes > 0
    s.append({"task": "t", "id": "2", "status": "ok"})
    s.close()
    assert [r["id"] for r in JsonlStore(p).read()] == ["1", "2"]
    p.write_text('{"task": "t", "id": "1"}\nnot json\n{"task": "t", "id": "2"}\n')
    with pytest.raises(StoreCorrupt, match=r"g\.jsonl:2"):
        JsonlStore(p).read()


# --------------------------------------------------------------------------------------------- calibration
def test_agreement_kappa_and_confusion():
    res = agreement([1, 1, 0, 0, 1], [1.0, 0.0, 0.0, None, 1.0])
    assert res["n_verdict"] == 4 and res["no_verdict"] == 1 and res["accuracy"] == 0.75
    assert res["confusion"] == {"label_1": {"judge_1": 2, "judge_0": 1, "none": 0},
                                "label_0": {"judge_1": 0, "judge_0": 1, "none": 1}}
    assert cohen_kappa([(1, 1), (0, 0)]) == 1.0 and cohen_kappa([(1, 0), (0, 1)]) == -1.0


def test_shipped_labels_and_calibrate_with_a_scripted_judge(tmp_path, capsys):
    rows = read_labels(DEFAULT_LABELS)
    assert len(rows) == 40 and sum(r["label"] for r in rows) == 20
    with StubChatServer(judge_reply, model="judge") as jud:
        res = calibrate(DEFAULT_LABELS, judge_settings(jud, rounds=1))
        # The substring judge gets the verbatim cases right and misses paraphrases (MRI vs magnetic...).
        assert res["n_verdict"] == 40 and 0.5 < res["accuracy"] < 1.0
        assert sum(sum(r.values()) for r in res["confusion"].values()) == 40
        from medix_r1.cli import main

        out = tmp_path / "cal.json"
        assert main(["eval", "calibrate", "--judge-url", jud.url, "--judge-model", "judge", "--rounds", "1",
                     "--no-judge-cache", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Cohen's kappa" in printed and "label=1" in printed
    assert json.loads(out.read_text())["accuracy"] == res["accuracy"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reference": "a", "prediction": "b", "label": "perhaps"}\n')
    with pytest.raises(LabelFileError, match=r"bad\.jsonl:1: field 'label'"):
        read_labels(bad)


def test_local_judge_takes_the_rewards_constrained_path_and_the_report_names_it_weak(tmp_path):
    """make demo's eval judge: the bundled SmolLM2 through the reward's YES/NO prompt, one forward pass per
    verdict (no generation); the report's first lines say the judge is weak."""
    from medix_r1.judge import LocalChatBackend

    rows = [{"id": f"s{i}", "question": q, "answer": a} for i, (q, a) in enumerate(
        [("Which organ is enlarged?", "Spleen"), ("Which bone is broken?", "Radius"),
         ("What is the diagnosis?", "Pneumonia")])]
    task = write_task(tmp_path / "local.jsonl", rows)
    backend = LocalChatBackend()
    calls = {"choose": 0, "generate": 0}
    choose, generate = backend.choose_batch, backend.generate_batch

    def count(name, fn):
        def wrapped(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapped

    backend.choose_batch, backend.generate_batch = count("choose", choose), count("generate", generate)
    with StubChatServer("<thinking>t</thinking><answer>an inflamed lung</answer>", model="policy") as pol:
        res = run_eval(str(task), gen(pol), JudgeSettings(backend=backend, cache=None, rounds=1), tmp_path / "o",
                       progress=False, bootstrap=20)
    j = records(tmp_path / "o" / "judgements.jsonl")
    assert {r["judge_prompt"] for r in j.values()} == {"reward-default-fewshot@1"}
    assert all(r["status"] == "ok" and r["raw"] in ("YES", "NO") for r in j.values())
    assert calls["choose"] >= 1 and calls["generate"] == 0
    assert res["judge"]["weak"] is True
    head = (tmp_path / "o" / "report.md").read_text().split("- **model**")[0]
    assert "smollm2-135m-instruct is the bundled SmolLM2-135M: a weak judge" in head
