"""Training recipes: one YAML file = one experiment (model, data, prompt template, reward, algorithm, trainer).

A recipe is read into typed dataclasses and checked before anything heavy is loaded:

- a key the schema does not know is an error naming the key and the nearest valid one;
- values are type-checked (``model.lora.r: "16"`` is an error, ``learning_rate: 1`` is accepted as a float);
- the ``trainer`` section takes any field of TRL's ``GRPOConfig``; names are checked against its fields;
- ``algorithm`` picks a preset (:mod:`medix_r1.train.presets`) whose settings the ``trainer`` section may
  override one key at a time.

Example (``recipes/demo/cpu.yaml`` is a complete one)::

    model: {name_or_path: embedded, gradient_checkpointing: true}
    data: {train: bundled, template: medix-3shot}
    reward: {mode: paper}
    algorithm: grpo
    trainer: {learning_rate: 5.0e-5, num_generations: 4, max_steps: 20}

``load_recipe(path, overrides=["trainer.max_steps=2"])`` applies ``--set`` overrides (dotted key, YAML value)
to the raw YAML before validation, so an override with a typo fails the same way a typo in the file does.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from medix_r1.errors import UsageError
from medix_r1.registry import nearest
from medix_r1.train.presets import DYNAMIC_SAMPLING_DEFAULT, PRESETS, preset_settings

# GRPOConfig fields a recipe sets elsewhere, with where to set them instead.
_MANAGED_TRAINER_FIELDS = {
    "output_dir": "the recipe's top-level `output_dir` or `medix-r1 train --output-dir`",
    "reward_weights": "`reward.weights` (the reward section owns the component weights)",
    "gradient_checkpointing": "`model.gradient_checkpointing`",
    "activation_checkpointing": "`model.gradient_checkpointing`",
    "resume_from_checkpoint": "`medix-r1 train --resume`",
}

# The paper's image bounds: images are resized to between 512x512 and 2048x2048 pixels of area.
PAPER_MIN_PIXELS = 512 * 512
PAPER_MAX_PIXELS = 2048 * 2048


class RecipeError(UsageError, ValueError):
    """A recipe is invalid. The message names the file, the key and how to fix it (exit 2 on the CLI)."""


# --------------------------------------------------------------------------------------------- schema
@dataclass
class LoraSection:
    """LoRA adapters (peft). Off by default: the reference fine-tunes all weights, vision tower included."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    include_vision: bool = False
    """Also put adapters on the vision tower (by default only the language model gets them)."""


@dataclass
class ModelSection:
    name_or_path: str = "embedded"
    """A hub id, a local folder, or an alias of :func:`medix_r1.models.load_policy` (``embedded``...)."""
    trust_remote_code: bool = False
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    lora: LoraSection = field(default_factory=LoraSection)
    freeze_vision: bool = False
    """Freeze the vision encoder (the projector/merger stays trainable). The reference trains it."""
    gradient_checkpointing: bool = True
    min_pixels: int | None = PAPER_MIN_PIXELS
    """Images smaller than this area (pixels) are upscaled, keeping the aspect ratio. ``null``: no bound."""
    max_pixels: int | None = PAPER_MAX_PIXELS
    """Images larger than this area are downscaled, keeping the aspect ratio. ``null``: no bound."""


@dataclass
class DataSection:
    train: str = "bundled"
    """Training data: a JSONL/Parquet file, a ``save_to_disk`` folder, a hub id, or ``bundled`` (demo data)."""
    split: str | None = "train"
    eval: str | None = None
    """Optional evaluation data (used when the trainer section sets an ``eval_strategy``)."""
    eval_split: str | None = "test"
    on_error: Literal["raise", "skip"] = "raise"
    image_only: bool = False
    """Keep only samples with at least one image (the others are counted in the data report)."""
    limit: int | None = None
    eval_limit: int | None = None
    template: str = "medix"
    max_prompt_length: int | None = 4352
    """Rendered prompts longer than this many text tokens (images not counted) are dropped and counted."""


