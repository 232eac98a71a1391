"""Human-readable reports of an eval run: ``report.md``, ``report.html`` and ``accuracy.png``.

The reports open with their warnings (a weak judge, a ``--limit`` run, tasks under the coverage threshold).
The chart shows per-task accuracy bars with their 95% bootstrap CI as error bars. Tables give per-task
coverage (scored / n), accuracy, counts (exact vs judged, bad input, failures, unparseable, pending, answers
the injection guard flagged) and the breakdowns by answer type and by modality. Reports print accuracies as percentages with one decimal; results.json keeps 0-1 fractions.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHART_FILE = "accuracy.png"
NOTE = ("Accuracies are percentages of the scored samples. Coverage is scored / n; bad input (rows that cannot "
        "be asked), failed (generator or judge errors), unparseable and pending samples are counted apart and "
        "left out of accuracy. Overall averages only the tasks whose coverage reaches the threshold.")


def pct(x: float | None) -> str:
    """``0.7364 -> '73.6'``; ``None -> '-'``."""
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(t: dict) -> str:
    return "-" if not t.get("ci95") else f"{pct(t['ci95'][0])}-{pct(t['ci95'][1])}"


def task_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, t in results["tasks"].items():
        c = t["counts"]
        cov = t.get("coverage") or {"rate": t["n_scored"] / t["n"] if t["n"] else 0.0, "below_threshold": False}
        mark = " (!)" if cov.get("below_threshold") else ""
        rows.append([name, t.get("kind") or "-", f"{t['n_scored']}/{t['n']}", f"{100 * cov['rate']:.0f}{mark}",
                     pct(t["accuracy"]), _ci(t), str(c.get("exact", 0)), str(c.get("judged", 0)),
                     str(c.get("bad_input", 0)), str(c.get("generation_failed", 0) + c.get("judge_failed", 0)),
                     str(c.get("unparseable", 0)), str(c.get("pending", 0)), str(c.get("flagged", 0))])
    return rows


TASK_HEADER = ["task", "kind", "scored/n", "coverage %", "accuracy %", "95% CI", "exact", "judged", "bad input",
               "failed", "unparseable", "pending", "guard flagged"]


def warning_lines(results: dict[str, Any]) -> list[str]:
    """What a reader must see before any number: a weak judge, a --limit run, tasks under the threshold."""
    out = []
    judge = results.get("judge") or {}
    if judge.get("weak") or "smollm" in str(judge.get("model") or "").lower():
        out.append(f"the judge {judge.get('model')} is the bundled SmolLM2-135M: a weak judge that exercises the "
                   "code path (it marks many wrong answers correct); these accuracies say little about the model. "
                   "Use a served judge such as Qwen/Qwen3-14B for real numbers.")
    if results.get("limit"):
        out.append(f"--limit {results['limit']}: only the first {results['limit']} samples of each task were "
                   "evaluated (a smoke test, not a benchmark score).")
    out += list(results.get("warnings") or [])
    return out

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def breakdown_rows(results: dict[str, Any], key: str) -> list[list[str]]:
    rows = []
    for name, t in results["tasks"].items():
        for group, b in t.get(key, {}).items():
            rows.append([name, group, str(b["n"]), str(b["n_scored"]), pct(b["accuracy"])])
    return rows


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    ci = results.get("overall_ci95")
    n_in = len(results.get("overall_tasks") or [])
    left = results.get("overall_excluded") or {}
    note = f"{n_in} task(s)" + (f"; left out (coverage under {pct(results.get('coverage_threshold'))}%): "
                                f"{', '.join(left)}" if left else "")
    return [["overall (mean over tasks)", pct(results.get("overall")),
             f"{pct(ci[0])}-{pct(ci[1])}" if ci else "-", note],
            ["text tasks mean", pct(results.get("text_mean")), "", ""],
            ["vision tasks mean", pct(results.get("vision_mean")), "", ""]]


SUMMARY_HEADER = ["mean", "accuracy %", "95% CI", "tasks"]


def plot_accuracy(results: dict[str, Any], path: str | Path) -> Path | None:
    """Per-task accuracy bars with CI error bars (PNG). Returns the path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the report still has its tables
        log.warning("matplotlib is not installed: report without chart")
        return None
    names = list(results["tasks"])
    accs = [results["tasks"][n]["accuracy"] for n in names]
    vals = [100 * a if a is not None else 0.0 for a in accs]
    lo_err, hi_err = [], []
    for n, v in zip(names, vals):
        ci = results["tasks"][n].get("ci95")
        lo_err.append(max(0.0, v - 100 * ci[0]) if ci else 0.0)
        hi_err.append(max(0.0, 100 * ci[1] - v) if ci else 0.0)
    colors = ["#4C72B0" if results["tasks"][n].get("kind") == "text" else "#DD8452" for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.2))
    x = range(len(names))
    ax.bar(x, vals, color=colors, yerr=[lo_err, hi_err], capsize=3, ecolor="#333333")
    if results.get("overall") is not None:
        ax.axhline(100 * results["overall"], color="#55A868", linestyle="--", linewidth=1,
                   label=f"overall {pct(results['overall'])}%")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)  [bars: 95% bootstrap CI]")
    model = (results.get("model") or {}).get("name", "")
    ax.set_title(f"{model}: per-task accuracy (blue: text, orange: vision)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _header_lines(results: dict[str, Any]) -> list[tuple[str, str]]:
    model = results.get("model") or {}
    judge = results.get("judge") or {}
    gen = results.get("generation") or {}
    prompt = gen.get("prompt") or {}
    judge_text = judge.get("model") or "none (rule decisions only)"
    if judge.get("model"):
        judge_text += (f", {judge.get('rounds')} round(s), prompts {', '.join((judge.get('prompts') or {}).values())}"
                       f", guard {judge.get('guard', 'report')}")
        if judge.get("weak"):
            judge_text += " (WEAK: the bundled 135M judge)"
    limit = results.get("limit")
    return [
        ("model", f"{model.get('name', '-')} ({model.get('backend', '-')})"),
        ("judge", judge_text),
        ("protocol", results.get("protocol") or "default"),
        ("samples", f"{results.get('n_scored', '-')} scored of {results.get('n_samples', '-')}"
                    + (f" (--limit {limit} per task)" if limit else " (no --limit)")),
        ("generation", (f"max {gen.get('max_new_tokens', '-')} new tokens, temperature "
                        f"{gen.get('temperature', '-')}, prompt {prompt.get('version', '-')}")),
        ("CI", (f"95% percentile bootstrap, {results['config']['bootstrap_resamples']} resamples, "
                f"seed {results['config']['seed']}")),
        ("coverage threshold", f"{pct(results.get('coverage_threshold'))}% of a task's samples scored"),
    ]


def render_markdown(results: dict[str, Any], chart: str | None = CHART_FILE) -> str:
    parts = ["# medix-r1 eval report", ""]
    for w in warning_lines(results):
        parts += [f"> **WARNING**: {w}", ""]
    parts += [f"- **{k}**: {v}" for k, v in _header_lines(results)]
    parts += ["", NOTE, ""]
    parts += ["## Summary", "", _md_table(SUMMARY_HEADER, summary_rows(results)), ""]
    if chart:
        parts += [f"![per-task accuracy with 95% CI]({chart})", ""]
    parts += ["## Tasks", "", _md_table(TASK_HEADER, task_rows(results)), ""]
    parts += ["## By answer type", "", _md_table(["task", "answer type", "n", "scored", "accuracy %"],
                                                  breakdown_rows(results, "by_answer_type")), ""]
    parts += ["## By modality", "", _md_table(["task", "modality", "n", "scored", "accuracy %"],
                                               breakdown_rows(results, "by_modality")), ""]
    stats = {k: s for k, s in (results.get("judge_stats") or {}).items() if s.get("requests")}
    if stats:
        parts += ["## Judge", ""]
        for kind, s in stats.items():
            parts.append(f"- {kind}: {s.get('requests', 0)} requests, by status {s.get('by_status', {})}, "
                         f"cache hit rate {pct(s.get('cache_hit_rate'))}%, mean latency "
                         f"{s.get('mean_latency_s', 0):.3f} s")
        parts.append("")
    return "\n".join(parts)


def render_console(results: dict[str, Any]) -> str:
    """What ``eval run`` / ``eval score`` print: warnings first, the task table, the means."""
    lines = [f"WARNING: {w}" for w in warning_lines(results)]
    lines += [_md_table(TASK_HEADER, task_rows(results)), ""]
    ci = results.get("overall_ci95")
    left = results.get("overall_excluded") or {}
    lines.append(f"overall {pct(results.get('overall'))}%"
                 + (f" (95% CI {pct(ci[0])}-{pct(ci[1])})" if ci else "")
                 + f"  text {pct(results.get('text_mean'))}%  vision {pct(results.get('vision_mean'))}%  "
                 f"(unweighted means over the {len(results.get('overall_tasks') or [])} task(s) with coverage >= "
                 f"{pct(results.get('coverage_threshold'))}%" + (f"; left out: {', '.join(left)}" if left else "")
                 + f"; protocol {results.get('protocol') or 'default'})")
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(results: dict[str, Any], chart_png: Path | None) -> str:
    img = ""
    if chart_png is not None and Path(chart_png).exists():
        data = base64.b64encode(Path(chart_png).read_bytes()).decode("ascii")
        img = f'<img alt="per-task accuracy with 95% CI" src="data:image/png;base64,{data}">'
    meta = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _header_lines(results))
    warns = "".join(f"<p class='warn'><b>WARNING</b>: {html.escape(w)}</p>" for w in warning_lines(results))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,"
             "th:first-child{text-align:left}th{background:#f0f0f0}img{max-width:100%}"
             ".warn{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>medix-r1 eval report</title>"
        f"<style>{style}</style></head><body><h1>medix-r1 eval report</h1>{warns}<ul>{meta}</ul>"
        f"<p>{html.escape(NOTE)}</p>"
        f"<h2>Summary</h2>{_html_table(SUMMARY_HEADER, summary_rows(results))}{img}"
        f"<h2>Tasks</h2>{_html_table(TASK_HEADER, task_rows(results))}"
        f"<h2>By answer type</h2>{_html_table(['task', 'answer type', 'n', 'scored', 'accuracy %'], breakdown_rows(results, 'by_answer_type'))}"
        f"<h2>By modality</h2>{_html_table(['task', 'modality', 'n', 'scored', 'accuracy %'], breakdown_rows(results, 'by_modality'))}"
        "</body></html>\n")


def write_reports(results: dict[str, Any], out_dir: str | Path, *, charts: bool = True) -> dict[str, Path]:
    """Write report.md, report.html (and accuracy.png) into ``out_dir``; return their paths."""
    out = Path(out_dir)
    chart = plot_accuracy(results, out / CHART_FILE) if charts else None
    md = out / "report.md"
    md.write_text(render_markdown(results, CHART_FILE if chart else None), encoding="utf-8")
    page = out / "report.html"
    page.write_text(render_html(results, chart), encoding="utf-8")
    paths = {"markdown": md, "html": page}
    if chart:
        paths["chart"] = chart
    return paths


__all__ = ["CHART_FILE", "TASK_HEADER", "pct", "plot_accuracy", "render_console", "render_html", "render_markdown",
           "task_rows", "warning_lines", "write_reports"]
