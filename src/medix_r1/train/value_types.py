"""Type-check free-form recipe sections against the dataclass that will receive them.

The ``trainer`` section goes to ``trl.GRPOConfig`` and the ``reward`` section to
:class:`medix_r1.rewards.RewardConfig`. Neither checks the types of what it is given: ``max_steps: fifteen``
or ``bf16: sometimes`` pass ``GRPOConfig`` and fail minutes later inside the training loop, and a quoted
number fails with ``'<=' not supported between instances of 'str' and 'int'``, naming no key. This module
checks each value against the field's type hint before anything is built, and names the key.

Two YAML 1.1 traps are repaired, each with a note the caller shows to the user:

- ``1e-6`` (no dot) is a string to YAML; where a number is expected it is read as the number it spells;
- ``no`` / ``off`` is ``false`` to YAML; where a field takes ``"no"`` (``save_strategy``, ``eval_strategy``)
  ``false`` is read as ``"no"``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from typing import Any, Literal

from medix_r1.registry import nearest

# A number YAML 1.1 reads as a string: an exponent without a dot in the mantissa (1e-6, 5E-5, 3e4).
_EXPONENT_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?[eE][+-]?\d+$")


class ValueTypeError(ValueError):
    """A value does not have the type its field needs; ``key`` is the dotted key, the message says the fix."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def _union_args(tp: Any) -> tuple | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _enum_choices(args: tuple) -> list[str] | None:
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return [str(m.value) for m in arg]
    return None


def _describe(value: Any) -> str:
    return f"{value!r} ({'a quoted string' if isinstance(value, str) else type(value).__name__})"


def check_value(tp: Any, value: Any, key: str, notes: list[str]) -> Any:
    """Return ``value`` (possibly repaired, with a line added to ``notes``) or raise :class:`ValueTypeError`."""
    if tp is Any or tp is object:
        return value
    args = _union_args(tp)
    if args is not None:
        if value is None and type(None) in args:
            return None
        choices = _enum_choices(args)
        if choices is not None:
            return _check_choice(choices, value, key, notes)
        if value is False and any(typing.get_origin(a) is Literal and False in typing.get_args(a) for a in args):
            return value
        first_error: ValueTypeError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(arg, value, key, notes)
            except ValueTypeError as exc:
                first_error = first_error or exc
        if value is None:
            raise ValueTypeError(key, "may not be null here")
        raise first_error or ValueTypeError(key, f"unexpected value {_describe(value)}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        raise ValueTypeError(key, f"{value!r} is not one of {', '.join(map(repr, allowed))}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _check_choice([str(m.value) for m in tp], value, key, notes)
    if dataclasses.is_dataclass(tp):
        if value is None:
            return None  # "use the defaults" (RewardConfig takes judge: null so): left to the receiver
        if not isinstance(value, dict):
            raise ValueTypeError(key, f"expected a mapping, got {_describe(value)}")
        return check_mapping(tp, value, key, notes)
    if origin in (list, tuple) or tp in (list, tuple):
        item_args = typing.get_args(tp)
        if isinstance(value, str) and item_args and item_args[0] is str:
            return value  # a single name where a list of names is expected
        if not isinstance(value, (list, tuple)):
            raise ValueTypeError(key, f"expected a list, got {_describe(value)}")
        if item_args and len(item_args) == 1:
            return [check_value(item_args[0], v, f"{key}[{i}]", notes) for i, v in enumerate(value)]
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueTypeError(key, f"expected a mapping, got {_describe(value)}")
        kv = typing.get_args(tp)
        if len(kv) == 2:
            return {k: check_value(kv[1], v, f"{key}.{k}", notes) for k, v in value.items()}
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueTypeError(key, f"expected true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueTypeError(key, f"expected a whole number, got {_describe(value)}"
                             + ("; remove the quotes" if isinstance(value, str) and value.strip().isdigit() else ""))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value  # an int stays an int (TRL accepts it; the resolved recipe shows what was written)
        if isinstance(value, str) and _EXPONENT_NUMBER.match(value.strip()):
            number = float(value)
            notes.append(f"{key}: YAML reads {value} as a string; read it as the number {number!r} "
                         f"(write {_yaml_float(number)} to silence this note)")
            return number
        raise ValueTypeError(key, f"expected a number, got {_describe(value)}"
                             + ("; remove the quotes" if isinstance(value, str) and _is_number(value) else ""))
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueTypeError(key, f"expected a string, got {_describe(value)}; put it in quotes")
    return value  # a type this checker does not know (a config object...): left to the receiver


def _check_choice(choices: list[str], value: Any, key: str, notes: list[str]) -> Any:
    if value is False and "no" in choices:
        notes.append(f"{key}: YAML reads no as false; read it as \"no\" (write \"no\" in quotes to silence "
                     "this note)")
        return "no"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str) and value in choices:
        return value
    hint = nearest(str(value), choices)
    raise ValueTypeError(key, f"{value!r} is not one of {', '.join(choices)}"
                         + (f"; did you mean {hint!r}?" if hint else ""))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _yaml_float(number: float) -> str:
    """How to write ``number`` so YAML 1.1 reads a float: ``1e-06`` -> ``1.0e-6``."""
    mantissa, _, exponent = f"{number:e}".partition("e")
    mantissa = mantissa.rstrip("0")
    mantissa = mantissa + "0" if mantissa.endswith(".") else mantissa
    return f"{mantissa}e{int(exponent)}"


def check_mapping(cls: type, data: dict[str, Any], prefix: str, notes: list[str]) -> dict[str, Any]:
    """Check every known key of ``data`` against dataclass ``cls``'s type hints (unknown keys are left to the
    receiver, which names the nearest valid one). Returns ``data`` with repaired values."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    out = dict(data)
    for name, value in data.items():
        if name in names and name in hints:
            out[name] = check_value(hints[name], value, f"{prefix}.{name}" if prefix else str(name), notes)
    return out