@dataclass
class DynamicSamplingSection:
    """DAPO's dynamic sampling (:mod:`medix_r1.train.dynamic_sampling`)."""

    enabled: bool | None = None
    """``null``: the preset decides (on for ``dapo``)."""
    min_mean: float = 0.01
    """Groups whose mean reward is <= this are dropped."""
    max_mean: float = 0.99
    """Groups whose mean reward is >= this are dropped."""
    drop_equal: bool = True
    """Also drop groups whose rewards are all equal (they carry no advantage)."""
    max_tries: int = 20
    """Generation rounds per batch (the first included) before giving up on filling it."""
    on_exhausted: Literal["fill", "error"] = "fill"
    """When ``max_tries`` rounds do not fill the batch: ``fill`` tops it up with dropped groups (logged),
    ``error`` stops training."""


@dataclass
class AlgorithmSection:
    preset: Literal["grpo", "dapo", "gspo", "dr_grpo"] = "dapo"
    dynamic_sampling: DynamicSamplingSection = field(default_factory=DynamicSamplingSection)

    @property
    def dynamic_sampling_enabled(self) -> bool:
        ds = self.dynamic_sampling.enabled
        return DYNAMIC_SAMPLING_DEFAULT[self.preset] if ds is None else ds


@dataclass
class GlobalBatchSection:
    """The global batch a recipe is meant to train at, summed over all processes. ``--dry-run`` prints the
    layout for N processes and, when it differs from this, the overrides that restore it. ``null``: not
    stated (no check)."""

    completions_per_round: int | None = None
    """Completions generated per generation round (TRL's ``generation_batch_size``)."""
    completions_per_update: int | None = None
    """Completions per optimizer step (per device batch x processes x gradient accumulation)."""


@dataclass
class Recipe:
    name: str = ""
    description: str = ""
    output_dir: str | None = None
    """Run folder. Default: ``runs/<name>``. ``medix-r1 train --output-dir`` wins over this."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    reward: dict[str, Any] = field(default_factory=dict)
    """Passed to :class:`medix_r1.rewards.RewardConfig` (mode, weights, judge, embedding...)."""
    algorithm: AlgorithmSection = field(default_factory=AlgorithmSection)
    trainer: dict[str, Any] = field(default_factory=dict)
    """Any ``trl.GRPOConfig`` field; applied over the algorithm preset."""
    global_batch: GlobalBatchSection = field(default_factory=GlobalBatchSection)
    source: str | None = field(default=None, metadata={"internal": True})
    """The file this recipe was read from (set by :func:`load_recipe`, not a YAML key)."""
    notes: list[str] = field(default_factory=list, metadata={"internal": True})
    """Values read in a way the user may not expect (``1e-6`` as a number, ``no`` as ``"no"``)."""

    def trainer_settings(self) -> dict[str, Any]:
        """The ``GRPOConfig`` keyword arguments: preset, then the recipe's trainer section, then managed fields."""
        out = preset_settings(self.algorithm.preset)
        out.update(self.trainer)
        out["activation_checkpointing"] = self.model.gradient_checkpointing
        return out

    def preset_overrides(self) -> dict[str, tuple[Any, Any]]:
        """Preset values the trainer section changes: ``{key: (preset_value, recipe_value)}``."""
        preset = PRESETS[self.algorithm.preset]
        return {k: (preset[k], v) for k, v in self.trainer.items() if k in preset and preset[k] != v}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        d.pop("notes", None)
        return d


