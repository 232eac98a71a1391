"""Set eval runs side by side, with the published MediX-R1 numbers as reference rows.

Published figures (the paper's headline results) are the average accuracy over the paper's multimodal
medical benchmarks, judge-scored; they sit in the ``vision mean`` column, the closest thing this harness
computes. The paper also reports 95.1% on the USMLE self-assessment for its largest model. They are shown
beside runs of ``--protocol paper`` only; beside other runs the table says that the protocols differ. Every
row shows its protocol, judge, n (scored / samples) and the 95% CI of its overall, and every format
(console, markdown, HTML) prints the same caveats. All values are fractions (0-1) in data and percentages
in the printed table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medix_r1.errors import InputError
from medix_r1.eval.registry import task_order
from medix_r1.eval.report import pct

# (label, vision-benchmark average, per-task figures) from the paper, converted to fractions.
PUBLISHED: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("MediX-R1 30B (published)", 0.736, {"usmle_sa": 0.951}),
    ("MediX-R1 8B (published)", 0.688, {}),
    ("MediX-R1 2B (published)", 0.554, {}),
)
OTHER_PUBLISHED: tuple[tuple[str, float], ...] = (
    ("MedGemma 27B (published)", 0.684), ("MedMO 8B (published)", 0.621), ("MedGemma 4B (published)", 0.566),
    ("HuatuoGPT-V 7B (published)", 0.558), ("BiMediX2 8B (published)", 0.556), ("MedVLM-R1 2B (published)", 0.427),
)
SUMMARY_COLUMNS = ("overall", "text_mean", "vision_mean")


def load_results(path: str | Path) -> dict[str, Any]:
    """``results.json`` of a run folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise InputError("no results.json there", where=str(p),
                         fix=f"run `medix-r1 eval score --output-dir {p.parent}` first")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno})", where=str(p),
                         fix="rerun `medix-r1 eval score` on its folder") from None


def compare_runs(runs: list[str | Path | dict], *, published: bool = True, all_published: bool = False,
                 labels: list[str] | None = None) -> dict[str, Any]:
    """Rows of ``{label, kind, protocol, judge, n, overall, overall_ci95, text_mean, vision_mean, tasks}``, the
    task columns and the caveats to print with the table.

    Published rows are added only when every run used ``--protocol paper``: other runs' numbers are not
    comparable with the paper's, and a caveat says so instead. ``runs`` are run folders, results.json files,
    or results dicts (what :func:`~medix_r1.eval.run_eval` returns), e.g. a demo's before/after table::

        print(render_compare_markdown(compare_runs([before, after], labels=["start", "trained"],
                                                   published=False)))
    """
    rows: list[dict[str, Any]] = []
    tasks: set[str] = set()
    caveats: list[str] = []
    for i, p in enumerate(runs):
        res = p if isinstance(p, dict) else load_results(p)
        label = (labels[i] if labels and i < len(labels)
                 else (res.get("model") or {}).get("name") or str(p if not isinstance(p, dict) else i))
        accs = {t: v.get("accuracy") for t, v in res["tasks"].items()}
        tasks.update(accs)
        judge = res.get("judge") or {}
        rows.append({"label": label, "source": res.get("results_path", "" if isinstance(p, dict) else str(p)),
                     "kind": "run", "protocol": res.get("protocol") or "default",
                     "judge": judge.get("model") or "none", "weak_judge": bool(judge.get("weak")),
                     "n": res.get("n_samples", sum(t.get("n", 0) for t in res["tasks"].values())),
                     "n_scored": res.get("n_scored", sum(t.get("n_scored", 0) for t in res["tasks"].values())),
                     "limit": res.get("limit"), "overall_ci95": res.get("overall_ci95"),
                     **{c: res.get(c) for c in SUMMARY_COLUMNS}, "tasks": accs,
                     "excluded": list(res.get("overall_excluded") or {})})
    for r in rows:
        if r["weak_judge"] or "smollm" in r["judge"].lower():
            caveats.append(f"{r['label']}: judged by the weak bundled judge {r['judge']}; its numbers say little.")
        if r["limit"]:
            caveats.append(f"{r['label']}: --limit {r['limit']} per task ({r['n']} samples), not a full benchmark.")
        if r["excluded"]:
            caveats.append(f"{r['label']}: overall leaves out tasks under its coverage threshold: "
                           f"{', '.join(r['excluded'])}.")
    non_paper = [r["label"] for r in rows if r["protocol"] != "paper"]
    if published and non_paper:
        caveats.append(f"published numbers left out: {', '.join(non_paper)} used the default protocol, which "
                       "differs from the paper's (prompts, judge input and prompt, rule shortcuts; see docs/eval.md)."
                       " Rerun with --protocol paper to set them beside the paper.")
        published = False
    if published:
        for label, avg, per_task in PUBLISHED:
            rows.append(_published_row(label, avg, dict(per_task)))
        if all_published:
            for label, avg in OTHER_PUBLISHED:
                rows.append(_published_row(label, avg, {}))
        caveats.append(PUBLISHED_CAVEAT)
    # Task columns come from the runs; a published per-task figure shows only where a run has that task.
    return {"rows": rows, "tasks": sorted(tasks, key=task_order), "caveats": caveats}


