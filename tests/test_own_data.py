"""docs/own-data.md, followed end to end (issue 9: "docs/own-data.md is followed end to end by a test").

The rows, the recipe and the laptop overrides are read from the page itself, so the page cannot drift from
what works: validate, dry-run, train (tiny random Qwen2.5-VL, two GRPO steps), evaluate the trained folder on
the held-out rows, compare. The reward's and the evaluation's judge is a scripted OpenAI-compatible server on
127.0.0.1 in place of the page's vLLM server (the test never leaves the machine).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

from medix_r1.cli import main
from medix_r1.testing.openai_stub import StubChatServer

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def _commands() -> list[list[str]]:
    """Every `medix-r1 ...` command of the page's bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("medix-r1 "):
                out.append(shlex.split(line)[1:])
    return out


def _judge(messages, request):
    # the evaluation judge is asked for {"score": 0|1}; the reward's judge for YES/NO, varying with the
    # completion so that some groups' rewards differ
    text = json.dumps(messages)
    if "score" in text:
        return '{"score": 1}'
    return "YES" if len(text) % 2 else "NO"


def _with_stub_judge(argv: list[str], url: str, cache: Path) -> list[str]:
    """The page's command with the stub judge in place of its judge server (and its local judge)."""
    if argv[0] == "train":
        return [*argv, "--set", "reward.judge.backend=openai", "--set", f"reward.judge.url={url}",
                "--set", "reward.judge.model=stub-judge", "--set", f"reward.judge.cache_path={cache}"]
    out = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--judge-url", "--judge-model"):
            out += [a, url if a == "--judge-url" else "stub-judge"]
            skip = True
            continue
        out.append(a)
    return out


def test_own_data_walkthrough(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # 1. the rows of the page, and images where the rows say
    rows = [json.loads(line) for line in _blocks("jsonl")[0].splitlines() if line.strip()]
    data = tmp_path / "my_data"
    (data / "images").mkdir(parents=True)
    for i, row in enumerate(rows):
        for img in row["image"] if isinstance(row["image"], list) else [row["image"]]:
            Image.new("RGB", (96, 80), (40 * i, 90, 160)).save(data / img)
    for name in ("train.jsonl", "test.jsonl"):
        (data / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "my_recipe.yaml").write_text(_blocks("yaml")[0])

    commands = _commands()
    by_step = {
        "validate": [c for c in commands if c[:2] == ["data", "validate"]],
        "dry-run": [c for c in commands if c[0] == "train" and "--dry-run" in c],
        "try": [c for c in commands if c[0] == "train" and "runs/try" in c],
        "eval": [c for c in commands if c[:2] == ["eval", "run"]][:1],
        "compare": [c for c in commands if c[:2] == ["eval", "compare"]],
    }
    assert all(by_step.values()), by_step

    # 2. validate (and the summaries)
    for argv in by_step["validate"] + [c for c in commands if c[:2] in (["data", "stats"], ["data", "show"])]:
        assert main(argv) == 0, argv
    assert f"OK: {len(rows)} good row(s), 0 bad row(s)" in capsys.readouterr().out

    # 3. the dry run of the page's recipe (its hub model is not loaded)
    assert main(by_step["dry-run"][0]) == 0
    assert "recipe OK" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

    with StubChatServer(_judge) as judge:
        # 4. train: the page's laptop command
        assert main(_with_stub_judge(by_step["try"][0], judge.url, tmp_path / "verdicts.sqlite")) == 0
        run = tmp_path / "runs" / "try"
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics if "step" in m][-1] == 2
        assert (run / "final" / "config.json").exists()
        reward_requests = judge.request_count
        assert reward_requests > 0

        # 5. evaluate the trained policy on the held-out rows (the page's command, trained folder, short)
        argv = _with_stub_judge(by_step["eval"][0], judge.url, tmp_path / "verdicts.sqlite")
        argv[argv.index("--model") + 1] = "runs/try/final"
        assert main([*argv, "--max-new-tokens", "16", "--no-progress"]) == 0
    out_dir = tmp_path / argv[argv.index("--output-dir") + 1]
    results = json.loads((out_dir / "results.json").read_text())
    (task,) = results["tasks"].values()
    assert task["n"] == len(rows)
    assert (out_dir / "report.md").exists() and (out_dir / "report.html").exists()

    compare = by_step["compare"][0]
    compare = [compare[0], compare[1], str(out_dir), *compare[compare.index("--output"):]]
    assert main(compare) == 0
    assert (tmp_path / "compare.md").exists()
