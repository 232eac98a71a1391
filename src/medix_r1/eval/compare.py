"""Set eval runs side by side, with the published MediX-R1 numbers as reference rows.

Published figures (reference.md §7, the paper's Table of headline results) are the average accuracy over the
paper's multimodal medical benchmarks, judge-scored; they sit in the ``vision mean`` column, the closest
thing this harness computes (the paper's benchmark mix and judge differ, so read them as a scale, not as a
like-for-like score). The paper also reports 95.1% on the USMLE self-assessment for its largest model.
All values are fractions (0-1) in data and percentages in the printed table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medix_r1.eval.registry import task_order
from medix_r1.eval.report import pct

# (label, vision-benchmark average, per-task figures) - reference.md §7, converted to fractions.
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
        raise FileNotFoundError(f"{p} not found: run `medix-r1 eval score --output-dir {p.parent}` first")
    return json.loads(p.read_text(encoding="utf-8"))


def compare_runs(runs: list[str | Path | dict], *, published: bool = True, all_published: bool = False,
                 labels: list[str] | None = None) -> dict[str, Any]:
    """Rows of ``{label, kind, overall, text_mean, vision_mean, tasks: {task: accuracy}}`` and the task columns.

    ``runs`` are run folders, results.json files, or results dicts (what :func:`~medix_r1.eval.run_eval`
    returns), e.g. a demo's before/after table::

        print(render_compare_markdown(compare_runs([before, after], labels=["start", "trained"],
                                                   published=False)))
    """
    rows: list[dict[str, Any]] = []
    tasks: set[str] = set()
    for i, p in enumerate(runs):
        res = p if isinstance(p, dict) else load_results(p)
        label = (labels[i] if labels and i < len(labels)
                 else (res.get("model") or {}).get("name") or str(p if not isinstance(p, dict) else i))
        accs = {t: v.get("accuracy") for t, v in res["tasks"].items()}
        tasks.update(accs)
        rows.append({"label": label, "source": res.get("results_path", "" if isinstance(p, dict) else str(p)),
                     "kind": "run",
                     **{c: res.get(c) for c in SUMMARY_COLUMNS}, "tasks": accs,
                     "judge": (res.get("judge") or {}).get("model")})
    if published:
        for label, avg, per_task in PUBLISHED:
            rows.append({"label": label, "source": "reference.md §7", "kind": "published", "overall": None,
                         "text_mean": None, "vision_mean": avg, "tasks": dict(per_task), "judge": "paper"})
        if all_published:
            for label, avg in OTHER_PUBLISHED:
                rows.append({"label": label, "source": "reference.md §7", "kind": "published", "overall": None,
                             "text_mean": None, "vision_mean": avg, "tasks": {}, "judge": "paper"})
    # Task columns come from the runs; a published per-task figure shows only where a run has that task.
    return {"rows": rows, "tasks": sorted(tasks, key=task_order)}


def render_compare_markdown(table: dict[str, Any]) -> str:
    header = ["run", "overall %", "text mean %", "vision mean %", *table["tasks"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in table["rows"]:
        cells = [r["label"], pct(r["overall"]), pct(r["text_mean"]), pct(r["vision_mean"])]
        cells += [pct(r["tasks"].get(t)) for t in table["tasks"]]
        lines.append("| " + " | ".join(cells) + " |")
    if any(r["kind"] == "published" for r in table["rows"]):
        lines += ["", ("Published rows: the paper's average over its multimodal benchmarks (judge-scored), shown "
                       "as the vision mean; its benchmark mix and judge differ from this run's.")]
    return "\n".join(lines)


def render_compare_html(table: dict[str, Any]) -> str:
    import html

    md_rows = render_compare_markdown(table).splitlines()
    head = [c.strip() for c in md_rows[0].strip("|").split("|")]
    body = []
    for line in md_rows[2:]:
        if not line.startswith("|"):
            continue
        body.append("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|"))
                    + "</tr>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>medix-r1 eval comparison</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style></head>"
            "<body><h1>medix-r1 eval comparison</h1><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(body) + "</table></body></html>\n")


__all__ = ["OTHER_PUBLISHED", "PUBLISHED", "compare_runs", "load_results", "render_compare_html",
           "render_compare_markdown"]
