"""Nested dataclass configs: from/to plain dicts, YAML files and ``key=value`` overrides.

Configs are plain dataclasses with commented defaults (see ``tstam.models.ModelConfig``). They are
converted once at the CLI boundary and stored in checkpoints as plain dicts, so that
``torch.load(weights_only=True)`` can read them back. Every error names the bad key and the
allowed keys or values; every number is checked against its range (``check_range``) in the
dataclass's ``__post_init__``, so a config read from YAML, an override, a checkpoint or Python
code meets the same checks.

YAML is read with bounds (``MAX_CONFIG_BYTES``, ``MAX_CONFIG_WEIGHT``, ``MAX_CONFIG_DEPTH``): a
config file must be a regular UTF-8 file of at most 1 MiB, and a document whose aliases expand it
beyond twice that (a "billion laughs" bomb), that refers to itself, or that nests deeper than a
config ever does is refused before it is built. Values shown in messages are shortened
(``short_repr``), so a message stays one readable line whatever the value.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import reprlib
import stat
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from tstam.errors import ConfigError

__all__ = ["ConfigError", "from_dict", "to_dict", "load_yaml", "parse_yaml", "apply_overrides", "check_choice",
           "check_literals", "check_range", "short_repr", "MAX_CONFIG_BYTES", "MAX_CONFIG_WEIGHT", "MAX_CONFIG_DEPTH"]

T = TypeVar("T")

# Numbers that YAML 1.1 (PyYAML) leaves as strings: scientific notation without a dot (1e-3, 5E4,
# -2e+2) and the spellings of non-finite numbers (nan, inf), which are read to be refused by name
_FLOAT_TEXT = re.compile(r"[-+]?((\d+\.?\d*|\.\d+)[eE][-+]?\d+|nan|inf|infinity)", re.IGNORECASE)

MAX_CONFIG_BYTES = 1 << 20           # a config file or one override value; the shipped presets are ~1 kB
MAX_CONFIG_WEIGHT = 2 * MAX_CONFIG_BYTES  # values + characters once aliases are expanded; without aliases a
                                     # document weighs no more than its text, so only alias bombs reach it
MAX_CONFIG_DEPTH = 32                # nested mappings and lists; a TrainConfig nests 4 deep

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 8
_SHORT.maxlevel = 3


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to about a line (long strings, lists and numbers end in ``...``): what
    error messages show of a value, so that an expanded alias bomb never reaches a message."""
    return _SHORT.repr(value)


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False, note: str = "") -> None:
    """Raise ConfigError unless ``lo <= value <= hi`` (``<`` at an open end; ``None``: no bound).

    The message names the key and the range, e.g. ``model.dropout=1.5 is not valid; expected
    0 <= dropout < 1``, followed by ``note`` (what the bound protects, or what the usual values are).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # a string, None, NaN
        raise ConfigError(f"{name}={short_repr(value)} is not valid; expected a number")
    ok = ((lo is None or (value > lo if lo_open else value >= lo))
          and (hi is None or (value < hi if hi_open else value <= hi)))
    if ok:
        return
    num = lambda v: str(v) if isinstance(v, int) else f"{v:g}"  # noqa: E731 - 4294967296, 0.001, 1e+06
    short = re.sub(r"\[\d*\]$", "", name.rpartition(".")[2])  # model.dropout -> dropout, classes[2] -> classes
    left = "" if lo is None else f"{num(lo)} {'<' if lo_open else '<='} "
    right = "" if hi is None else f" {'<' if hi_open else '<='} {num(hi)}"
    if lo is not None and hi is None:
        text = f"{short} {'>' if lo_open else '>='} {num(lo)}"
    else:
        text = f"{left}{short}{right}"
    raise ConfigError(f"{name}={short_repr(value)} is not valid; expected {text}" + (f" ({note})" if note else ""))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (nested) as plain dicts, lists and scalars."""
    return dataclasses.asdict(cfg)


