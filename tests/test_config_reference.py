"""docs/config.md is what ``tstam.config_reference`` renders from the config dataclasses today, and
every config key has a described line in it (keys found by walking the dataclasses here, apart from
the renderer)."""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tstam.config_reference import field_comments, reference_markdown, render_page
from tstam.engine.config import TrainConfig
from tstam.synthetic.config import SynthConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a dataclass config, sections included."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        out.append(key)
        for arg in typing.get_args(hints[f.name]) or (hints[f.name],):
            if dataclasses.is_dataclass(arg):
                out += _keys(arg, key)
    return out


def _undescribed(page: str, keys: list[str]) -> list[str]:
    """The keys without a table row ``| `key` | ... | description |`` whose description is not empty."""
    rows = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([^`]+)` \|.*\| ([^|]*) \|$", page, re.M)}
    return [k for k in keys if not rows.get(k)]


def test_the_page_is_current():
    assert PAGE.read_text() == render_page(), "docs/config.md is stale: run python -m tstam.config_reference"


def test_every_config_key_has_a_described_line():
    keys = _keys(TrainConfig) + _keys(SynthConfig)
    assert {"model.frame_pool", "data.flow.tvl1.lambda_", "optim.clip_grad", "run.amp", "noise_std"} <= set(keys)
    assert _undescribed(PAGE.read_text(), keys) == []


def test_a_key_without_a_line_is_found():
    page = PAGE.read_text()
    line = next(ln for ln in page.splitlines() if ln.startswith("| `optim.lr_gamma` |"))
    assert _undescribed(page.replace(line + "\n", ""), _keys(TrainConfig)) == ["optim.lr_gamma"]
    blank = line.rsplit("|", 2)[0] + "|  |"
    assert _undescribed(page.replace(line, blank), _keys(TrainConfig)) == ["optim.lr_gamma"]


@dataclass
class _Inner:
    steps: list[int] = field(default_factory=lambda: [3, 5])  # where the rate drops
    # --- a section title, not a description ---
    gate: Literal["a", "b"] | None = None


@dataclass
class _Outer:
    size: int = 8                       # frames per clip; a comment
                                        # continued on the next line
    # --- speed ---
    rate: float = 0.5
    inner: _Inner = field(default_factory=_Inner)
    name: str = (
        "x"
    )  # after a statement over several lines


def test_field_comments_from_the_source():
    assert field_comments(_Outer) == {"size": "frames per clip; a comment continued on the next line", "rate": "",
                                      "inner": "", "name": "after a statement over several lines"}
    assert field_comments(_Inner) == {"steps": "where the rate drops", "gate": ""}


def test_reference_markdown_rows():
    text = reference_markdown(_Outer, "top")
    assert "| `top.size` | int | `8` | frames per clip; a comment continued on the next line |" in text
    assert "| `top.inner.steps` | list of int | `[3, 5]` | where the rate drops |" in text
    assert "| `top.inner.gate` | one of `a`, `b` or null | `null` |  |" in text
    assert "| `top.inner` | section (_Inner) | `(section below)` |  |" in text
    assert text.index("### `top` (_Outer)") < text.index("### `top.inner` (_Inner)")
