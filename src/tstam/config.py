"""Nested dataclass configs: from/to plain dicts, YAML files and ``key=value`` overrides.

Configs are plain dataclasses with commented defaults (see ``tstam.models.ModelConfig``). They are
converted once at the CLI boundary and stored in checkpoints as plain dicts, so that
``torch.load(weights_only=True)`` can read them back. Every error names the bad key and the
allowed keys or values.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from tstam.errors import ConfigError

__all__ = ["ConfigError", "from_dict", "to_dict", "load_yaml", "apply_overrides", "check_choice", "check_literals"]

T = TypeVar("T")

# Numbers that YAML 1.1 (PyYAML) leaves as strings: scientific notation without a dot (1e-3, 5E4,
# -2e+2) and the spellings of non-finite numbers (nan, inf), which are read to be refused by name
_FLOAT_TEXT = re.compile(r"[-+]?((\d+\.?\d*|\.\d+)[eE][-+]?\d+|nan|inf|infinity)", re.IGNORECASE)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (nested) as plain dicts, lists and scalars."""
    return dataclasses.asdict(cfg)


def check_choice(name: str, value: Any, choices: typing.Iterable[Any]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; expected one of {list(choices)}")


@functools.cache
def _literal_fields(cls: type) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """(field name, allowed values) of every ``Literal`` (or ``Optional[Literal]``) field of ``cls``."""
    out = []
    for name, tp in get_type_hints(cls).items():
        args = get_args(tp) if get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
        allowed = tuple(a for arg in args if get_origin(arg) is Literal for a in get_args(arg))
        if allowed:
            out.append((name, allowed + ((None,) if type(None) in args else ())))
    return tuple(out)


def check_literals(obj: Any, prefix: str) -> None:
    """Raise ConfigError for any ``Literal`` field of dataclass ``obj`` (and of the dataclasses it
    holds) whose value is not one of the type's values: the allowed values come from the types."""
    for name, allowed in _literal_fields(type(obj)):
        check_choice(f"{prefix}.{name}", getattr(obj, name), allowed)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_literals(value, f"{prefix}.{f.name}")


def _convert(name: str, tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, _prefix=f"{name}.")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(name, arg, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin is Literal:
        check_choice(name, value, get_args(tp))
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_convert(f"{name}[{i}]", item_tp, v) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; nan, inf are refused below
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{name}={value!r} is not valid; expected a finite number")
            return float(value)
        raise ConfigError(f"{name}: expected a number (e.g. 0.001 or 1e-3), got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, _prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, checking every key and value type.

    Unknown keys raise ConfigError listing the valid keys; missing keys keep their defaults.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{_prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = _prefix.rstrip(".") or cls.__name__
        raise ConfigError(
            f"unknown key(s) {', '.join(_prefix + k for k in unknown)} in {where}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _convert(_prefix + k, hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, in place.

    The keys themselves are checked later by ``from_dict``, which lists the valid ones.
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=0.01)")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = _parse_value(item, raw)
    return data


def _parse_value(item: str, raw: str) -> Any:
    """The value of override ``item`` (``key=raw``) parsed as YAML; a syntax error is a ConfigError
    naming the override and showing how lists are written (the shell splits ``[a, b]`` at spaces)."""
    if raw == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        key = item.partition("=")[0]
        raise ConfigError(f"override {item!r}: the value {raw!r} is not valid YAML ({problem}); write a list "
                          f"without spaces, {key}=[a,b], or quote the whole override, '{key}=[a, b]'") from None
