"""The eval task registry: every ``tasks/*.yaml`` of the package, the groups, and ``--tasks`` resolution.

Groups: ``all`` (every benchmark), ``text`` and ``vision`` (by the task's ``kind``), ``paper`` (the reference
protocol's 17 tasks) and any extra group a task file lists (``mmlu``, ``demo``...). The bundled demo task is
in ``demo`` only, not in ``all``: it is a smoke test, not a benchmark.

``--tasks`` takes a comma-separated list of task names, group names and paths to canonical JSONL files (a
file becomes a task named after its stem).
"""

from __future__ import annotations

import functools
from pathlib import Path

from medix_r1.errors import UsageError
from medix_r1.eval.taskspec import PromptSpec, SourceSpec, TaskConfigError, TaskSpec, load_task_file
from medix_r1.registry import Registry, UnknownNameError, unknown_name_message

TASKS_DIR = Path(__file__).parent / "tasks"
AUTO_GROUPS = ("all", "text", "vision")
NOT_IN_ALL = frozenset({"demo"})
# The reference protocol's 17 tasks in its order (docs/background.md §6); reports and groups list tasks this way.
PAPER_TASKS: tuple[str, ...] = (
    "mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_biology", "mmlu_college_medicine",
    "mmlu_medical_genetics", "mmlu_professional_medicine", "medmcqa", "medqa", "usmle_sa", "pubmedqa",
    "mimic_cxr_sum", "slake", "vqa_rad", "path_vqa", "pmc_vqa", "pmc_vqa_hard", "mimic_cxr_rrg",
)


def task_order(name: str) -> tuple[int, str]:
    """Sort key: the paper's tasks in the paper's order, then the others by name."""
    return (PAPER_TASKS.index(name), "") if name in PAPER_TASKS else (len(PAPER_TASKS), name)


@functools.lru_cache(maxsize=1)
def task_registry() -> Registry[TaskSpec]:
    """Load every shipped task file once. A broken file raises (naming file and key); nothing is skipped."""
    reg: Registry[TaskSpec] = Registry("eval task")
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        spec = load_task_file(path)
        if spec.name != path.stem:
            raise TaskConfigError(path, "name", f"{spec.name!r} must equal the file name {path.stem!r}")
        reg.register(spec.name, spec)
    return reg


def get_task(name: str, protocol: str = "default") -> TaskSpec:
    """A shipped task by name, under ``protocol``; an unknown name lists the valid ones and the nearest match."""
    return task_registry().get(name).for_protocol(protocol)


def groups() -> dict[str, list[str]]:
    """Group name -> task names (in registry order)."""
    reg = task_registry()
    out: dict[str, list[str]] = {g: [] for g in AUTO_GROUPS}
    for name in sorted(reg.names(), key=task_order):
        spec = reg.get(name)
        extra = list(spec.groups)
        if not NOT_IN_ALL.intersection(extra):
            out["all"].append(name)
            if spec.kind in ("text", "vision"):
                out[spec.kind].append(name)
        for g in extra:
            out.setdefault(g, []).append(name)
    return out


def task_from_jsonl(path: str | Path) -> TaskSpec:
    """A task over a canonical JSONL file (``id, question, answer[, image, options, answer_type]``)."""
    path = Path(path)
    if not path.is_file():
        raise TaskConfigError(path, None, "no such file")
    name = path.stem.lower().replace(" ", "_")
    return TaskSpec(name=name, version="file", title=f"{path.name} (canonical JSONL)", kind="auto",
                    source=SourceSpec(format="canonical", path=str(path.resolve()), split=""),
                    answer_type="auto", prompt=PromptSpec(), scorer="auto")


def resolve_tasks(selection: str | list[str] | TaskSpec | list[TaskSpec], protocol: str = "default") -> list[TaskSpec]:
    """Turn ``--tasks`` (names, groups, JSONL paths, comma-separated or a list) into task specs under
    ``protocol`` (``default`` or ``paper``: each task's ``paper:`` variant), deduplicated in the order given.

    >>> [t.name for t in resolve_tasks("mmlu_anatomy,medix-demo")]
    ['mmlu_anatomy', 'medix-demo']
    """
    if isinstance(selection, TaskSpec):
        return [selection.for_protocol(protocol)]
    items: list = selection.split(",") if isinstance(selection, str) else list(selection)
    reg = task_registry()
    grp = groups()
    out: dict[str, TaskSpec] = {}
    for item in items:
        if isinstance(item, TaskSpec):
            out.setdefault(item.name, item)
            continue
        item = item.strip()
        if not item:
            continue
        if item.endswith((".jsonl", ".json")) or Path(item).is_file():
            spec = task_from_jsonl(item)
            if spec.name in reg or spec.name in out:
                raise TaskConfigError(item, None, f"the file's stem {spec.name!r} clashes with another task; "
                                                  "rename the file")
            out[spec.name] = spec
        elif item in grp:
            for name in grp[item]:
                out.setdefault(name, reg.get(name))
        elif item in reg:
            out.setdefault(item, reg.get(item))
        else:
            choices = list(reg.names()) + list(grp)
            raise UnknownNameError(unknown_name_message("eval task or group", item, choices))
    if not out:
        raise UsageError("no tasks selected", where="--tasks",
                         fix="pass --tasks NAME|GROUP|FILE.jsonl (see `medix-r1 eval tasks`)")
    return [spec.for_protocol(protocol) for spec in out.values()]


__all__ = ["AUTO_GROUPS", "PAPER_TASKS", "TASKS_DIR", "get_task", "groups", "resolve_tasks", "task_from_jsonl", "task_order", "task_registry"]
