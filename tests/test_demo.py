"""The demo's offline stages (data rebuild + validation, prompt and parser walk-through).

Training and evaluation stages are covered by the train and eval tests; here the demo must find the shipped
data byte-identical to a rebuild and print the parser's verdicts on its example completions.
"""

from medix_r1.cli import main
from medix_r1.demo import EXAMPLE_COMPLETIONS, run_demo


def test_demo_rebuilds_identical_data_and_walks_through_the_parser(tmp_path):
    lines: list[str] = []
    res = run_demo(tmp_path / "demo", train=False, evaluate=False, say=lambda *a: lines.append(" ".join(map(str, a))))
    assert res.deterministic is True
    assert (tmp_path / "demo" / "data" / "train.jsonl").is_file()
    out = "\n".join(lines)
    assert "0 bad" in out
    assert "identical to" in out
    # one verdict line per example completion, with the malformed ones explained
    assert out.count("well_formed=") == len(EXAMPLE_COMPLETIONS)
    assert "(more than one <answer> block)" in out and "(no <thinking> block)" in out
    assert res.train is None and res.eval_before is None
    assert lines[-1] == f"browse the runs, samples and verdicts in the app: medix-r1 app --runs {tmp_path / 'demo'}"


def test_a_typo_in_demo_set_is_caught_before_stage_1(tmp_path, capsys):
    """Issue 9: `demo --set` with a typo failed with a traceback after stages 1-2 had run."""
    out = tmp_path / "demo"
    rc = main(["demo", "--output-dir", str(out), "--set", "trainer.max_stepz=2"])
    cap = capsys.readouterr()
    assert rc == 2 and "max_stepz" in cap.err and "Traceback" not in cap.err
    assert "== 1. data" not in cap.out and not (out / "data").exists()