PUBLISHED_CAVEAT = ("Published rows: the paper's average over its multimodal benchmarks (judge-scored, judge "
                    "Qwen3-14B), shown as the vision mean; its benchmark mix and sample counts may differ from "
                    "this run's, so read them as a scale, not a like-for-like score.")


def _published_row(label: str, avg: float, per_task: dict[str, float]) -> dict[str, Any]:
    return {"label": label, "source": "MediX-R1 paper", "kind": "published", "protocol": "paper",
            "judge": "Qwen3-14B (paper)", "weak_judge": False, "n": None, "n_scored": None, "limit": None,
            "overall_ci95": None, "overall": None, "text_mean": None, "vision_mean": avg, "tasks": per_task,
            "excluded": []}


HEADER = ["run", "protocol", "judge", "n", "overall %", "95% CI", "text mean %", "vision mean %"]


def table_cells(table: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of every row (one definition for markdown, HTML and the console)."""
    header = [*HEADER, *table["tasks"]]
    out = []
    for r in table["rows"]:
        ci = r.get("overall_ci95")
        n = "-" if r.get("n") is None else (f"{r['n_scored']}/{r['n']}" if r.get("n_scored") is not None
                                            else str(r["n"]))
        cells = [r["label"], r.get("protocol") or "default", r.get("judge") or "-", n, pct(r["overall"]),
                 f"{pct(ci[0])}-{pct(ci[1])}" if ci else "-", pct(r["text_mean"]), pct(r["vision_mean"])]
        cells += [pct(r["tasks"].get(t)) for t in table["tasks"]]
        out.append(cells)
    return header, out


def render_compare_markdown(table: dict[str, Any]) -> str:
    header, rows = table_cells(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in rows]
    if table.get("caveats"):
        lines += ["", *[f"- {c}" for c in table["caveats"]]]
    return "\n".join(lines)


def render_compare_html(table: dict[str, Any]) -> str:
    import html

    header, rows = table_cells(table)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    notes = "".join(f"<li>{html.escape(c)}</li>" for c in table.get("caveats") or [])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>medix-r1 eval comparison</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style></head>"
            f"<body><h1>medix-r1 eval comparison</h1><table><tr>{head}</tr>{body}</table>"
            + (f"<ul class='caveats'>{notes}</ul>" if notes else "") + "</body></html>\n")


__all__ = ["OTHER_PUBLISHED", "PUBLISHED", "PUBLISHED_CAVEAT", "compare_runs", "load_results",
           "render_compare_html", "render_compare_markdown", "table_cells"]