def check_choice(name: str, value: Any, choices: typing.Iterable[Any]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{name}={short_repr(value)} is not valid; expected one of {list(choices)}")


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
            raise ConfigError(f"{name}: expected a mapping for {tp.__name__}, got {short_repr(value)}")
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
            raise ConfigError(f"{name}: expected a list, got {short_repr(value)}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_convert(f"{name}[{i}]", item_tp, v) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {short_repr(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {short_repr(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected an integer, got {short_repr(value)}")
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; nan, inf are refused below
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{name}={short_repr(value)} is not valid; expected a finite number")
            return float(value)
        raise ConfigError(f"{name}: expected a number (e.g. 0.001 or 1e-3), got {short_repr(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}: expected a string, got {short_repr(value)}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, _prefix: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict, checking every key and value type.

    Unknown keys raise ConfigError listing the valid keys; missing keys keep their defaults.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{_prefix.rstrip('.') or cls.__name__}: expected a mapping, got {short_repr(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be numbers too
    if unknown:
        where = _prefix.rstrip(".") or cls.__name__
        raise ConfigError(
            f"unknown key(s) {', '.join(_prefix + short_repr(k).strip(chr(39)) for k in unknown[:8])}"
            f"{f' and {len(unknown) - 8} more' if len(unknown) > 8 else ''} in {where}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _convert(_prefix + k, hints[k], v) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        # a section checks itself under its own name (FlowConfig says "flow.bound"); where it sits
        # deeper (data.flow) the message names the key as the user types it
        own = _prefix.rstrip(".").rpartition(".")[2] + "."
        if own != _prefix and str(e).startswith(own):
            raise ConfigError(_prefix + str(e)[len(own):]) from None
        raise


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only), refusing nesting deeper than ``MAX_CONFIG_DEPTH`` while
    it composes (PyYAML's composer recurses: a deep document would end in a RecursionError)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                raise _TooLarge(f"it nests more than {MAX_CONFIG_DEPTH} levels deep; a config nests at most a few")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooLarge(Exception):
    """A YAML document beyond the bounds; the message says which."""


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a composed document that refers to itself or whose aliases expand it beyond
    ``MAX_CONFIG_WEIGHT`` (a node weighs 1, a scalar 1 + its length): the constructed data shares
    aliased parts, but every later step (checks, messages, ``to_dict``) would walk it expanded.
    Iterative, with the weight of each node computed once (linear in the document's size)."""
    weight: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return list(node.value) if isinstance(node, yaml.SequenceNode) else []

    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            own = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
            weight[key] = own + sum(weight[id(c)] for c in children(node))
            if weight[key] > MAX_CONFIG_WEIGHT:
                raise _TooLarge(f"its aliases (*name) expand it beyond {MAX_CONFIG_WEIGHT:,} values and characters; "
                                "a config needs no more: write the values out")
            continue
        if key in weight:
            continue
        if key in active:
            raise _TooLarge("an alias (*name) refers to the mapping or list that holds it; a config cannot contain itself")
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children(node) if id(c) not in weight)


def _load(text: str) -> Any:
    """``yaml.safe_load`` of ``text`` with the bounds of ``_BoundedLoader`` and ``_check_expansion``."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_yaml(text: str, *, source: str, syntax_message: typing.Callable[[yaml.YAMLError], str] | None = None) -> Any:
    """``yaml.safe_load`` of ``text`` within the bounds of this module.

    ``syntax_message`` words the error of a YAML syntax error (default: ``source`` and PyYAML's message).

    Raises:
        ConfigError: starting with ``source``: too long, too deep, expanding too far through
            aliases, referring to itself, not valid YAML, or holding a value Python cannot build
            (an integer of more than 4300 digits).
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters is more than a config may hold ({MAX_CONFIG_BYTES:,})")
    try:
        return _load(text)
    except _TooLarge as e:
        raise ConfigError(f"{source}: not accepted as a config: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(syntax_message(e) if syntax_message else f"{source}: not valid YAML: {e}") from None
    except ValueError as e:  # a value PyYAML cannot build, e.g. int() of more than 4300 digits
        raise ConfigError(f"{source}: a value cannot be read: {e}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a regular UTF-8 file of at most ``MAX_CONFIG_BYTES``; errors name the file.

    The file is checked with ``stat`` before it is opened, so a FIFO, a device (``/dev/zero``) or a
    folder is refused at once instead of being read forever.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path}: is a folder; expected a YAML config file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: not a regular file (a FIFO, socket or device); expected a YAML config file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {st.st_size:,} bytes is more than a config file may hold ({MAX_CONFIG_BYTES:,} bytes)")
    with open(path, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)  # the file may have grown since stat
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: more than {MAX_CONFIG_BYTES:,} bytes, more than a config file may hold")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {raw[e.start]:#04x} at offset {e.start}); "
                          "save the config as UTF-8") from None
    data = parse_yaml(text, source=str(path))
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
            raise ConfigError(f"override {short_repr(item)} is not of the form key=value (e.g. optim.lr=0.01)")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {short_repr(item)}: {short_repr(part)} is not a section")
            node = child
        node[parts[-1]] = _parse_value(item, raw)
    return data


def _parse_value(item: str, raw: str) -> Any:
    """The value of override ``item`` (``key=raw``) parsed as YAML, within the bounds of
    ``parse_yaml``; a syntax error is a ConfigError naming the override and showing how lists are
    written (the shell splits ``[a, b]`` at spaces)."""
    if raw == "":
        return ""
    key = item.partition("=")[0]

    def syntax(e: yaml.YAMLError) -> str:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        return (f"override {short_repr(item)}: the value {short_repr(raw)} is not valid YAML ({problem}); write a "
                f"list without spaces, {key}=[a,b], or quote the whole override, '{key}=[a, b]'")

    return parse_yaml(raw, source=f"override {short_repr(key)}", syntax_message=syntax)
