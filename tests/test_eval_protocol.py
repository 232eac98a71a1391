"""``--protocol paper`` against the release's eval kit (its exact behaviour as read and run offline): the exact
text and settings sent to the generator and to the judge on an MCQ task, PubMedQA, MIMIC-CXR and a VQA task,
the verdict parsing and aggregation, and none of the release's defects (an unparseable reply is a counted
state, a rubric score above 5 is invalid, Overall is a 0-1 fraction).

The generator and the judge are scripted OpenAI-compatible servers on 127.0.0.1 that record every request.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from medix_r1.cli import main
from medix_r1.eval import load_tasks, run_eval
from medix_r1.eval.generation import image_data_url, openai_generator
from medix_r1.eval.judge_phase import JudgeSettings
from medix_r1.eval.judging import parse_paper_reply
from medix_r1.eval.protocol import text_after_think
from medix_r1.eval.rundir import RunMismatch
from medix_r1.eval.store import JsonlStore
from medix_r1.judge import OpenAIChatBackend
from medix_r1.testing.openai_stub import StubChatServer
from medix_r1.testing.simulate import paper_judge_reply

FIX = Path(__file__).parent / "fixtures" / "eval"
RECHECK = "Go over your judgement again and confirm that it is right."


def gen(server):
    return openai_generator(server.url, server.model, max_retries=0, timeout=10, concurrency=1)


def paper_judge(server, **kw) -> JudgeSettings:
    return JudgeSettings(backend=OpenAIChatBackend(server.url, server.model, max_retries=0, timeout=10),
                         cache=None, protocol="paper", concurrency=1, **kw)


def by_text(requests: list[dict]) -> dict[str, dict]:
    """Generator requests keyed by the text of their (single) user turn."""
    out = {}
    for r in requests:
        content = r["messages"][-1]["content"]
        text = content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")
        out[text] = r
    return out


def first_turns(requests: list[dict]) -> list[str]:
    return [r["messages"][0]["content"] for r in requests if len(r["messages"]) == 1]


def assert_generation_settings(requests: list[dict]) -> None:
    for r in requests:
        assert (r["max_tokens"], r["temperature"], r["top_p"]) == (2048, 0.0, 1.0)
        assert [m["role"] for m in r["messages"]] == ["user"]  # no system prompt, no training template
        assert "chat_template_kwargs" not in r


def assert_three_rounds_in_one_chat(judge_requests: list[dict], n_samples: int) -> None:
    assert len(judge_requests) == 3 * n_samples  # always asked, three times: no rule shortcut
    for r in judge_requests:
        assert (r["temperature"], r["max_tokens"]) == (0.0, 512) and "chat_template_kwargs" not in r
        roles = [m["role"] for m in r["messages"]]
        assert roles in (["user"], ["user", "assistant", "user"], ["user", "assistant", "user", "assistant", "user"])
        assert all(m["content"] == RECHECK for m in r["messages"][2::2])
        assert r["messages"][0]["content"].endswith(" /no_think")


def test_paper_mcq_prompt_judge_input_and_three_rounds(tmp_path):
    """MedMCQA row mm-3 has an empty option B: the letters keep their index (A, C, D)."""
    def policy(messages, request):
        return "<think>Scurvy is vitamin C.</think>\n<answer>B</answer> "

    with StubChatServer(policy, model="policy") as pol, StubChatServer(paper_judge_reply, model="judge") as jud:
        res = run_eval("medmcqa", gen(pol), paper_judge(jud), tmp_path, protocol="paper",
                       data_dirs={"medmcqa": FIX / "medmcqa"}, progress=False, bootstrap=50)
        sent = by_text(pol.requests)
        judged = jud.requests
    assert_generation_settings(pol.requests)
    assert "Deficiency of which vitamin causes scurvy?\n\nChoices:\nA. Vitamin A\nB. Vitamin C\nC. Vitamin D" \
           "\nD. Vitamin K" in sent
    assert "Which Greek letter names the third option here?\n\nChoices:\nA. Beta\nC. Gamma\nD. Delta" in sent
    assert len(sent) == 3  # the fourth row's answer does not resolve: a counted bad input, never sent
    assert res["tasks"]["medmcqa"]["counts"]["bad_input"] == 1
    assert_three_rounds_in_one_chat(judged, 3)
    scurvy = next(t for t in first_turns(judged) if "scurvy" in t)
    assert scurvy == (
        "You are checking whether a model answered a medical question correctly.\n\n"
        "Question:\nDeficiency of which vitamin causes scurvy?\n\nChoices:\nA. Vitamin A\nB. Vitamin C\n"
        "C. Vitamin D\nD. Vitamin K\n\nCorrect answer:\nVitamin C\n\nPredicted answer:\n<answer>B</answer>\n\n"
        "The predicted answer counts as correct when it agrees with the correct answer in content, or when it "
        'names the correct option. Give your judgement as JSON: {"score": 1} if it is correct, {"score": 0} '
        "if it is not. /no_think")
    third = next(r for r in judged if len(r["messages"]) == 5 and "scurvy" in r["messages"][0]["content"])
    assert third["messages"][1]["content"] == '<think>Comparing the two.</think>{"score": 0}'
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["protocol"] == "paper" and run["generation"]["jpeg_quality"] == 75
    assert res["protocol"] == "paper" and res["judge"]["prompts"]["binary"] == "eval-paper-binary-r3@1"
    counts = res["tasks"]["medmcqa"]["counts"]
    assert counts["exact"] == 0 and counts["judged"] == 3  # the judge decided all three


def test_paper_pubmedqa_and_mimic_texts(tmp_path):
    def policy(messages, request):
        text = messages[-1]["content"]
        if "summary" in text:
            return "<think>The impression says it.</think>Small left pleural effusion."
        return "<think>t</think>A. True"

    data = {"pubmedqa": FIX / "pubmedqa" / "test_set.json", "mimic_cxr_sum": FIX / "mimic_cxr_sum.csv"}
    with StubChatServer(policy, model="policy") as pol, StubChatServer(paper_judge_reply, model="judge") as jud:
        res = run_eval(["pubmedqa", "mimic_cxr_sum"], gen(pol), paper_judge(jud), tmp_path, protocol="paper",
                       data_dirs=data, progress=False, bootstrap=50)
        sent = by_text(pol.requests)
        turns = first_turns(jud.requests)
    assert_generation_settings(pol.requests)
    assert ("Contexts:\nAdults over 65 walked 30 minutes a day for 12 weeks.\n\nQuestion:\nDoes daily walking "
            "lower resting blood pressure in older adults?\n\nChoices:\nA. True\nB. False\nC. maybe") in sent
    assert ("Write a short summary of the following report.\n\nReport:\nFINDINGS: Heart size normal. Small left "
            "pleural effusion. IMPRESSION: Small left pleural effusion.:") in sent
    assert all(isinstance(r["messages"][0]["content"], str) for r in pol.requests)  # no image for these
    assert_three_rounds_in_one_chat(jud.requests, 4)
    pub = next(t for t in turns if "walking" in t)
    assert "\n\nCorrect answer:\nyes\nDaily walking lowered resting systolic pressure.\n\nPredicted answer:\n" \
           "A. True\n\n" in pub
    report = next(t for t in turns if "pleural" in t)
    assert report.startswith("You are grading a radiology report written by a model against the reference "
                             "report.\n\nTask:\nWrite a short summary of the following report.")
    assert "\n\nReference report:\nSmall left pleural effusion.\n\nPredicted report:\nSmall left pleural " \
           "effusion.\n\n" in report
    assert 'N a whole number from 0 to 5. /no_think' in report
    sums = res["tasks"]["mimic_cxr_sum"]
    assert sums["accuracy"] == pytest.approx((1.0 + 0.2) / 2)  # rubric 5 -> 1.0 and 1 -> 0.2: mean/5
    assert res["overall"] <= 1.0 and res["units"] == "fraction (0-1)"


def test_paper_vqa_and_report_generation_send_jpeg_75_images(tmp_path):
    def policy(messages, request):
        return "<think>look</think><answer>no</answer>"

    data = {"vqa_rad": FIX / "vqa_rad", "mimic_cxr_rrg": FIX / "mimic_cxr_rrg" / "test.jsonl"}
    with StubChatServer(policy, model="policy") as pol, StubChatServer(paper_judge_reply, model="judge") as jud:
        run_eval(["vqa_rad", "mimic_cxr_rrg"], gen(pol), paper_judge(jud), tmp_path, protocol="paper",
                 data_dirs=data, progress=False, bootstrap=50)
        sent = by_text(pol.requests)
        turns = first_turns(jud.requests)
    assert_generation_settings(pol.requests)
    tasks = {td.spec.name: td for td in load_tasks(["vqa_rad", "mimic_cxr_rrg"], data, protocol="paper")}
    for name, question in (("vqa_rad", "is there a fracture?"),
                           ("mimic_cxr_rrg", "Generate a detailed report based on the scan.")):
        sample = next(s for s in tasks[name].samples if s.question == question)
        (image,) = sample.load_images()
        parts = sent[question]["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image_url", "text"]  # the image, then the text
        url = parts[0]["image_url"]["url"]
        assert url == image_data_url(image, quality=75) != image_data_url(image, quality=90)
        assert base64.b64decode(url.split(",", 1)[1])[:2] == b"\xff\xd8"
    assert any(t.startswith("You are grading a radiology report") for t in turns)
    fracture = next(t for t in turns if "fracture" in t)
    assert "Question:\nis there a fracture?\n\nCorrect answer:\nno\n\nPredicted answer:\n<answer>no</answer>" \
           in fracture


def test_paper_mmmu_shows_image_1_only(tmp_path):
    with StubChatServer("<think>t</think>B", model="policy") as pol, \
            StubChatServer(paper_judge_reply, model="judge") as jud:
        run_eval("mmmu_med", gen(pol), paper_judge(jud), tmp_path, protocol="paper", limit=2,
                 data_dirs={"mmmu_med": FIX / "mmmu"}, progress=False, bootstrap=50)
        parts = [r["messages"][0]["content"] for r in pol.requests]
    assert all([p["type"] for p in c] == ["image_url", "text"] for c in parts)


def test_paper_verdict_parsing_and_aggregation():
    assert text_after_think("<think>a</think> x </think> <answer>B</answer>\n") == "<answer>B</answer>"
    assert text_after_think("<thinking>a</thinking><answer>C</answer>") == "<answer>C</answer>"
    assert text_after_think("  plain answer ") == "plain answer"
    assert parse_paper_reply('<think>{"score": 0}</think>The verdict: {"score": 1}') == 1.0
    assert parse_paper_reply('Sure. {"reason": "same", "score": 0} done') == 0.0
    for bad in ("score: 1", '{"score": 1', '{"verdict": 1}', '{"score": true}', "", None):
        assert parse_paper_reply(bad) is None, bad
    from medix_r1.eval.judging import paper_prompt

    binary, rubric = paper_prompt("binary"), paper_prompt("rubric")
    assert binary.aggregate([1.0, 0.0, 1.0]) == 1.0 and binary.aggregate([1.0, 0.0, 0.0]) == 0.0
    assert binary.aggregate([1.0, None, 1.0]) == 1.0 and binary.aggregate([1.0, None, 0.0]) is None
    assert binary.parse('{"score": 2}') is None
    assert rubric.parse('{"score": 7}') is None  # the release turns 7 into 1.4
    assert rubric.aggregate([rubric.parse('{"score": 4}'), rubric.parse('{"score": 5}'),
                             rubric.parse('{"score": 3}')]) == pytest.approx(0.8)
    assert rubric.aggregate([0.8, None, 1.0]) is None


def test_paper_unparseable_and_out_of_range_replies_are_counted_not_retried(tmp_path):
    """The release retries a reply that does not parse forever and scores a rubric 7 as 1.4. Here both are
    ``unparseable``: counted, final (a rerun does not ask again), never a score."""
    def judge(messages, request):
        first = messages[0]["content"]
        return '{"score": 7}' if "radiology report" in first else "I would say it is right."

    data = {"vqa_rad": FIX / "vqa_rad", "mimic_cxr_sum": FIX / "mimic_cxr_sum.csv"}
    with StubChatServer("<answer>no</answer>", model="policy") as pol, StubChatServer(judge, model="judge") as jud:
        kw = {"protocol": "paper", "data_dirs": data, "progress": False, "bootstrap": 50, "limit": 1}
        res = run_eval(["vqa_rad", "mimic_cxr_sum"], gen(pol), paper_judge(jud, max_error_rate=None), tmp_path,
                       **kw)
        asked = jud.request_count
        run_eval(["vqa_rad", "mimic_cxr_sum"], gen(pol), paper_judge(jud, max_error_rate=None), tmp_path, **kw)
        assert jud.request_count == asked == 6
    for name in ("vqa_rad", "mimic_cxr_sum"):
        t = res["tasks"][name]
        assert (t["counts"]["unparseable"], t["n_scored"], t["accuracy"]) == (1, 0, None)
    assert res["overall"] is None and set(res["overall_excluded"]) == {"vqa_rad", "mimic_cxr_sum"}
    recs = {r["task"]: r for r in JsonlStore(tmp_path / "judgements.jsonl").latest().values()}
    assert recs["mimic_cxr_sum"]["votes"] == [None, None, None] and recs["mimic_cxr_sum"]["score"] is None


def test_paper_protocol_refuses_what_it_does_not_have(tmp_path, capsys):
    with StubChatServer("<answer>no</answer>", model="policy") as pol:
        judge = ["--judge-url", pol.url, "--judge-model", "policy"]
        for extra, flag in (([*judge, "--template"], "--template"),
                            ([*judge, "--system-prompt", "Be brief."], "--system-prompt"),
                            (["--judge", "none"], "--judge none"), ([*judge, "--rounds", "1"], "--rounds")):
            rc = main(["eval", "run", "--protocol", "paper", "--tasks", "vqa_rad", "--data-dir",
                       f"vqa_rad={FIX / 'vqa_rad'}", "--model", "policy", "--model-url", pol.url,
                       "--output-dir", str(tmp_path / "x"), "--no-progress", *extra])
            err = capsys.readouterr().err
            assert rc == 2 and flag in err and "Traceback" not in err, (extra, err)
        run_eval("vqa_rad", gen(pol), None, tmp_path / "d", phases=("generate",), data_dirs={"vqa_rad": FIX / "vqa_rad"},
                 progress=False)
        with pytest.raises(RunMismatch, match="other settings"):
            run_eval("vqa_rad", gen(pol), None, tmp_path / "d", phases=("generate",), protocol="paper",
                     data_dirs={"vqa_rad": FIX / "vqa_rad"}, progress=False)
