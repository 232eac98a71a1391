"""Eval task definitions: one YAML file per benchmark, parsed into a typed, strictly checked :class:`TaskSpec`.

A task file says where the data is (hub id / config / split, or a local path), how the source's columns map
onto the canonical :class:`~medix_r1.data.schema.Sample` fields, the answer type, the prompt style, the scorer
and a version. Shared settings live in base files whose names start with ``_`` (``base: _mmlu.yaml``); a task
file is merged over its base (nested sections key by key).

A task may carry a ``paper:`` section: overrides (same keys as the task file, merged key by key) that make
the variant of ``--protocol paper``, the release eval kit's sources and question/reference texts. Get it with
:meth:`TaskSpec.for_protocol`; a task without the section is the same under both protocols.

Every mistake is an error that names the file and the key: an unknown key (with the nearest valid one), a
wrong type, a value outside its choices. Nothing is silently ignored (lm-evaluation-harness skips broken
task files; we refuse them).

Example (``tasks/vqa_rad.yaml``)::

    name: vqa_rad
    version: 1
    kind: vision
    groups: [paper]
    source: {hub: flaviagiammarino/vqa-rad, split: test}
    fields: {question: question, answer: answer, image: image}
    answer_type: auto          # yes/no answers are "closed", the rest "open"
    scorer: binary
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medix_r1.errors import UsageError
from medix_r1.modalities import normalize_tag
from medix_r1.registry import nearest

KINDS = ("text", "vision", "auto")
ANSWER_TYPES = ("mcq", "closed", "open", "report", "auto")
SCORERS = ("auto", "mcq", "binary", "rubric")
ANSWER_FORMATS = ("auto", "text", "letter", "index")
SOURCE_FORMATS = ("table", "canonical")
PROMPT_STYLES = ("plain", "template")
PROTOCOLS = ("default", "paper")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class TaskConfigError(UsageError, ValueError):
    """A task file is invalid. The message names the file and the key, and says how to fix it."""

    def __init__(self, file: str | Path | None, key: str | None, message: str):
        where = str(file) if file else "<task>"
        super().__init__(message, where=f"{where}: {key}" if key else where)
        self.file = str(file) if file else None
        self.key = key


# --------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class SourceSpec:
    """Where a task's rows come from.

    ``format: table`` rows are mapped through :class:`FieldMap`; ``format: canonical`` rows are already in
    medix-r1's canonical layout and go through :func:`medix_r1.data.iter_samples` (``bundled: true`` reads the
    bundled demo data).
    """

    format: str = "table"
    hub: str | None = None
    config: str | list[str] | None = None
    split: str = "test"
    split_aliases: list[str] = field(default_factory=list)
    """Other names of the split in a release's own files (MedMCQA's original release calls it ``dev``)."""
    path: str | None = None
    """A local file or folder in the source's own format; it replaces the hub download."""
    files: str | None = None
    """Glob of the table files to read, e.g. ``QA_information/Open-access/*.json``: inside a local folder or
    zip, and on the hub route the repository's files (downloaded as they are, without ``datasets``' split
    detection)."""
    local_files: str | None = None
    """Glob of the table files of a local copy when the hub route reads other files (the paper variant of
    PMC-VQA reads the release's copy from the hub, and ``test_2.csv`` from xmcmic's folder); a local copy it
    does not match is read by split name."""
    image_root: str | None = None
    """Folder (relative to the data folder, or inside the image archive) that relative image paths resolve
    against."""
    archive: str | None = None
    """The image archive (a file name or glob, e.g. ``imgs.zip``): on the hub route it is downloaded from the
    repository and cached; locally it is looked for beside the data. Image names resolve inside it."""
    files_in_archive: bool = False
    """The table files (``files``) are inside the archive too (OmniMedVQA ships one zip)."""
    file_fields: dict[str, Any] | None = None
    """File-name glob -> field overrides for rows read from such files, for releases whose files differ
    (MedMCQA's original ``*.json`` has a 1-based ``cop``; the hub's Parquet a 0-based one)."""
    bundled: bool = False
    filter: dict[str, Any] | None = None
    """Keep only rows whose column equals the value (or is one of a list of values)."""
    env: str | None = None
    """Environment variable that may hold the local path (used for data that needs credentials)."""
    credentials: str | None = None
    """How to obtain data that cannot be downloaded without credentials (shown when it is missing)."""


@dataclass(frozen=True)
class FieldMap:
    """Source column -> canonical field. A plain value names a column (``a.b`` for a nested field); a value with
    ``{...}`` is a template over columns (lists are joined with new lines); a value starting with ``=`` is
    literal text (e.g. the fixed question of report generation). ``a|b`` takes the first of the columns that
    the row has (one release spells a column two ways); a number in a dotted path indexes a list
    (``CONTEXTS.0``, the first context). A template whose columns are missing fails the row, naming them."""

    id: str | None = None
    question: str = "question"
    answer: str = "answer"
    options: str | list[str] | None = None
    answer_format: str = "auto"
    index_base: int = 0
    """What number the first option has when ``answer_format`` is ``index`` (0 or 1)."""
    image: str | list[str] | None = None
    modality: str | None = None
    modality_map: dict[str, str] | None = None
    answer_type: str | None = None
    metadata: list[str] = field(default_factory=list)
    strip_option_prefix: bool = False
    question_remove: str | None = None
    drop_options: bool = False


