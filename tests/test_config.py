from dataclasses import dataclass, field
from typing import Literal

import pytest

from tstam.config import ConfigError, apply_overrides, from_dict, to_dict


@dataclass
class Inner:
    lr: float = 0.001  # learning rate
    steps: list[int] = field(default_factory=lambda: [30, 60])


@dataclass
class Outer:
    name: str = "x"
    mode: Literal["rgb", "flow"] = "rgb"
    inner: Inner = field(default_factory=Inner)


def test_roundtrip_and_overrides():
    d = to_dict(Outer())
    apply_overrides(d, ["inner.lr=0.01", "mode=flow", "inner.steps=[1, 2]"])
    cfg = from_dict(Outer, d)
    assert cfg.inner.lr == 0.01 and cfg.mode == "flow" and cfg.inner.steps == [1, 2]
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"inner\.lrr.*valid keys: lr, steps"):
        from_dict(Outer, {"inner": {"lrr": 1}})


@pytest.mark.parametrize(
    "data, match",
    [
        ({"mode": "depth"}, r"mode='depth'.*\['rgb', 'flow'\]"),
        ({"inner": {"lr": "fast"}}, r"inner\.lr: expected a number"),
        ({"inner": {"steps": 3}}, r"inner\.steps: expected a list"),
    ],
)
def test_bad_values_are_named(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Outer, data)


def test_bad_override_form():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["lr0.1"])