# --------------------------------------------------------------------------------------------- validation
def _where(file: str | None, key: str) -> str:
    return f"{file}: {key}" if file else key


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str, file: str | None) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key, file)
            except RecipeError as exc:
                errors.append(exc)
        raise RecipeError(f"{_where(file, key)}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = nearest(str(value), [str(c) for c in choices])
            raise RecipeError(f"{_where(file, key)}: {value!r} is not one of {', '.join(map(repr, choices))}"
                              + (f"; did you mean {hint!r}?" if hint else ""))
        return value
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key, file)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # a single name where a list is expected
            value = [value]
        if not isinstance(value, list):
            raise RecipeError(f"{_where(file, key)}: expected {_type_name(tp)}, got {value!r}")
        return [_coerce(item_tp, v, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{_where(file, key)}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{_where(file, key)}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{_where(file, key)}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{_where(file, key)}: expected a number, got {value!r}"
                              + (" (YAML reads 1e-6 as a string: write 1.0e-6)" if isinstance(value, str) else ""))
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{_where(file, key)}: expected a string, got {value!r}")
        return value
    raise TypeError(f"recipe schema: unsupported type {tp!r} for {key}")  # a bug in the schema, not the recipe


def _yaml_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def build_section(cls, data: Any, key: str, file: str | None):
    """Build dataclass ``cls`` from a YAML mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{_where(file, key or 'recipe')}: expected a mapping, got {data!r}")
    fields = _yaml_fields(cls)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        full = f"{key}.{name}" if key else str(name)
        if name not in fields:
            hint = nearest(str(name), fields)
            raise RecipeError(f"{_where(file, full)}: unknown key"
                              + (f"; did you mean {(key + '.' if key else '') + hint!r}?" if hint else ".")
                              + f" Valid keys here: {', '.join(fields)}")
        kwargs[name] = _coerce(hints[name], value, full, file)
    return cls(**kwargs)


def grpo_config_fields() -> set[str]:
    from trl import GRPOConfig

    return {f.name for f in dataclasses.fields(GRPOConfig)}


def _check_trainer_section(trainer: dict[str, Any], file: str | None) -> None:
    valid = grpo_config_fields()
    for name in trainer:
        key = f"trainer.{name}"
        if name in _MANAGED_TRAINER_FIELDS:
            raise RecipeError(f"{_where(file, key)}: set this in {_MANAGED_TRAINER_FIELDS[name]} instead")
        if name not in valid:
            hint = nearest(str(name), valid)
            raise RecipeError(f"{_where(file, key)}: not a trl.GRPOConfig field"
                              + (f"; did you mean 'trainer.{hint}'?" if hint else "")
                              + " (see https://huggingface.co/docs/trl/grpo_trainer#trl.GRPOConfig)")


def _check_value_types(recipe: Recipe, file: str | None) -> None:
    """``trainer`` against GRPOConfig's field types, ``reward`` against RewardConfig's, naming the key."""
    from trl import GRPOConfig

    from medix_r1.rewards import RewardConfig
    from medix_r1.train.value_types import ValueTypeError, check_mapping

    notes: list[str] = []
    try:
        recipe.trainer = check_mapping(GRPOConfig, recipe.trainer, "trainer", notes)
        recipe.reward = check_mapping(RewardConfig, recipe.reward, "reward", notes)
    except ValueTypeError as exc:
        raise RecipeError(f"{file}: {exc}" if file else str(exc)) from None
    recipe.notes = [f"{file}: {n}" if file else n for n in notes]


def recipe_from_dict(raw: dict[str, Any], *, file: str | None = None) -> Recipe:
    """Validate a raw recipe mapping (what the YAML file holds) into a :class:`Recipe`."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{file or 'recipe'}: the top level must be a mapping of sections")
    raw = _normalise(raw)
    recipe = build_section(Recipe, raw, "", file)
    _check_trainer_section(recipe.trainer, file)
    _check_value_types(recipe, file)
    for key in ("min_pixels", "max_pixels"):
        value = getattr(recipe.model, key)
        if value is not None and value <= 0:
            raise RecipeError(f"{_where(file, 'model.' + key)}: must be positive (or null for no bound)")
    mn, mx = recipe.model.min_pixels, recipe.model.max_pixels
    if mn is not None and mx is not None and mn > mx:
        raise RecipeError(f"{_where(file, 'model.min_pixels')}: {mn} is larger than model.max_pixels {mx}")
    ds = recipe.algorithm.dynamic_sampling
    if not ds.min_mean < ds.max_mean:
        raise RecipeError(f"{_where(file, 'algorithm.dynamic_sampling')}: min_mean must be below max_mean")
    if ds.max_tries < 1:
        raise RecipeError(f"{_where(file, 'algorithm.dynamic_sampling.max_tries')}: must be at least 1")
    if not recipe.name:
        recipe.name = Path(file).stem if file else "run"
    recipe.source = file
    return recipe


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept shorthands: ``algorithm: dapo`` means ``algorithm: {preset: dapo}``."""
    raw = copy.deepcopy(raw)
    if isinstance(raw.get("algorithm"), str):
        raw["algorithm"] = {"preset": raw["algorithm"]}
    if isinstance(raw.get("model"), str):
        raw["model"] = {"name_or_path": raw["model"]}
    return raw


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.max_steps=2"`` -> ``(["trainer", "max_steps"], 2)``; the value is read as YAML."""
    if "=" not in text:
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE, e.g. --set trainer.max_steps=2")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise RecipeError(f"--set {text!r}: empty key")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set {text!r}: the value is not valid YAML ({exc})") from exc
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Apply ``--set`` style overrides (list of ``key=value`` or a ``{dotted.key: value}`` dict) to a raw recipe."""
    raw = _normalise(raw)
    if not overrides:
        return raw
    items = (overrides.items() if isinstance(overrides, dict)
             else ((".".join(p), v) for p, v in map(parse_override, overrides)))
    for dotted, value in items:
        parts = dotted.split(".")
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(f"--set {dotted}: {'.'.join(parts[:i + 1])} is {child!r}, not a section")
            node = child
        node[parts[-1]] = value
        raw = _normalise(raw)
    return raw


def load_recipe(path: str | Path | dict[str, Any] | Recipe,
                overrides: list[str] | dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file (or a raw mapping) with optional ``--set`` overrides."""
    if isinstance(path, Recipe):
        if not overrides:
            return path
        return recipe_from_dict(apply_overrides(path.to_dict(), overrides), file=path.source)
    if isinstance(path, dict):
        return recipe_from_dict(apply_overrides(path, overrides))
    file = Path(path)
    if not file.is_file():
        raise RecipeError(f"{file}: no such recipe file (shipped recipes are under recipes/)")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{file}: not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{file}: cannot read the recipe ({exc})") from exc
    if raw is None:
        # An empty file would otherwise train the defaults (the demo model on the demo data) without a word.
        raise RecipeError(f"{file}: the recipe is empty; start from a shipped one, e.g. recipes/demo/cpu.yaml")
    _reject_duplicate_keys(file)
    return recipe_from_dict(apply_overrides(raw, overrides), file=str(file))


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise RecipeError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _reject_duplicate_keys(file: Path) -> None:
    """YAML silently keeps the last of two equal keys; a recipe with one is almost always a mistake."""
    try:
        yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except RecipeError as exc:
        raise RecipeError(f"{file}: {exc}") from None


def _plain(data: Any) -> Any:
    """Plain YAML-safe types: str subclasses (torch's version string) become str, numpy and torch scalars
    become Python numbers, anything else its text."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    if data is None or type(data) in (bool, int, float, str):
        return data
    if isinstance(data, bool):
        return bool(data)
    if isinstance(data, int):  # IntEnum, ...
        return int(data)
    if isinstance(data, float):
        return float(data)
    tolist = getattr(data, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist):
        try:
            listed = tolist()
        except (TypeError, ValueError, RuntimeError):
            listed = data
        if listed is not data:
            return _plain(listed)
    return str(data)


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=False, allow_unicode=True)
