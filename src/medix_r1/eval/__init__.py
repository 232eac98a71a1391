"""Evaluation: benchmark tasks as YAML, generate -> judge -> score, reports, comparison, judge calibration.

- ``tasks/*.yaml`` + :mod:`~medix_r1.eval.taskspec` + :mod:`~medix_r1.eval.registry`: the benchmarks and groups
- :mod:`~medix_r1.eval.sources`: hub / local data in each source's own format -> canonical samples
- :mod:`~medix_r1.eval.generation`: prompts and generator backends (OpenAI-compatible, transformers, vLLM)
- :mod:`~medix_r1.eval.judging`: the eval judge prompts (self-check rounds, rubric; the paper protocol's); the
  rule layer is the shared :mod:`medix_r1.grading`
- :mod:`~medix_r1.eval.protocol`: the ``default`` and ``paper`` protocols
- :mod:`~medix_r1.eval.generate`, :mod:`~medix_r1.eval.judge_phase`: the resumable generate and judge phases
  (:mod:`~medix_r1.eval.rundir`: the run folder; :mod:`~medix_r1.eval.records`: its typed records);
  :mod:`~medix_r1.eval.scoring`: scores and coverage
- :mod:`~medix_r1.eval.report`, :mod:`~medix_r1.eval.compare`, :mod:`~medix_r1.eval.calibrate`
- :func:`run_eval`: everything in one call (the CLI and ``make demo`` use it)
"""

from medix_r1.eval.runner import (
    PHASES,
    dry_run,
    generate_outputs,
    judge_outputs,
    load_tasks,
    make_judge_settings,
    run_eval,
    score_outputs,
)

__all__ = ["PHASES", "dry_run", "generate_outputs", "judge_outputs", "load_tasks", "make_judge_settings", "run_eval",
           "score_outputs"]
