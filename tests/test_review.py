"""Blind A/B review: win rates and Wilson intervals against hand-computed values, Cohen's kappa, the
per-reviewer queue (seeded, resumable, one vote per pair), CSV export and `medix-r1 review results`.

The two eval runs are real `eval run` folders (scripted policy and judge servers on 127.0.0.1) of the
bundled demo test split."""

from __future__ import annotations

import csv
import math

import pytest

from medix_r1.cli import main
from medix_r1.review import Review, cohen_kappa, create_review, wilson_interval, win_rate
from medix_r1.testing.app_runs import make_eval_run, modality_policy


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return make_eval_run(root / "start", model="start"), make_eval_run(root / "trained", modality_policy,
                                                                        model="trained")


def test_wilson_interval_matches_hand_computation():
    # p = 0.7, n = 10, z = 1.96: centre (0.7 + 0.19208) / 1.38415 = 0.64457,
    # half 1.96 * sqrt(0.021 + 0.0096040) / 1.38415 = 0.24772 -> (0.39685, 0.89229)
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.39685, abs=1e-4) and hi == pytest.approx(0.89229, abs=1e-4)
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.43448, abs=1e-4)  # z^2/(n+z^2) = 3.8415/8.8415


def test_ties_count_half_and_both_wrong_is_left_out():
    wr = win_rate(["x"] * 6 + ["y"] * 2 + ["tie"] * 2 + ["both_wrong"] * 3)
    assert (wr.wins, wr.losses, wr.ties, wr.both_wrong, wr.n) == (6, 2, 2, 3, 10)
    assert wr.rate == pytest.approx(0.7)  # (6 + 2/2) / 10
    assert wr.ci95 == pytest.approx(wilson_interval(7, 10))
    assert wr.mirrored().rate == pytest.approx(0.3)
    with pytest.raises(ValueError, match="unknown vote outcome"):
        win_rate(["A"])


def test_cohen_kappa_hand_computed():
    # 10 items, agree on 7: po = 0.7; rater 1 x:5 y:5, rater 2 x:6 y:4 -> pe = 0.5*0.6 + 0.5*0.4 = 0.5
    r1 = ["x"] * 5 + ["y"] * 5
    r2 = ["x", "x", "x", "x", "y", "x", "x", "y", "y", "y"]
    assert sum(a == b for a, b in zip(r1, r2)) == 7
    assert cohen_kappa(r1, r2) == pytest.approx((0.7 - 0.5) / 0.5)
    assert cohen_kappa(["tie"] * 3, ["tie"] * 3) is None  # chance agreement 1: undefined
    assert cohen_kappa([], []) is None


def test_review_queue_votes_results_and_export(runs, tmp_path, capsys):
    start, trained = runs
    folder = create_review(tmp_path / "rev", start, trained, seed=7)
    with pytest.raises(Exception, match="already holds a review"):
        create_review(folder, start, trained)
    r = Review(folder)
    assert len(r.pairs) == 62 and r.x == "start" and r.y == "trained"
    # Seeded per reviewer: the same name gets the same order, another name another one.
    assert r.order("ann") == Review(folder).order("ann") and r.order("ann") != r.order("bob")
    sides = {r.run_shown_as_a("ann", t, s) for t, s in r.pairs}
    assert sides == {"start", "trained"}  # the runs take both sides across pairs

    def vote_for(reviewer, winner_of, n):
        """Vote on the next n pairs; winner_of(i) is 'x', 'y', 'tie' or 'both_wrong' for the i-th vote."""
        for i in range(n):
            p = r.next_pair(reviewer)
            o = winner_of(i)
            if o in ("tie", "both_wrong"):
                choice = o
            else:
                want = r.x if o == "x" else r.y
                choice = "A" if p.run_a == want else "B"
                assert (p.answer_a if choice == "A" else p.answer_b) is not None
            assert r.vote(reviewer, p.task, p.sample, choice, comment=f"vote {i}")

    pattern_ann = ["x", "x", "y", "tie", "both_wrong", "y", "y", "y", "x", "tie"]
    vote_for("ann", lambda i: pattern_ann[i], 10)
    first = r.next_pair("ann")
    assert first.position == 11 and (first.task, first.sample) == r.order("ann")[10]
    # A returning reviewer continues with the pairs not yet voted on; a repeated vote does not count.
    again = Review(folder)
    assert again.next_pair("ann") == first
    t, s = r.order("ann")[0]
    assert again.vote("ann", t, s, "B") is False
    # bob votes on ann's first 6 pairs (other order, so vote by pair): 5 agree, 1 differs.
    ann_votes = {(v["task"], v["sample"]): v["outcome"] for v in r.votes() if v["reviewer"] == "ann"}
    shared = r.order("ann")[:6]
    bob_outcomes = [ann_votes[k] for k in shared[:5]] + ["x"]  # ann said "y" on the 6th
    for (task, sample), o in zip(shared, bob_outcomes):
        a_run = r.run_shown_as_a("bob", task, sample)
        choice = o if o in ("tie", "both_wrong") else ("A" if a_run == (r.x if o == "x" else r.y) else "B")
        assert r.vote("bob", task, sample, choice)

    res = r.results()
    overall = res["rows"][-1]
    # ann: x 3, y 4, tie 2, both_wrong 1; bob: ann's first five (x, x, y, tie, both_wrong) and then x.
    assert (overall["wins"], overall["losses"], overall["ties"], overall["both_wrong"]) == (3 + 3, 4 + 1, 2 + 1, 1 + 1)
    n = 6 + 5 + 3
    assert overall["n"] == n and overall["win_rate"] == pytest.approx((6 + 1.5) / n)
    assert overall["ci95"] == pytest.approx(list(wilson_interval(7.5, n)))
    assert res["rows"][0]["task"] == "medix-demo" and res["rows"][0]["wins"] == 6
    (agree,) = res["agreement"]
    assert agree["reviewers"] == ["ann", "bob"] and agree["n"] == 6
    assert agree["agreement"] == pytest.approx(5 / 6)
    ann6 = [ann_votes[k] for k in shared]
    assert agree["kappa"] == pytest.approx(cohen_kappa(ann6, bob_outcomes))
    assert not math.isnan(agree["kappa"])

    out = tmp_path / "votes.csv"
    r.export_csv(out)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 16 and {r_["reviewer"] for r_ in rows} == {"ann", "bob"}
    assert all(r_["winner"] in ("start", "trained", "tie", "both_wrong") for r_ in rows)
    assert {r_["run_a"] for r_ in rows} <= {"start", "trained"} and rows[0]["comment"] == "vote 0"

    assert main(["review", "results", str(folder), "--csv", str(tmp_path / "table.csv")]) == 0
    printed = capsys.readouterr().out
    assert "| overall | 6 | 5 | 3 | 2 | 53.6 |" in printed  # 7.5 / 14 = 53.6%
    assert "Cohen's kappa" in printed and (tmp_path / "table.csv").read_text().count("\n") == 3


def test_review_results_on_a_folder_that_is_not_a_review(tmp_path, capsys):
    assert main(["review", "results", str(tmp_path)]) == 2
    assert "not a review folder" in capsys.readouterr().err


def test_a_review_can_hide_the_reference(runs, tmp_path):
    folder = create_review(tmp_path / "blind", *runs, show_reference=False)
    with Review(folder) as r:
        assert r.show_reference is False
        assert r.meta["runs"]["x"]["path"] == str(runs[0].resolve())
