"""The run folder of an evaluation: file names, ``run.json``, atomic JSON writes, and the errors about it.

Everything of one run lives in one output folder::

    run.json            what was run: model, generation settings, protocol, limit, judge, task manifest
    generations.jsonl   one record per (task, sample id): the completion, its final answer, the reference
    judgements.jsonl    one record per (task, sample id): the grade, how it was decided, the raw judge replies
    results.json        scores (written by the score phase), plus report.md / report.html / accuracy.png
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medix_r1 import __version__
from medix_r1.errors import BudgetExceeded, InputError, UsageError

RUN_FILE = "run.json"
GEN_FILE = "generations.jsonl"
JUDGE_FILE = "judgements.jsonl"
RESULTS_FILE = "results.json"
RUN_SCHEMA = "medix-r1-eval-run/2"


class EvalError(UsageError):
    """An eval run cannot go on because of how it was called or what its folder holds (exit 2)."""


class RunMismatch(EvalError):
    """The output folder holds results of another model or other settings."""


class EmptyTaskError(InputError):
    """A task has no rows, or every row is bad input: there is nothing to score (exit 2)."""


class ErrorBudgetExceeded(BudgetExceeded):
    """Too many requests failed (the generator or judge looks down). Finished samples are kept: rerun the
    same command once it is fixed (exit 3)."""


def read_run(out_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of a folder (``{}`` when there is none yet)."""
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalError(f"not valid JSON ({exc.msg}, line {exc.lineno})", where=str(path),
                        fix="restore the file or use a new --output-dir") from None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, fsync, and rename it over ``path`` (never a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_run(out_dir: str | Path, run: dict[str, Any]) -> None:
    run["schema"] = RUN_SCHEMA
    run["medix_r1_version"] = __version__
    write_json_atomic(Path(out_dir) / RUN_FILE, run)


def check_writable(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and prove a file can be written there, before any work is done."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to the output folder ({exc.strerror or exc})", where=str(out),
                         fix="pass an --output-dir you can write to") from None
    return out


__all__ = ["GEN_FILE", "JUDGE_FILE", "RESULTS_FILE", "RUN_FILE", "RUN_SCHEMA", "EmptyTaskError",
           "ErrorBudgetExceeded", "EvalError", "RunMismatch", "check_writable", "read_run", "write_json_atomic",
           "write_run"]
