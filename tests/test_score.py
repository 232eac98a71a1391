"""``medix-r1 score`` end to end: input order, nulls, totals, malformed rows by line number, judge outages,
and the offline run with the embedded judge and embedding on the bundled demo data."""

import json

import pytest

from medix_r1.cli import main
from medix_r1.testing import StubChatServer, refused_url
from medix_r1.testing.demo_completions import demo_rows

KEYS = {"format", "modality", "accuracy_llm", "accuracy_embed", "total"}


def write_rows(path, rows, extra_lines=()):
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
        fh.writelines(line + "\n" for line in extra_lines)


def read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def stub_reply(messages, request):
    text = messages[-1]["content"]
    ref = text.split("<reference>")[1].split("</reference>")[0].strip().lower()
    cand = text.split("<candidate>")[1].split("</candidate>")[0].strip().lower()
    return "YES" if ref in cand else "NO"


@pytest.fixture(scope="module")
def demo():
    return demo_rows(limit=20)


def test_score_with_a_served_judge(tmp_path, capsys, demo):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad = ['{"id": "x1", "completion": "<answer>a</answer>"}',           # no reference
           "this is not json",
           '{"id": "x2", "completion": "c", "reference": "<LIVER_SCAN> liver"}',  # unknown tag
           json.dumps(demo[0])]                                           # duplicate id
    write_rows(inp, demo, bad)
    with StubChatServer(stub_reply, latency=0.01) as server:
        rc = main(["score", "--input", str(inp), "--output", str(out), "--judge-url", server.url,
                   "--judge-model", server.model, "--embedding", "minilm", "--cache-dir", str(tmp_path / "c"),
                   "--no-progress"])
        calls = server.request_count
    captured = capsys.readouterr()
    assert rc == 1  # some rows were malformed; the rest were scored
    for line, what in [(21, "no reference"), (22, "malformed JSON"), (23, "LIVER_SCAN"), (24, "duplicate id")]:
        assert f"line {line}" in captured.err and what in captured.err
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [d["id"] for d in demo]  # input order, bad rows left out
    assert all(set(r["rewards"]) == KEYS for r in rows)
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r["rewards"])
    assert all(x["format"] == 1.0 and x["accuracy_llm"] == 1.0 for x in by_kind["right"])
    assert all(x["format"] == 0.0 for x in by_kind["malformed"] + by_kind["no-reasoning"])
    assert all(x["accuracy_llm"] == 0.0 for x in by_kind["injection"])
    for r in rows:
        rw = r["rewards"]
        if r["reference"].startswith("<"):
            assert rw["total"] == pytest.approx(0.5175 * rw["accuracy_llm"] + 0.3375 * rw["accuracy_embed"]
                                                + 0.045 * rw["modality"] + 0.1 * rw["format"])
        else:  # text-only: modality does not apply, the total is normalised by the other weights
            assert rw["modality"] is None
            assert rw["total"] == pytest.approx((0.5175 * rw["accuracy_llm"] + 0.3375 * rw["accuracy_embed"]
                                                 + 0.1 * rw["format"]) / 0.955)
    assert "accuracy_llm" in captured.out and "judge:" in captured.out and "cache hits" in captured.out
    assert 0 < calls < len(demo)  # exact matches and injections never reach the judge

    # rerun of the same command: every row is already in the output, nothing is asked again
    with StubChatServer(stub_reply) as server:
        assert main(["score", "--input", str(inp), "--output", str(out), "--judge-url", server.url,
                     "--judge-model", server.model, "--embedding", "minilm",
                     "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 1
        assert server.request_count == 0
    assert f"{len(demo)} kept from an earlier run" in capsys.readouterr().out
    assert read_jsonl(out) == rows
    # another output: every verdict comes from the cache
    with StubChatServer(stub_reply) as server:
        assert main(["score", "--input", str(inp), "--output", str(tmp_path / "out2.jsonl"), "--judge-url",
                     server.url, "--judge-model", server.model, "--embedding", "minilm",
                     "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 1
        assert server.request_count == 0
    assert "cache hits" in capsys.readouterr().out


def test_components_subset_needs_no_judge(tmp_path, capsys, demo):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(inp, demo[:5])
    rc = main(["score", "--input", str(inp), "--output", str(out), "--components", "format,modality",
               "--judge-url", refused_url(), "--no-progress"])
    assert rc == 0
    for r in read_jsonl(out):
        assert r["rewards"]["accuracy_llm"] is None and r["rewards"]["accuracy_embed"] is None
        rw = r["rewards"]
        assert rw["format"] in (0.0, 1.0)
        expected = ((0.1 * rw["format"] + 0.045 * rw["modality"]) / 0.145 if rw["modality"] is not None
                    else rw["format"])
        assert rw["total"] == pytest.approx(expected)


def test_judge_down_fails_fast_with_how_to_fix(tmp_path, capsys, demo):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(inp, demo[:3])
    rc = main(["score", "--input", str(inp), "--output", str(out), "--components", "accuracy_llm",
               "--judge-url", refused_url(), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3 and "vllm serve" in err and "--judge local" in err
    assert not out.exists()


def test_bad_arguments(tmp_path, capsys):
    assert main(["score", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o")]) == 2
    (tmp_path / "in.jsonl").write_text("{}\n")
    assert main(["score", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o"),
                 "--components", "format,acuracy_llm"]) == 2
    assert "Did you mean 'accuracy_llm'" in capsys.readouterr().err


@pytest.mark.slow
def test_score_offline_with_embedded_judge_and_embedding(tmp_path, capsys, demo):
    """Done-when: the bundled demo data scores offline with the embedded judge (SmolLM2) and embedding."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(inp, demo[:10])
    rc = main(["score", "--input", str(inp), "--output", str(out), "--judge", "local",
               "--cache-dir", str(tmp_path / "c"), "--no-progress", "--details"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = read_jsonl(out)
    assert len(rows) == 10
    judged = [r for r in rows if r["reward_details"]["judge_status"] == "ok"]
    assert judged and all(r["rewards"]["accuracy_llm"] in (0.0, 1.0) for r in judged)
    assert all(r["reward_details"]["judge_raw"] in ("YES", "NO") for r in judged)
    assert all(r["rewards"]["accuracy_embed"] in (0.0, 1.0) for r in rows)
    assert "smollm2" in captured.out and "all-MiniLM-L6-v2" in captured.out
