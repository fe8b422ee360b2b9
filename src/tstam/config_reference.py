"""The configuration reference (``docs/config.md``), rendered from the config dataclasses.

Every key of ``TrainConfig`` (``tstam train``) and ``SynthConfig`` (``tstam synth``) gets one table
row: its dotted name, type, default and the comment that follows the field in the source. The
source comment is the single place a key is described, so the page cannot drift from the code;
``tests/test_config_reference.py`` fails when the committed page differs from what this renders.

    python -m tstam.config_reference            # rewrites docs/config.md (run from the repository root)
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from tstam.engine.config import TrainConfig
from tstam.files import write_text_atomic
from tstam.synthetic.config import SynthConfig

__all__ = ["field_comments", "type_text", "reference_rows", "reference_markdown", "render_page", "DEFAULT_PATH"]

DEFAULT_PATH = Path("docs/config.md")


def field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` that ends each field's line in the source of dataclass ``cls``, joined with
    the comment-only lines below it that are indented deeper than the field (a continued comment).

    A comment line at the fields' own indentation (a section title such as ``# --- sizes ---``)
    belongs to no field. Fields without a comment map to ``""``.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0].body
    comments: dict[int, tuple[int, str, bool]] = {}  # line -> (column, text, whole line is the comment)
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            alone = not lines[tok.start[0] - 1][: tok.start[1]].strip()
            comments[tok.start[0]] = (tok.start[1], tok.string.lstrip("#").strip(), alone)
    out = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        first = comments.get(node.end_lineno)
        if first is None or first[2]:
            out[node.target.id] = ""
            continue
        parts = [first[1]]
        stop = body[i + 1].lineno if i + 1 < len(body) else len(lines) + 1
        for line in range(node.end_lineno + 1, stop):
            more = comments.get(line)
            if more is None or not more[2] or more[0] <= node.col_offset:
                break
            parts.append(more[1])
        out[node.target.id] = " ".join(p for p in parts if p)
    return out


def _optional(tp: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether ``None`` is allowed)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(tp))
    return tp, False


def type_text(tp: Any) -> str:
    """A resolved type hint in words a YAML writer needs: ``int``, ``list of float``, ``one of `a`, `b```,
    ``... or null``."""
    inner, nullable = _optional(tp)
    if nullable:
        return f"{type_text(inner)} or null"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {type_text(args[0])}" if args else "list"
    if dataclasses.is_dataclass(tp):
        return f"section ({tp.__name__})"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def _summary(cls: type) -> str:
    """The first paragraph of a class's docstring on one line ("" for the one dataclass writes itself)."""
    doc = inspect.getdoc(cls) or ""
    return "" if doc.startswith(f"{cls.__name__}(") else doc.split("\n\n")[0].replace("\n", " ")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def reference_rows(cls: type, prefix: str = "") -> list[tuple[str, type, list[tuple[str, str, str, str]]]]:
    """One ``(section key, dataclass, rows)`` per dataclass reachable from ``cls``, depth first;
    a row is ``(dotted key, type, default, description)`` of one field set by ``key=value``."""
    hints = get_type_hints(cls)
    comments = field_comments(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        inner, _ = _optional(hints[f.name])
        default = _default(f)
        description = comments[f.name]
        if dataclasses.is_dataclass(inner):
            nested += reference_rows(inner, key)
            shown = "null" if default is None else "(section below)"
            description = description or _summary(inner)
        else:
            shown = "(required)" if default is dataclasses.MISSING else json.dumps(default)
        rows.append((key, type_text(hints[f.name]), shown, description))
    return [(prefix, cls, rows), *nested]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown(cls: type, prefix: str = "", *, level: int = 3) -> str:
    """Markdown tables of every key of dataclass ``cls`` (keys under ``prefix``), one heading per section."""
    out = []
    for section, section_cls, rows in reference_rows(cls, prefix):
        title = f"`{section}` ({section_cls.__name__})" if section else section_cls.__name__
        out += [f"{'#' * level} {title}", ""]
        if _summary(section_cls):
            out += [_summary(section_cls), ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        out += [f"| `{k}` | {_cell(t)} | `{_cell(d)}` | {_cell(c)} |" for k, t, d, c in rows]
        out.append("")
    return "\n".join(out)


def render_page() -> str:
    """The whole of ``docs/config.md``."""
    head = [
        "# Configuration reference",
        "",
        "Generated from the config dataclasses by `python -m tstam.config_reference` (run from the",
        "repository root; it rewrites this file). Each description is the comment beside the field in",
        "the source, so change it there; `tests/test_config_reference.py` fails when this page is not",
        "what the code renders.",
        "",
        "## Training: `tstam train` (`TrainConfig`)",
        "",
        "A run's config is a preset (`tstam train --config ucf101_rgb`, the YAML files in",
        "`src/tstam/configs/`) or a YAML file of your own, then `key=value` overrides in dotted form",
        "(`optim.lr=0.01 \"optim.lr_steps=[4,5]\" data.flow.algorithm=dis`). Keys left out keep the",
        "defaults below; an unknown key or a bad value is refused with the valid ones named.",
        "`tstam train --config NAME --print-config` prints the resolved config. Defaults are the paper's",
        "model; the presets set the rest (docs/training.md).",
        "",
        reference_markdown(TrainConfig),
        "## Synthetic benchmark: `tstam synth` (`SynthConfig`)",
        "",
        "`tstam synth --out DIR [--preset demo|localized|tiny] key=value ...`: flat keys, applied over the",
        "preset (docs/demo.md describes the presets).",
        "",
        reference_markdown(SynthConfig),
    ]
    return "\n".join(head).rstrip("\n") + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    if not target.parent.is_dir():
        raise SystemExit(f"{target.parent}: no such folder; run from the repository root or give the path "
                         "of docs/config.md")
    write_text_atomic(target, render_page())
