"""The Gradio page: tabs Ask, Runs and Review. Handlers only wire :mod:`medix_r1.app.ask`,
:mod:`medix_r1.app.runs` and :mod:`medix_r1.review` together.

Every handler turns a failure into a message in the page: a :class:`~medix_r1.errors.MedixError` shows its
own text; anything else shows a one-line summary and goes to the server log with its traceback.
"""

from __future__ import annotations

import functools
import html
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from medix_r1.app import ask as ask_mod
from medix_r1.app import runs as runs_mod
from medix_r1.errors import MedixError
from medix_r1.modalities import MODALITY_TAGS

log = logging.getLogger(__name__)

PER_PAGE = 20
ALL = "all"


def _message(exc: BaseException) -> str:
    if isinstance(exc, MedixError):
        return f"**Error:** {html.escape(str(exc))}"
    log.exception("app handler failed")
    return f"**Error:** {html.escape(type(exc).__name__)}: {html.escape(str(exc)[:300])} (details in the server log)"


def _frame(rows: list, headers: list[str]):
    """A table with its own column names (a Dataframe's headers change with its value this way)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=headers)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}"


class AppState:
    """What every session shares: the runs root and the loaded policy."""

    def __init__(self, runs_root: Path, *, max_new_tokens: int = 256, threads: int | None = None):
        self.root = Path(runs_root)
        self.pool = ask_mod.PolicyPool(threads)
        self.max_new_tokens = max_new_tokens

    def runs(self, kind: str | None = None) -> list[str]:
        return [r.name for r in runs_mod.find_runs(self.root) if kind is None or r.kind == kind]

    def path(self, name: str) -> Path:
        return runs_mod.resolve_inside(self.root, name)

    def checkpoints(self) -> list[str]:
        out = []
        for name in self.runs("train"):
            run = self.path(name)
            for c in sorted(run.glob("checkpoint-*"), key=lambda p: p.name) + [run / "final"]:
                if (c / "config.json").is_file() or (c / "adapter_config.json").is_file():
                    out.append(str(c))
        return out


# --------------------------------------------------------------------------------------------- Ask
def _ask(state: AppState, policy, url, served, trust, upload, question, reference, ref_mod, judge_url,
         max_tokens):
    empty = ("", "", "", "", "", "")
    try:
        question = (question or "").strip()
        if not question:
            yield ("", "**Error:** type a question first.", *empty[:5])
            return
        image = ask_mod.open_upload(upload)[0] if upload else None
        if url:
            if not served:
                yield ("", "**Error:** give the served model name for the URL.", *empty[:5])
                return
            stream = ask_mod.stream_openai(url, served, question, image, max_new_tokens=int(max_tokens))
        else:
            yield ("", f"Loading policy `{policy}` (first use)...", *empty[:5])
            pol = state.pool.get(policy or ask_mod.EMBEDDED, bool(trust))
            stream = ask_mod.stream_local(pol, question, image, max_new_tokens=int(max_tokens),
                                          threads=state.pool.threads)
        reply = ""
        for reply in stream:
            yield (reply, "Generating...", *empty[:5])
        from medix_r1.prompts import parse_completion

        p = parse_completion(reply)
        well = "yes" if p.well_formed else f"no: {p.reason}"
        parts = (p.modality or "(none)", p.reasoning or "(none)", p.final_answer, well)
        if not (reference or "").strip():
            yield (reply, "Done.", *parts, "")
            return
        yield (reply, "Scoring against the reference...", *parts, "")
        scored = ask_mod.score_reply(reply, reference, question, modality=ref_mod or None,
                                     judge_url=judge_url or None)
        yield (reply, "Done.", *parts, _reward_markdown(scored))
    except Exception as exc:  # noqa: BLE001 - shown in the page
        yield ("", _message(exc), *empty[:5])


def _reward_markdown(scored: dict) -> str:
    d = scored.get("details") or {}
    rows = [f"| {c} | {'no verdict' if scored.get(c) is None else f'{scored[c]:.2f}'} |"
            for c in ("format", "modality", "accuracy_llm", "accuracy_embed")]
    total = scored.get("total")
    raw = d.get("judge_raw")
    status = d.get("judge_status")
    if d.get("injection") or status == "injection":
        reasons = "; ".join(d.get("injection_reasons") or []) or "the answer addresses the grader"
        guard = f"flagged ({html.escape(reasons)})"
    else:
        guard = "passed"
    return "\n".join([
        "| component | reward |", "|---|---|", *rows,
        f"| **total** | {'-' if total is None else f'{total:.2f}'} |", "",
        (f"Judge status: `{status}`; decided by: `{d.get('rule') or d.get('shortcut') or 'judge'}`; "
         f"injection guard: {guard}"),
        "", "Judge's raw reply:", "", f"```\n{raw if raw is not None else '(no judge call)'}\n```"])


def _preview(state: AppState, upload, policy):
    if not upload:
        return None, ""
    try:
        img, note = ask_mod.open_upload(upload)
    except Exception as exc:  # noqa: BLE001
        return None, _message(exc)
    if policy in (None, "", ask_mod.EMBEDDED):
        state.pool.warm(ask_mod.EMBEDDED)  # first use: start loading while the question is typed
    return img, f"Read as {html.escape(note)}"


# --------------------------------------------------------------------------------------------- Runs
def _curves_figure(series: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("rewards", ["reward", "format", "modality", "accuracy_llm", "accuracy_embed"]),
              ("KL", ["kl"]), ("completion length", ["completion_length"]), ("judge error rate", ["judge_error_rate"])]
    labels = dict(runs_mod.CURVES)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, (name, keys) in zip(axes, groups):
        for k in keys:
            if k in series:
                xs, ys = zip(*series[k])
                ax.plot(xs, ys, marker="o", markersize=3, label=labels[k])
        ax.set_title(name)
        ax.set_xlabel("step")
        if name == "rewards":
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _train_view(state: AppState, name: str):
    run = state.path(name)
    series, problems = runs_mod.training_curves(run)
    samples, sprob = runs_mod.training_samples(run)
    msg = f"Training run `{name}`: {max((len(v) for v in series.values()), default=0)} logged steps."
    if problems or sprob:
        msg += "\n\n" + "\n".join(f"- {html.escape(p)}" for p in problems + sprob)
    steps = [str(s) for s in samples]
    return msg, _curves_figure(series, name), steps, samples


def _train_samples_table(samples: dict, step: str):
    rows = samples.get(int(step)) if step else None
    if not rows:
        return []
    # Rewards first, then the completion; the prompt (the tail of a long chat) last and cut short.
    cols = [c for c in rows[0] if c not in ("step", "prompt", "completion")] + ["completion", "prompt"]
    return [[(str(r.get(c) or "")[-120:] if c == "prompt" else r.get(c)) for c in cols] for r in rows], cols


def _summary_tables(results: dict):
    tasks = results.get("tasks") or {}
    summary = [[t, v.get("n"), v.get("n_scored"), _pct(v.get("accuracy")),
                "-" if not v.get("ci95") else f"{_pct(v['ci95'][0])}-{_pct(v['ci95'][1])}",
                _pct((v.get("rates") or {}).get("coverage")), _pct((v.get("rates") or {}).get("well_formed"))]
               for t, v in tasks.items()]
    breakdown = []
    for t, v in tasks.items():
        for kind, key in (("answer type", "by_answer_type"), ("modality", "by_modality")):
            for label, b in (v.get(key) or {}).items():
                breakdown.append([t, kind, label, b.get("n"), b.get("n_scored"), _pct(b.get("accuracy"))])
    return summary, breakdown


SUMMARY_COLS = ["task", "n", "scored", "accuracy %", "95% CI", "coverage %", "well formed %"]
BREAKDOWN_COLS = ["task", "by", "group", "n", "scored", "accuracy %"]
SAMPLE_COLS = ["#", "task", "id", "state", "modality", "answer type", "question", "answer"]
COMPARE_COLS = ["task", "id", "question", "reference", "A state", "A answer", "B state", "B answer"]


def _choices(values, current):
    choices = [ALL, *sorted({v for v in values if v is not None})]
    return gr.update(choices=choices, value=current if current in choices else ALL)


def _sample_detail(state: AppState, name: str, sample: dict | None):
    if sample is None:
        return None, "Pick a sample."
    img = runs_mod.sample_image(state.path(name), sample["task"], sample["id"]) if sample["has_image"] else None
    esc = html.escape

    def cell(v):
        return esc("-" if v is None else str(v))

    def code(v):  # inside backticks Markdown shows text as is: no entities, only the backticks go
        return ("-" if v is None else str(v)).replace("`", "'").replace("|", "/").replace("\n", " ")

    verdict = sample.get("verdict") or {}
    rounds = "\n".join(f"| {r['round']} | {cell(r['vote'])} | `{code(r['raw'])[:300]}` |" for r in sample["rounds"])
    md = "\n".join([
        f"### {esc(sample['task'])} / {esc(sample['id'])}: **{esc(sample['state'])}**", "",
        f"**Question:** {cell(sample['question'])}", "", f"**Reference:** {cell(sample['reference'])}", "",
        f"**Prediction:** `{code(sample['prediction'])}`", "",
        f"- modality tag: {cell(sample['tag'])}", f"- reasoning: {cell(sample['reasoning'])}",
        f"- answer: {cell(sample['answer'])}",
        f"- well formed: {cell(sample['well_formed'])}" + (f" ({cell(sample['format_issue'])})"
                                                           if sample.get("format_issue") else ""), "",
        f"**Verdict:** {cell(verdict.get('status'))} by {cell(verdict.get('method'))}"
        f" ({cell(verdict.get('reason') or verdict.get('judge_model'))}), score {cell(verdict.get('score'))}"
        + (f", error: {cell(verdict.get('error'))}" if verdict.get("error") else ""),
        *(["", "| round | vote | judge's raw reply |", "|---|---|---|", rounds] if rounds else []),
        *([f"\n**Generation error:** {cell(sample['error'])}"] if sample.get("error") else []),
        "" if img is not None or not sample["has_image"] else "\n_(image not found: the task's data is not local)_"])
    return img, md


# --------------------------------------------------------------------------------------------- build
def build_app(runs_root: str | Path, *, max_new_tokens: int = 256, threads: int | None = None) -> gr.Blocks:
    """The app's page over ``runs_root`` (nothing is loaded until it is used). ``threads``: CPU threads for
    in-process generation (``None``: torch's default)."""
    state = AppState(Path(runs_root), max_new_tokens=max_new_tokens, threads=threads)
    with gr.Blocks(title="medix-r1", analytics_enabled=False) as demo:
        gr.Markdown(f"## medix-r1 &nbsp; <small>runs: `{html.escape(str(state.root))}`</small>")
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"):
                _ask_tab(state)
            with gr.Tab("Runs", id="runs"):
                _runs_tab(state, demo)
            with gr.Tab("Review", id="review"):
                _review_tab(state, demo)
    demo.medix_state = state
    return demo


def _ask_tab(state: AppState) -> None:
    with gr.Row():
        with gr.Column():
            policy = gr.Dropdown([ask_mod.EMBEDDED, *state.checkpoints()], value=ask_mod.EMBEDDED,
                                 allow_custom_value=True, label="Policy",
                                 info="the embedded demo policy, a run's checkpoint, a model folder or a hub id")
            with gr.Accordion("Served model or trust settings", open=False):
                url = gr.Textbox(label="OpenAI-compatible URL (instead of the policy above)",
                                 placeholder="http://127.0.0.1:8001/v1")
                served = gr.Textbox(label="Served model name (with the URL)")
                trust = gr.Checkbox(False, label="trust_remote_code (runs the model's own code: only for models "
                                                 "you trust)")
            upload = gr.File(label="Image: PNG, JPEG or DICOM", type="filepath", elem_id="ask-upload",
                             file_types=[".png", ".jpg", ".jpeg", ".dcm", ".dicom"])
            preview = gr.Image(label="As the model sees it", type="pil", interactive=False, height=220)
            image_note = gr.Markdown(elem_id="ask-image-note")
            question = gr.Textbox(label="Question", lines=2, elem_id="ask-question")
            with gr.Row():
                reference = gr.Textbox(label="Reference answer (optional: scores the reply)",
                                       elem_id="ask-reference")
                ref_mod = gr.Dropdown(["", *MODALITY_TAGS], value="", label="Reference modality (optional)")
            judge_url = gr.Textbox(label="Judge URL (optional; default: the local embedded judge)")
            max_tokens = gr.Slider(8, 1024, value=state.max_new_tokens, step=8, label="Max new tokens",
                                   elem_id="ask-max-tokens")
            go = gr.Button("Ask", variant="primary", elem_id="ask-button")
        with gr.Column():
            status = gr.Markdown(elem_id="ask-status")
            reply = gr.Textbox(label="Reply", lines=5, elem_id="ask-reply")
            tag = gr.Textbox(label="Modality tag", elem_id="ask-tag")
            reasoning = gr.Textbox(label="Reasoning", lines=3, elem_id="ask-reasoning")
            answer = gr.Textbox(label="Answer", elem_id="ask-answer")
            well = gr.Textbox(label="Well formed (shared parser)", elem_id="ask-well-formed")
            reward = gr.Markdown(elem_id="ask-reward")
    upload.change(functools.partial(_preview, state), [upload, policy], [preview, image_note], api_name="preview")
    go.click(functools.partial(_ask, state), [policy, url, served, trust, upload, question, reference, ref_mod,
                                              judge_url, max_tokens],
             [reply, status, tag, reasoning, answer, well, reward], api_name="ask")


def _runs_tab(state: AppState, demo: gr.Blocks) -> None:
    samples_state = gr.State({})
    with gr.Row():
        run = gr.Dropdown(state.runs("train") + state.runs("eval"), label="Run", elem_id="runs-run", scale=3)
        reload_btn = gr.Button("Reload list", scale=0)
        auto = gr.Checkbox(True, label="Refresh every 5 s", scale=0)
    message = gr.Markdown(elem_id="runs-message")
    with gr.Column(visible=False) as train_box:
        curves = gr.Plot(label="Reward components, KL, length, judge error rate", elem_id="runs-curves")
        step = gr.Dropdown([], label="Sampled completions at step", elem_id="runs-step")
        train_table = gr.Dataframe(label="Completions", wrap=True, elem_id="runs-train-samples")
    with gr.Column(visible=False) as eval_box:
        summary = gr.Dataframe(headers=SUMMARY_COLS, label="Per task", elem_id="runs-summary")
        breakdown = gr.Dataframe(headers=BREAKDOWN_COLS, label="Breakdowns", elem_id="runs-breakdown")
        with gr.Row():
            f_task = gr.Dropdown([ALL], value=ALL, label="Task", elem_id="filter-task")
            f_state = gr.Dropdown([ALL, *runs_mod.STATES], value=ALL, label="State", elem_id="filter-state")
            f_mod = gr.Dropdown([ALL], value=ALL, label="Modality", elem_id="filter-modality")
            f_type = gr.Dropdown([ALL], value=ALL, label="Answer type", elem_id="filter-type")
            page = gr.Number(1, label="Page", precision=0, minimum=1, elem_id="filter-page")
        page_note = gr.Markdown(elem_id="runs-page-note")
        table = gr.Dataframe(headers=SAMPLE_COLS, label="Samples", wrap=True, elem_id="runs-samples")
        pick = gr.Dropdown([], label="Show sample", elem_id="runs-pick")
        with gr.Row():
            s_image = gr.Image(label="Image", type="pil", interactive=False, height=240, scale=1)
            s_detail = gr.Markdown(elem_id="runs-sample-detail")
        with gr.Accordion("Side by side with another eval run", open=False):
            with gr.Row():
                other = gr.Dropdown(state.runs("eval"), label="Other run", elem_id="runs-other")
                only_dis = gr.Checkbox(True, label="Only where they disagree")
            compare_note = gr.Markdown(elem_id="runs-compare-note")
            compare = gr.Dataframe(headers=COMPARE_COLS, wrap=True, elem_id="runs-compare")

    def show(name, ft, fs, fm, fa, pg):
        hidden = gr.update(visible=False)
        # One value per output after the first three; the session's training samples (a State) get {}.
        nothing = (gr.update(), gr.update(), gr.update(), {}, *(gr.update() for _ in range(9)))
        if not name:
            return ("Pick a run.", hidden, hidden, *nothing)
        try:
            kind = runs_mod.run_kind(state.path(name))
            if kind == "train":
                msg, fig, steps, samples = _train_view(state, name)
                last = steps[-1] if steps else None
                data = _train_samples_table(samples, last)
                table_update = _frame(*data) if data else _frame([], ["completion"])
                return (msg, gr.update(visible=True), hidden, fig, gr.update(choices=steps, value=last),
                        table_update, {str(k): v for k, v in samples.items()}, *nothing[4:])
            if kind != "eval":
                return (f"**Error:** `{html.escape(name)}` is not a training or eval run folder.", hidden, hidden,
                        *nothing)
            return _eval_view(name, ft, fs, fm, fa, pg)
        except Exception as exc:  # noqa: BLE001
            return (_message(exc), hidden, hidden, *nothing)

    def _eval_view(name, ft, fs, fm, fa, pg):
        run_dir = state.path(name)
        samples, problems = runs_mod.eval_samples(run_dir)
        results = runs_mod.eval_results(run_dir)
        summ, brk = _summary_tables(results)
        chosen = runs_mod.filter_samples(samples, task=ft, state=fs, modality=fm, answer_type=fa)
        rows, pg, pages = runs_mod.page_of(chosen, int(pg or 1), PER_PAGE)
        first = (pg - 1) * PER_PAGE
        data = [[first + i + 1, s["task"], s["id"], s["state"], s["modality"], s["answer_type"],
                 (s["question"] or "")[:160], (s["answer"] or "")[:120]] for i, s in enumerate(rows)]
        msg = f"Eval run `{name}`: {len(samples)} samples, overall {_pct(results.get('overall'))}%"
        report = run_dir / "report.html"
        if report.is_file():
            msg += f" · [report.html](/gradio_api/file={html.escape(str(report.resolve()))})"
        if problems:
            msg += "\n\n" + "\n".join(f"- {html.escape(p)}" for p in problems[:10])
        ids = [f"{s['task']}/{s['id']}" for s in rows]
        return (msg, gr.update(visible=False), gr.update(visible=True), gr.update(), gr.update(), gr.update(),
                {}, gr.update(value=summ), gr.update(value=brk),
                _choices([s["task"] for s in samples], ft), _choices([s["modality"] for s in samples], fm),
                _choices([s["answer_type"] for s in samples], fa),
                f"{len(chosen)} of {len(samples)} samples match · page {pg} of {pages}",
                gr.update(value=data, headers=SAMPLE_COLS), gr.update(choices=ids, value=ids[0] if ids else None),
                gr.update(value=pg))

    outputs = [message, train_box, eval_box, curves, step, train_table, samples_state, summary, breakdown,
               f_task, f_mod, f_type, page_note, table, pick, page]

    show_all = show

    inputs = [run, f_task, f_state, f_mod, f_type, page]
    run.change(lambda n: show_all(n, ALL, ALL, ALL, ALL, 1), [run], outputs, api_name=False)
    for f in (f_task, f_state, f_mod, f_type):
        f.input(lambda n, a, b, c, d: show_all(n, a, b, c, d, 1), inputs[:-1], outputs, api_name=False)
    page.submit(show_all, inputs, outputs, api_name=False)
    reload_btn.click(lambda: gr.update(choices=state.runs("train") + state.runs("eval")), None, [run],
                     api_name=False)

    def pick_step(samples, st):
        data = _train_samples_table({int(k): v for k, v in (samples or {}).items()}, st)
        return _frame(*data) if data else _frame([], ["completion"])

    step.input(pick_step, [samples_state, step], [train_table], api_name=False)

    def pick_sample(name, key):
        if not name or not key:
            return None, ""
        try:
            task, sid = key.split("/", 1)
            samples, _ = runs_mod.eval_samples(state.path(name))
            found = next((s for s in samples if s["task"] == task and s["id"] == sid), None)
            return _sample_detail(state, name, found)
        except Exception as exc:  # noqa: BLE001
            return None, _message(exc)

    pick.change(pick_sample, [run, pick], [s_image, s_detail], api_name=False)

    def do_compare(name, other_name, only):
        if not name or not other_name:
            return "Pick two eval runs.", []
        try:
            a, _ = runs_mod.eval_samples(state.path(name))
            b, _ = runs_mod.eval_samples(state.path(other_name))
            rows = runs_mod.side_by_side(a, b, only_disagree=bool(only))
            shared = len(runs_mod.side_by_side(a, b))
            data = [[r["task"], r["id"], (r["question"] or "")[:120], r["reference"], r["a_state"], r["a_answer"],
                     r["b_state"], r["b_answer"]] for r in rows[:200]]
            note = (f"{shared} shared samples; they disagree on {sum(r['disagree'] for r in rows)}"
                    f" (A = `{html.escape(name)}`, B = `{html.escape(other_name)}`)")
            return note, data
        except Exception as exc:  # noqa: BLE001
            return _message(exc), []

    other.change(do_compare, [run, other, only_dis], [compare_note, compare], api_name=False)
    only_dis.change(do_compare, [run, other, only_dis], [compare_note, compare], api_name=False)

    def tick(name, on):
        if not on or not name:
            return gr.update(), gr.update(), gr.update()
        try:
            if runs_mod.run_kind(state.path(name)) == "train":
                msg, fig, _, _ = _train_view(state, name)
                return msg, fig, gr.update()
            if runs_mod.run_kind(state.path(name)) == "eval":
                summ, _ = _summary_tables(runs_mod.eval_results(state.path(name)))
                return gr.update(), gr.update(), gr.update(value=summ)
        except Exception as exc:  # noqa: BLE001
            return _message(exc), gr.update(), gr.update()
        return gr.update(), gr.update(), gr.update()

    timer = gr.Timer(5.0)
    timer.tick(tick, [run, auto], [message, curves, summary], api_name=False, show_progress="hidden")
    # API for scripts and the tests: the sample browser's page as data.
    api_in = gr.Textbox(visible=False)
    api_out = gr.JSON(visible=False)

    def samples_api(query: str) -> dict:
        import json

        q = json.loads(query or "{}")
        samples, problems = runs_mod.eval_samples(state.path(q["run"]))
        chosen = runs_mod.filter_samples(samples, task=q.get("task"), state=q.get("state"),
                                         modality=q.get("modality"), answer_type=q.get("answer_type"))
        rows, pg, pages = runs_mod.page_of(chosen, int(q.get("page", 1)), int(q.get("per_page", PER_PAGE)))
        return {"total": len(samples), "matching": len(chosen), "page": pg, "pages": pages, "rows": rows,
                "problems": problems}

    api_in.submit(samples_api, [api_in], [api_out], api_name="samples")


def _review_tab(state: AppState, demo: gr.Blocks) -> None:
    from medix_r1.review import Review, create_review, format_results, results_csv

    current = gr.State(None)
    with gr.Accordion("New review", open=False):
        with gr.Row():
            rx = gr.Dropdown(state.runs("eval"), label="First run", elem_id="review-new-x")
            ry = gr.Dropdown(state.runs("eval"), label="Second run", elem_id="review-new-y")
            rname = gr.Textbox(label="Review name", elem_id="review-new-name")
            show_ref = gr.Checkbox(True, label="Show the reference to reviewers")
            create = gr.Button("Create review", elem_id="review-create")
        create_note = gr.Markdown(elem_id="review-create-note")
    with gr.Row():
        review = gr.Dropdown(state.runs("review"), label="Review", elem_id="review-pick", scale=2)
        reviewer = gr.Textbox(label="Reviewer name", elem_id="review-reviewer", scale=2)
        start = gr.Button("Start / continue", elem_id="review-start", scale=1)
    progress = gr.Markdown(elem_id="review-progress")
    with gr.Row():
        image = gr.Image(label="Image", type="pil", interactive=False, height=240, scale=1)
        with gr.Column(scale=2):
            question = gr.Markdown(elem_id="review-question")
            reference = gr.Markdown(elem_id="review-reference")
    with gr.Row():
        ans_a = gr.Textbox(label="Answer A", lines=4, elem_id="review-answer-a")
        ans_b = gr.Textbox(label="Answer B", lines=4, elem_id="review-answer-b")
    comment = gr.Textbox(label="Comment (optional)", elem_id="review-comment")
    with gr.Row():
        buttons = {c: gr.Button(label, elem_id=f"vote-{c}") for c, label in
                   (("A", "A is better"), ("B", "B is better"), ("tie", "Tie"), ("both_wrong", "Both wrong"))}
    with gr.Row():
        results_btn = gr.Button("Show results", elem_id="review-results-button")
    results_note = gr.Markdown(elem_id="review-results-note")
    results = gr.Dataframe(label="Win rates (first run; ties count half, 'both wrong' left out; 95% Wilson CI)",
                           elem_id="review-results")
    export = gr.File(label="CSV export", elem_id="review-export")

    def do_create(x, y, name, show):
        import re

        try:
            if not (x and y and name and name.strip()):
                return "**Error:** pick two eval runs and give the review a name.", gr.update()
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()).strip("-.") or "review"
            folder = state.path(f"reviews/{slug}")
            create_review(folder, state.path(x), state.path(y), show_reference=bool(show), names=(x, y))
            rel = folder.relative_to(state.root.resolve()).as_posix()
            return f"Review `{rel}` created.", gr.update(choices=state.runs("review"), value=rel)
        except Exception as exc:  # noqa: BLE001
            return _message(exc), gr.update()

    create.click(do_create, [rx, ry, rname, show_ref], [create_note, review], api_name=False)

    def show_pair(name, who, note=""):
        blank = (None, "", "", "", "")
        try:
            if not name:
                return ("**Error:** pick a review.", None, *blank)
            with Review(state.path(name)) as r:
                pair = r.next_pair(who)
                if pair is None:
                    return (f"{note}All {len(r.pairs)} pairs voted, thank you, {html.escape(who)}.", None, *blank)
                img = None
                if pair.has_image:
                    img = runs_mod.sample_image(r.meta["runs"]["x"]["path"], pair.task, pair.sample)
                ref = f"**Reference:** {html.escape(pair.reference)}" if r.show_reference else "_(reference hidden)_"
                return (f"{note}Pair {pair.position} of {pair.total} for {html.escape(who.strip())}",
                        {"review": name, "task": pair.task, "sample": pair.sample}, img,
                        f"**Question:** {html.escape(pair.question)}", ref, pair.answer_a, pair.answer_b)
        except Exception as exc:  # noqa: BLE001
            return (_message(exc), None, *blank)

    pair_outputs = [progress, current, image, question, reference, ans_a, ans_b]
    start.click(show_pair, [review, reviewer], pair_outputs, api_name=False)

    def vote(choice, cur, name, who, text):
        try:
            if not cur or cur.get("review") != name:
                return (*show_pair(name, who, "Press Start first. "), text)
            with Review(state.path(name)) as r:
                counted = r.vote(who, cur["task"], cur["sample"], choice, text or "")
            note = "" if counted else "(you had already voted on that pair) "
            return (*show_pair(name, who, note), "")
        except Exception as exc:  # noqa: BLE001
            return (_message(exc), cur, None, "", "", "", "", text)

    for c, b in buttons.items():
        b.click(functools.partial(vote, c), [current, review, reviewer, comment], [*pair_outputs, comment],
                api_name=f"vote_{c}")

    def show_results(name):
        try:
            if not name:
                return "**Error:** pick a review.", [], None
            with Review(state.path(name)) as r:
                res = r.results()
                x, y = res["runs"]
                rows = [[row["task"], row["wins"], row["losses"], row["ties"], row["both_wrong"], row["n"],
                         _pct(row["win_rate"]),
                         "-" if row["ci95"] is None else f"{_pct(row['ci95'][0])}-{_pct(row['ci95'][1])}"]
                        for row in res["rows"]]
                folder = state.path(name)
                results_csv(res, folder / "results.csv")
                r.export_csv(folder / "votes.csv")
                text = format_results(res).split("\n\n", 2)
                agreement = text[2].split("\n\n")[-1] if len(text) > 2 and "agreement" in text[2] else ""
            headers = ["task", f"{x} wins", f"{y} wins", "ties", "both wrong", "n", f"{x} win rate %", "95% CI"]
            note = f"{res['n_votes']} votes by {', '.join(res['reviewers']) or 'nobody yet'}.\n\n" + \
                   agreement.replace("\n", "\n\n")
            return note, _frame(rows, headers), [str(folder / "results.csv"), str(folder / "votes.csv")]
        except Exception as exc:  # noqa: BLE001
            return _message(exc), [], None

    results_btn.click(show_results, [review], [results_note, results, export], api_name="review_results")


__all__ = ["build_app"]
