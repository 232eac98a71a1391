"""A blind A/B review of two eval runs: its folder, the votes in SQLite, each reviewer's queue, the results.

A review folder holds ``review.json`` (the two runs, the pairs, whether the reference is shown, the seed) and
``votes.sqlite`` (one row per vote: reviewer, UTC time, task, sample, which run was shown as A, the choice
``A`` / ``B`` / ``tie`` / ``both_wrong``, an optional comment). A reviewer votes once per pair: a second vote
on the same pair is ignored, so a double click or two open tabs never count twice.

Each reviewer gets their own order of the pairs and their own A/B sides, both drawn from a generator seeded
with the review's seed and the reviewer's name: the same reviewer always sees the same order, and a returning
reviewer continues with the pairs they have not voted on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError, UsageError
from medix_r1.review.stats import WinRate, cohen_kappa, win_rate

REVIEW_FILE = "review.json"
VOTES_FILE = "votes.sqlite"
SCHEMA = "medix-r1-review/1"
CHOICES = ("A", "B", "tie", "both_wrong")

_DDL = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL,
    task TEXT NOT NULL,
    sample TEXT NOT NULL,
    run_a TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'both_wrong')),
    comment TEXT NOT NULL DEFAULT '',
    UNIQUE (reviewer, task, sample)
)
"""


@dataclass(frozen=True)
class Pair:
    """One sample as a reviewer sees it: ``a`` and ``b`` are the two runs' answers in this reviewer's order."""

    task: str
    sample: str
    question: str
    reference: str
    run_a: str
    run_b: str
    answer_a: str
    answer_b: str
    has_image: bool
    position: int
    """1-based position in this reviewer's queue."""
    total: int