@dataclass(frozen=True)
class PromptSpec:
    style: str = "plain"
    """``plain`` (the reference protocol: the question, ``Choices:`` lines, images) or ``template`` (the
    MediX training template)."""
    instruction: str | None = None
    """Text added after the question, e.g. what to answer for PubMedQA."""
    system: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str = "1"
    title: str = ""
    description: str = ""
    kind: str = "auto"
    groups: tuple[str, ...] = ()
    source: SourceSpec = field(default_factory=SourceSpec)
    fields: FieldMap = field(default_factory=FieldMap)
    modality: str | None = None
    answer_type: str = "auto"
    prompt: PromptSpec = field(default_factory=PromptSpec)
    scorer: str = "auto"
    rows: int | None = None
    """How many rows the source's split has (the release's count): the loader reports a difference."""
    paper: dict[str, Any] | None = None
    """Overrides that make the ``--protocol paper`` variant (see the module docstring)."""
    protocol: str = "default"
    """Which protocol this spec is the variant of (set by :meth:`for_protocol`, not in task files)."""
    file: str | None = None
    """The YAML file the task came from (None for tasks made in code or from a JSONL path)."""

    @property
    def key(self) -> str:
        """``name@version``: what results files record."""
        return f"{self.name}@{self.version}"

    def for_protocol(self, protocol: str) -> TaskSpec:
        """This task under ``protocol`` (``default`` or ``paper``): the ``paper:`` overrides merged in."""
        if protocol not in PROTOCOLS:
            raise TaskConfigError(self.file, "protocol", f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if protocol == self.protocol:
            return self
        if protocol == "default" or not self.paper:
            return dataclasses.replace(self, protocol=protocol)
        spec = _apply_overrides(self, self.paper, self.file)
        spec = dataclasses.replace(spec, protocol=protocol)
        _check_task(spec, self.file)
        return spec

    def with_source(self, **changes: Any) -> TaskSpec:
        return dataclasses.replace(self, source=dataclasses.replace(self.source, **changes))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["groups"] = list(self.groups)
        return d


# --------------------------------------------------------------------------------------------- validation
_SECTIONS = {"source": SourceSpec, "fields": FieldMap, "prompt": PromptSpec}
_CHOICES = {
    ("", "kind"): KINDS,
    ("", "answer_type"): ANSWER_TYPES,
    ("", "scorer"): SCORERS,
    ("source", "format"): SOURCE_FORMATS,
    ("fields", "answer_format"): ANSWER_FORMATS,
    ("prompt", "style"): PROMPT_STYLES,
}


def _type_ok(value: Any, annotation: str) -> bool:
    """Check a YAML value against the (string) annotation of a dataclass field."""
    if value is None:
        return "None" in annotation
    checks = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "dict[str, Any]": lambda v: isinstance(v, dict),
        "dict[str, str]": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "tuple[str, ...]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }
    for part in (p.strip() for p in annotation.split("|")):
        if part != "None" and checks.get(part, lambda v: False)(value):
            return True
    return False


def _expected(annotation: str) -> str:
    words = {"str": "a string", "int": "an integer", "bool": "true or false", "list[str]": "a list of strings",
             "dict[str, Any]": "a mapping", "dict[str, str]": "a mapping of strings",
             "tuple[str, ...]": "a list of strings", "None": "null"}
    return " or ".join(words.get(p.strip(), p.strip()) for p in annotation.split("|"))


def _build_section(cls, data: Any, section: str, file: str | None):
    if not isinstance(data, dict):
        raise TaskConfigError(file, section, f"must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("file", "protocol")}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{section}.{key}" if section else str(key)
        if key not in known:
            hint = nearest(str(key), known)
            raise TaskConfigError(file, dotted, "unknown key" + (f"; did you mean {hint!r}?" if hint else "")
                                  + f" (valid keys: {', '.join(sorted(known))})")
        if section == "" and key in _SECTIONS:
            kwargs[key] = _build_section(_SECTIONS[key], value, key, file)
            continue
        if section == "" and key == "version" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        annotation = str(known[key].type)
        if not _type_ok(value, annotation):
            raise TaskConfigError(file, dotted, f"must be {_expected(annotation)}, got {value!r}")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            hint = nearest(str(value), choices)
            raise TaskConfigError(file, dotted, f"must be one of {', '.join(choices)}, got {value!r}"
                                  + (f"; did you mean {hint!r}?" if hint else ""))
        kwargs[key] = tuple(value) if annotation.startswith("tuple") else value
    return cls(**kwargs)


def _apply_overrides(spec: TaskSpec, over: dict, file: str | None) -> TaskSpec:
    """``spec`` with the keys of ``over`` replaced (sections key by key), each checked like a task file's."""
    if not isinstance(over, dict):
        raise TaskConfigError(file, "paper", f"must be a mapping of task keys, got {type(over).__name__}")
    for key in ("name", "paper"):
        if key in over:
            raise TaskConfigError(file, f"paper.{key}", "cannot be overridden")
    changes: dict[str, Any] = {}
    try:
        for key, value in over.items():
            if key in _SECTIONS:
                part = _build_section(_SECTIONS[key], value, key, file)
                changes[key] = dataclasses.replace(getattr(spec, key), **{k: getattr(part, k) for k in value})
            else:
                part = _build_section(TaskSpec, {"name": spec.name, key: value}, "", file)
                changes[key] = getattr(part, key)
    except TaskConfigError as exc:
        raise TaskConfigError(file, f"paper.{exc.key}" if exc.key else "paper", exc.what) from None
    return dataclasses.replace(spec, **changes)


def _check_task(spec: TaskSpec, file: str | None) -> None:
    if not _NAME_RE.match(spec.name):
        raise TaskConfigError(file, "name", f"{spec.name!r} must be lower-case letters, digits, '_' or '-'")
    if spec.modality is not None and normalize_tag(spec.modality, brackets=False) is None:
        raise TaskConfigError(file, "modality", f"unknown modality tag {spec.modality!r} (see medix_r1.modalities)")
    for raw, tag in (spec.fields.modality_map or {}).items():
        if normalize_tag(tag, brackets=False) is None:
            raise TaskConfigError(file, f"fields.modality_map.{raw}", f"unknown modality tag {tag!r}")
    if spec.fields.question_remove is not None:
        try:
            re.compile(spec.fields.question_remove)
        except re.error as exc:
            raise TaskConfigError(file, "fields.question_remove", f"invalid regular expression: {exc}") from None
    src = spec.source
    for pattern, over in (src.file_fields or {}).items():
        _build_section(FieldMap, over, f"source.file_fields.{pattern}", file)
    if src.files_in_archive and not (src.files and src.archive):
        raise TaskConfigError(file, "source.files_in_archive", "needs source.files and source.archive")
    if src.format == "table" and not (src.hub or src.path or src.env):
        raise TaskConfigError(file, "source", "give a hub id (source.hub), a local path (source.path) or an "
                                              "environment variable (source.env)")
    if src.format == "canonical" and not (src.bundled or src.path or src.env):
        raise TaskConfigError(file, "source", "a canonical source needs source.path, source.env or bundled: true")
    if spec.scorer == "mcq" and src.format == "table" and not spec.fields.options:
        raise TaskConfigError(file, "fields.options", "an mcq task must say which column(s) hold the options")
    if spec.scorer == "mcq" and spec.fields.drop_options:
        raise TaskConfigError(file, "scorer", "fields.drop_options asks without choices: use scorer binary")
    if (spec.scorer == "rubric") != (spec.answer_type == "report"):
        raise TaskConfigError(file, "scorer", "a rubric scorer goes with answer_type: report (and only with it)")
    for g in spec.groups:
        if g in ("all", "text", "vision"):
            raise TaskConfigError(file, "groups", f"{g!r} is automatic (from kind); list only extra groups")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path, _depth: int = 0) -> dict:
    if _depth > 5:
        raise TaskConfigError(path, "base", "base files nest too deeply (a cycle?)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaskConfigError(path, None, f"not valid YAML: {exc}") from None
    except OSError as exc:
        raise TaskConfigError(path, None, f"cannot read: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TaskConfigError(path, None, "a task file must be a mapping of keys to values")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise TaskConfigError(path, "base", "must be the file name of a base task file")
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise TaskConfigError(path, "base", f"base file {base!r} not found next to the task file")
        data = _merge(_read_yaml(base_path, _depth + 1), data)
    return data


def parse_task(data: dict, file: str | Path | None = None) -> TaskSpec:
    """Build and check a :class:`TaskSpec` from a mapping (a parsed YAML file)."""
    file = str(file) if file else None
    data = dict(data)
    if "name" not in data:
        raise TaskConfigError(file, "name", "missing (every task needs a name)")
    spec = _build_section(TaskSpec, data, "", file)
    spec = dataclasses.replace(spec, file=file)
    _check_task(spec, file)
    if spec.modality:
        spec = dataclasses.replace(spec, modality=normalize_tag(spec.modality, brackets=False))
    if spec.paper is not None:
        spec.for_protocol("paper")  # a broken paper section fails when the file is read, not at eval time
    return spec


def load_task_file(path: str | Path) -> TaskSpec:
    """Read one task YAML (merging its ``base``) into a checked :class:`TaskSpec`."""
    path = Path(path)
    return parse_task(_read_yaml(path), path)


# Keep the checks honest: every choice table names a real field.
for (_sec, _key) in _CHOICES:
    _cls = _SECTIONS.get(_sec, TaskSpec)
    assert _key in {f.name for f in dataclasses.fields(_cls)}, (_sec, _key)
del _sec, _key, _cls

__all__ = [
    "ANSWER_FORMATS",
    "ANSWER_TYPES",
    "KINDS",
    "PROTOCOLS",
    "SCORERS",
    "FieldMap",
    "PromptSpec",
    "SourceSpec",
    "TaskConfigError",
    "TaskSpec",
    "load_task_file",
    "parse_task",
]