def create_review(folder: str | Path, run_x: str | Path, run_y: str | Path, *, show_reference: bool = True,
                  seed: int = 0, names: tuple[str, str] | None = None) -> Path:
    """Set up a review of two eval runs over the samples both generated; returns the folder.

    The pairs are the samples with a generation in both runs. Raises :class:`UsageError` when the folder
    already holds a review, or the runs share no sample.
    """
    from medix_r1.app.runs import eval_samples

    out = Path(folder)
    if (out / REVIEW_FILE).exists():
        raise UsageError("this folder already holds a review", where=str(out),
                         fix="open it in the app, or choose another folder for a new review")
    x, y = Path(run_x), Path(run_y)
    sx, _ = eval_samples(x)
    sy, _ = eval_samples(y)
    have_y = {(s["task"], s["id"]) for s in sy if s["prediction"] is not None}
    pairs = [[s["task"], s["id"]] for s in sx if s["prediction"] is not None and (s["task"], s["id"]) in have_y]
    if not pairs:
        raise UsageError("the two runs share no generated sample", where=f"{x} and {y}",
                         fix="pick two eval runs of the same tasks")
    nx, ny = names or (x.name, y.name)
    if nx == ny:
        nx, ny = f"{nx} (1)", f"{ny} (2)"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"schema": SCHEMA, "created": _now(), "seed": int(seed), "show_reference": bool(show_reference),
            "runs": {"x": {"name": nx, "path": str(x.resolve())}, "y": {"name": ny, "path": str(y.resolve())}},
            "pairs": pairs}
    tmp = out / (REVIEW_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp.replace(out / REVIEW_FILE)
    Review(out).close()  # creates votes.sqlite
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Review:
    """An open review folder (see the module doc)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / REVIEW_FILE
        try:
            self.meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("not a review folder (no review.json)", where=str(self.folder),
                             fix="create one in the app's Review tab or with `medix-r1 review create`") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"review.json is not readable JSON ({exc})", where=str(path)) from None
        if self.meta.get("schema") != SCHEMA:
            raise InputError(f"review.json has schema {self.meta.get('schema')!r}, expected {SCHEMA!r}",
                             where=str(path))
        self.x = self.meta["runs"]["x"]["name"]
        self.y = self.meta["runs"]["y"]["name"]
        self.pairs = [tuple(p) for p in self.meta["pairs"]]
        self._db = sqlite3.connect(self.folder / VOTES_FILE, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_DDL)
        self._db.commit()
        self._samples: dict[str, dict] | None = None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Review:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def show_reference(self) -> bool:
        return bool(self.meta.get("show_reference", True))

    # ------------------------------------------------------------------ queue
    def order(self, reviewer: str) -> list[tuple[str, str]]:
        """This reviewer's order of the pairs (seeded by the review's seed and the name)."""
        pairs = list(self.pairs)
        _rng(self.meta.get("seed", 0), reviewer).shuffle(pairs)
        return pairs

    def run_shown_as_a(self, reviewer: str, task: str, sample: str) -> str:
        return self.x if _rng(self.meta.get("seed", 0), reviewer, task, sample).random() < 0.5 else self.y

    def voted(self, reviewer: str) -> set[tuple[str, str]]:
        rows = self._db.execute("SELECT task, sample FROM votes WHERE reviewer = ?", (reviewer,))
        return {(t, s) for t, s in rows}

    def _answers(self) -> dict[str, dict]:
        if self._samples is None:
            from medix_r1.app.runs import eval_samples

            self._samples = {}
            for side in ("x", "y"):
                samples, _ = eval_samples(self.meta["runs"][side]["path"])
                self._samples[side] = {(s["task"], s["id"]): s for s in samples}
        return self._samples

    def next_pair(self, reviewer: str) -> Pair | None:
        """The first pair in this reviewer's order that they have not voted on (``None``: all done)."""
        reviewer = _reviewer(reviewer)
        order = self.order(reviewer)
        done = self.voted(reviewer)
        for i, (task, sample) in enumerate(order):
            if (task, sample) in done:
                continue
            answers = self._answers()
            sx, sy = answers["x"].get((task, sample)), answers["y"].get((task, sample))
            if sx is None or sy is None:
                raise InputError(f"sample {task}/{sample} is missing from one of the runs",
                                 where=f"{self.meta['runs']['x']['path']} / {self.meta['runs']['y']['path']}")
            a_is_x = self.run_shown_as_a(reviewer, task, sample) == self.x
            first, second = (sx, sy) if a_is_x else (sy, sx)
            return Pair(task=task, sample=sample, question=sx["question"] or "", reference=sx["reference"] or "",
                        run_a=self.x if a_is_x else self.y, run_b=self.y if a_is_x else self.x,
                        answer_a=first["prediction"] or "", answer_b=second["prediction"] or "",
                        has_image=bool(sx["has_image"]), position=len(done) + 1, total=len(order))
        return None

    def vote(self, reviewer: str, task: str, sample: str, choice: str, comment: str = "") -> bool:
        """Record a vote; ``False`` when this reviewer already voted on this pair (the first vote stands)."""
        reviewer = _reviewer(reviewer)
        if choice not in CHOICES:
            raise UsageError(f"unknown choice {choice!r}", fix=f"one of {', '.join(CHOICES)}")
        if (task, sample) not in set(self.pairs):
            raise UsageError(f"{task}/{sample} is not a pair of this review", where=str(self.folder))
        run_a = self.run_shown_as_a(reviewer, task, sample)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO votes (reviewer, time, task, sample, run_a, choice, comment) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (reviewer, _now(), task, sample, run_a, choice, comment or ""))
        self._db.commit()
        return cur.rowcount == 1

    # ------------------------------------------------------------------ results
    def votes(self) -> list[dict]:
        """Every vote, oldest first, with ``outcome`` in terms of the runs (``x``, ``y``, ``tie``,
        ``both_wrong``; ``x`` is the review's first run)."""
        cur = self._db.execute("SELECT reviewer, time, task, sample, run_a, choice, comment FROM votes ORDER BY id")
        out = []
        for reviewer, t, task, sample, run_a, choice, comment in cur:
            if choice in ("tie", "both_wrong"):
                outcome = choice
            else:
                winner = run_a if choice == "A" else (self.y if run_a == self.x else self.x)
                outcome = "x" if winner == self.x else "y"
            out.append({"reviewer": reviewer, "time": t, "task": task, "sample": sample, "run_a": run_a,
                        "choice": choice, "outcome": outcome, "comment": comment})
        return out

    def results(self) -> dict:
        """Win rates per task and overall (first run's view; the second's is the mirror), Cohen's kappa for
        each pair of reviewers who voted on common pairs, and counts."""
        votes = self.votes()
        by_task: dict[str, list[str]] = {}
        for v in votes:
            by_task.setdefault(v["task"], []).append(v["outcome"])
        rows = [_row(task, win_rate(outs)) for task, outs in sorted(by_task.items())]
        rows.append(_row("overall", win_rate(v["outcome"] for v in votes)))
        reviewers = sorted({v["reviewer"] for v in votes})
        per = {r: {(v["task"], v["sample"]): v["outcome"] for v in votes if v["reviewer"] == r} for r in reviewers}
        agreement = []
        for i, r1 in enumerate(reviewers):
            for r2 in reviewers[i + 1:]:
                common = sorted(set(per[r1]) & set(per[r2]))
                if common:
                    k = cohen_kappa([per[r1][c] for c in common], [per[r2][c] for c in common])
                    agreement.append({"reviewers": [r1, r2], "n": len(common), "kappa": k,
                                      "agreement": sum(per[r1][c] == per[r2][c] for c in common) / len(common)})
        return {"runs": [self.x, self.y], "rows": rows, "agreement": agreement, "n_votes": len(votes),
                "n_pairs": len(self.pairs), "reviewers": reviewers}

    def export_csv(self, path: str | Path) -> Path:
        """The votes as CSV, one row each, with the two runs named (``run_a``, ``run_b``, ``winner``)."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["reviewer", "time", "task", "sample", "run_a", "run_b", "choice", "winner", "comment"])
            for v in self.votes():
                run_b = self.y if v["run_a"] == self.x else self.x
                winner = {"x": self.x, "y": self.y}.get(v["outcome"], v["outcome"])
                w.writerow([v["reviewer"], v["time"], v["task"], v["sample"], v["run_a"], run_b, v["choice"],
                            winner, v["comment"]])
        return path


def _reviewer(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise UsageError("enter a reviewer name first", fix="type your name in the Reviewer box")
    return name


def _row(scope: str, wr: WinRate) -> dict:
    ci = wr.ci95
    return {"task": scope, "wins": wr.wins, "losses": wr.losses, "ties": wr.ties, "both_wrong": wr.both_wrong,
            "n": wr.n, "win_rate": wr.rate, "ci95": list(ci) if ci else None}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def format_results(res: dict) -> str:
    """The results as a plain-text table (``medix-r1 review results``)."""
    x, y = res["runs"]
    lines = [f"{x} vs {y}: {res['n_votes']} votes on {res['n_pairs']} pairs by {len(res['reviewers'])} reviewer(s)",
             "win rate of the first run; ties count half, 'both wrong' is left out; 95% Wilson interval", "",
             f"| task | {x} wins | {y} wins | ties | both wrong | {x} win rate % | 95% CI | {y} win rate % |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        ci = "-" if r["ci95"] is None else f"{_pct(r['ci95'][0])}-{_pct(r['ci95'][1])}"
        other = None if r["win_rate"] is None else 1 - r["win_rate"]
        lines.append(f"| {r['task']} | {r['wins']} | {r['losses']} | {r['ties']} | {r['both_wrong']} | "
                     f"{_pct(r['win_rate'])} | {ci} | {_pct(other)} |")
    if res["agreement"]:
        lines.append("")
        for a in res["agreement"]:
            k = "undefined (one label throughout)" if a["kappa"] is None else f"{a['kappa']:.3f}"
            lines.append(f"agreement {a['reviewers'][0]} / {a['reviewers'][1]}: {a['n']} common pairs, "
                         f"raw {100 * a['agreement']:.1f}%, Cohen's kappa {k}")
    return "\n".join(lines)


def results_csv(res: dict, path: str | Path) -> Path:
    """The results table as CSV."""
    path = Path(path)
    x, y = res["runs"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "run", "opponent", "wins", "losses", "ties", "both_wrong", "n", "win_rate",
                    "ci95_low", "ci95_high"])
        for r in res["rows"]:
            ci = r["ci95"] or [None, None]
            w.writerow([r["task"], x, y, r["wins"], r["losses"], r["ties"], r["both_wrong"], r["n"],
                        r["win_rate"], ci[0], ci[1]])
    return path


__all__ = ["CHOICES", "Pair", "Review", "create_review", "format_results", "results_csv"]
