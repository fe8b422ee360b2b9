"""Every number of every config dataclass has a range, checked where the value enters.

The walk collects the numeric fields of every dataclass reachable from the configs a user writes
(``TrainConfig``, ``SynthConfig``, ``ServeConfig``, ``DemoConfig``, ``AblateConfig``); each must
have a row in ``RANGES``, the independent record of what is valid and why (the paper, OpenCV's
documentation and assertions, torch's and NumPy's limits, memory). Every refused value must raise
``ConfigError`` naming the section and the key; every accepted value (the edges, and absurd values
accepted on purpose) must build.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

import pytest

from tstam.ablate import AblateConfig
from tstam.config import ConfigError, from_dict
from tstam.data.config import DataConfig
from tstam.demo import DemoConfig
from tstam.engine.config import AnnotationConfig, OptimConfig, RunConfig, TrainConfig
from tstam.flow import FarnebackParams, FlowConfig, TVL1Params
from tstam.models import ModelConfig
from tstam.preprocess import Preprocess
from tstam.serve.config import ServeConfig
from tstam.synthetic import SynthConfig, make_config
from tstam.video import DecodeLimits

ROOTS = (TrainConfig, SynthConfig, ServeConfig, DemoConfig, AblateConfig)
BIG = 1e308  # finite, and its sum with itself is not
HUGE = 10**9

# (class, field) -> (refused values, accepted values). Sources: the paper and TSN for the model and
# recipe; torch (Dropout p in [0, 1], SGD momentum >= 0), NumPy (seeds in [0, 2**32)); OpenCV 5.1
# for the flow (TV-L1: theta 0 gives NaN flow, nscales 0 and scale_step >= 1 assert, medianBlur on
# float flow takes 3 or 5 only; Farneback: pyr_scale >= 1 asserts, winsize 0 gives NaN flow, the
# documentation names poly_n 5 or 7); memory for sizes and counts.
RANGES: dict[tuple[type, str], tuple[list[Any], list[Any]]] = {
    (ModelConfig, "num_classes"): ([0, -1, HUGE], [1, 101, 100_000]),
    (ModelConfig, "num_segments"): ([0, 65, 100_000], [1, 6, 64]),
    (ModelConfig, "new_length"): ([0, 33], [None, 1, 5, 32]),
    (ModelConfig, "input_size"): ([0, 48, 2048, HUGE], [32, 224, 1024]),
    (ModelConfig, "width_mult"): ([0.0, -1.0, 5.0, BIG], [0.125, 1.0, 4.0]),
    (ModelConfig, "se_reduction"): ([0, -1, HUGE], [1, 16]),
    (ModelConfig, "attention_hidden"): ([0, HUGE], [1, 256]),
    (ModelConfig, "num_heads"): ([0, 17], [1, 16]),
    (ModelConfig, "map_dim"): ([-1, HUGE], [0, 24]),
    (ModelConfig, "temporal_aux_weight"): ([-1.0, BIG], [0.0, 1.0]),
    (ModelConfig, "dropout"): ([-0.1, 1.0, 1.5, BIG], [None, 0.0, 0.8]),
    (Preprocess, "scale"): ([0.0, -1.0, BIG], [1.0, 1 / 255]),
    (Preprocess, "mean"): ([[BIG] * 3, [], [1.0, 2.0]], [[104.0, 117.0, 128.0], [0.5]]),
    (Preprocess, "std"): ([[0.0] * 3, [1e-9] * 3, [BIG] * 3, []], [[1.0] * 3, [58.4, 57.1, 57.4]]),
    (DataConfig, "resize"): ([[64], [0, 64], [240, 10**6], [240, 320, 3]], [[240, 320], [4096, 4096]]),
    (DataConfig, "scales"): ([[0.0], [1.5], [], [0.5] * 17], [None, [1.0, 0.875]]),
    (DataConfig, "max_distort"): ([-1], [0, 1, HUGE]),  # an index distance: any size is "no limit"
    (DataConfig, "test_frames"): ([0, 251, 10**7], [1, 25, 250]),
    (DataConfig, "test_crops"): ([0, 2, 5], [1, 3, 10]),
    (DataConfig, "batch_size"): ([0, HUGE], [1, 4096]),
    (DataConfig, "workers"): ([-1, HUGE], [0, 256]),
    (AnnotationConfig, "split"): ([0, 4], [1, 3]),
    (AnnotationConfig, "val_fraction"): ([-0.1, 1.0, BIG], [0.0, 0.5]),
    (AnnotationConfig, "val_seed"): ([-1, 2**32], [0, 2**32 - 1]),
    (AnnotationConfig, "test_fraction"): ([0.0, -0.1, 1.0, BIG], [0.05, 0.5]),
    (OptimConfig, "lr"): ([0.0, -1.0], [1e-5, BIG]),  # a diverging run stops with its last good checkpoint
    (OptimConfig, "momentum"): ([-0.1, 1.0, BIG], [0.0, 0.9]),
    (OptimConfig, "weight_decay"): ([-1.0, 2.0, BIG], [0.0, 5e-4, 1.0]),
    (OptimConfig, "epochs"): ([0, -1, 10**13], [1, 340]),
    (OptimConfig, "lr_steps"): ([[0], [-1], [10**13]], [[], [30, 60]]),
    (OptimConfig, "lr_gamma"): ([0.0, -0.1], [0.1, 1e32]),  # the suite's divergence tests use 1e32
    (OptimConfig, "clip_grad"): ([0.0, -1.0], [None, 40.0, BIG]),
    (RunConfig, "seed"): ([-1, 2**32, 10**30], [0, 2**32 - 1]),
    (RunConfig, "eval_every"): ([-1, 10**13], [0, HUGE]),
    (RunConfig, "ckpt_every_steps"): ([-1, 10**13], [0, HUGE]),
    (RunConfig, "max_steps"): ([-1, 10**13], [0, HUGE]),
    (RunConfig, "log_every"): ([0, -1], [1, HUGE]),
    (FlowConfig, "bound"): ([0.0, -1.0, BIG], [20.0, 1000.0]),
    (TVL1Params, "tau"): ([0.0, -1.0, BIG], [0.25]),
    (TVL1Params, "lambda_"): ([0.0, -1.0, BIG], [0.15]),
    (TVL1Params, "theta"): ([0.0, -1.0, BIG], [0.3]),
    (TVL1Params, "epsilon"): ([0.0, -1.0, BIG], [0.01, 0.03]),
    (TVL1Params, "nscales"): ([0, 17], [1, 5]),
    (TVL1Params, "warps"): ([0, 101], [1, 5]),
    (TVL1Params, "inner_iterations"): ([0, 10**6], [1, 30]),
    (TVL1Params, "outer_iterations"): ([0, 10**6], [1, 10]),
    (TVL1Params, "scale_step"): ([0.0, 1.0, 1.5], [0.5, 0.8]),
    (TVL1Params, "gamma"): ([-1.0, BIG], [0.0, 0.2]),
    (TVL1Params, "median_filtering"): ([-1, 2, 4, 7], [0, 1, 3, 5]),
    (FarnebackParams, "pyr_scale"): ([0.0, 1.0, 1.5], [0.5]),
    (FarnebackParams, "levels"): ([-1, 17], [0, 4]),
    (FarnebackParams, "winsize"): ([0, 10**6], [1, 15]),
    (FarnebackParams, "iterations"): ([0, 101], [1, 3]),
    (FarnebackParams, "poly_n"): ([1, 3, 9], [5, 7]),
    (FarnebackParams, "poly_sigma"): ([0.0, -1.0, BIG], [1.1, 1.5]),
    (SynthConfig, "height"): ([30, 33, 4096, 10**6], [32, 64]),
    (SynthConfig, "width"): ([30, 33, 4096, 10**6], [32, 64]),
    (SynthConfig, "num_frames"): ([3, HUGE], [4, 48]),
    (SynthConfig, "fps"): ([0.0, 0.5, BIG], [1.0, 25.0, 1000.0]),
    (SynthConfig, "quality"): ([1, 32], [2, 31]),
    (SynthConfig, "train_per_class"): ([-1, HUGE], [0, 24]),
    (SynthConfig, "test_per_class"): ([-1, HUGE], [0, 10]),
    (SynthConfig, "clips_per_group"): ([0, HUGE], [1, 4]),
    (SynthConfig, "window_min"): ([0.01, 0.7], [0.05, 0.3]),  # 0.7: beyond window_max 0.6
    (SynthConfig, "window_max"): ([0.2, 1.5], [0.6, 1.0]),    # 0.2: below window_min 0.3
    (SynthConfig, "idle_jitter"): ([-1.0, BIG], [0.0, 2.5]),
    (SynthConfig, "idle_rotation"): ([-0.1, 4.0], [0.0, 0.2]),
    (SynthConfig, "distractors_max"): ([-1, HUGE], [0, 3]),
    (SynthConfig, "distractor_speed"): ([-1.0, BIG], [0.0, 2.0]),
    (SynthConfig, "background_contrast"): ([-1.0, BIG], [0.0, 14.0]),
    (SynthConfig, "background_pan"): ([-1.0, BIG], [0.0, 0.4]),
    (SynthConfig, "noise_std"): ([-1.0, BIG], [0.0, 3.0]),
    (ServeConfig, "port"): ([-1, 65536], [0, 8000]),
    (ServeConfig, "max_upload_mb"): ([0.0, BIG], [64.0]),
    (ServeConfig, "workers"): ([0, HUGE], [1, 2]),
    (ServeConfig, "queue"): ([-1, HUGE], [0, 4]),
    (ServeConfig, "threads"): ([-1, HUGE], [0, 2]),
    (ServeConfig, "crops"): ([2], [1, 10]),
    (ServeConfig, "top_k"): ([0], [1, HUGE]),  # the answer lists at most the model's classes
    (ServeConfig, "keep_results"): ([0, HUGE], [1, 16]),
    # deadlines: positive, at most a day (timer arithmetic); rates and counts: memory and descriptors
    (ServeConfig, "header_timeout"): ([0.0, -1.0, 86_401.0, BIG], [0.1, 10.0, 86_400.0]),
    (ServeConfig, "body_timeout"): ([0.0, -1.0, 86_401.0, BIG], [0.1, 30.0, 86_400.0]),
    (ServeConfig, "job_timeout"): ([0.0, -1.0, 86_401.0, BIG], [0.1, 120.0, 86_400.0]),
    (ServeConfig, "poll_timeout"): ([0.0, -1.0, 86_401.0, BIG], [0.1, 30.0, 86_400.0]),
    (ServeConfig, "shutdown_timeout"): ([0.0, -1.0, 86_401.0, BIG], [0.1, 10.0, 86_400.0]),
    (ServeConfig, "min_upload_rate"): ([0.0, -1.0, BIG], [0.001, 50.0, 10_000_000.0]),
    (ServeConfig, "max_uploads"): ([0, -1, HUGE], [1, 8, 80]),  # 80: the most the default 100 connections allow
    # more than max_uploads + workers + queue + 1 (so /healthz gets through), at most a million
    (ServeConfig, "max_connections"): ([0, 15, HUGE], [16, 100, 1_000_000]),
    # the decoding budget: one frame at most FFmpeg's INT_MAX pixels; counts bounded so that the
    # products stay exact (the defaults: an hour at 30 fps, that hour at 320 x 240, 4096 x 4096)
    (DecodeLimits, "max_frames"): ([0, -1, 10**9 + 1], [1, 108_000, 10**9]),
    (DecodeLimits, "max_pixels"): ([0, -1.0, BIG], [1, 8.3e9, 1e15]),
    (DecodeLimits, "max_frame_pixels"): ([0, 2**31], [1, 4096 * 4096, 2**31 - 1]),
    (DemoConfig, "seed"): ([-1, 2**32], [0]),
    (DemoConfig, "frame_size"): ([32, 10**6], [64, 80]),  # 32: below input_size 64
    (DemoConfig, "flow_bound"): ([0.0, BIG], [4.0]),
    (DemoConfig, "input_size"): ([0, 48, 10**6], [64]),
    (DemoConfig, "width_mult"): ([0.0, BIG], [0.25]),
    (DemoConfig, "num_segments"): ([0, 100_000], [4]),
    (DemoConfig, "epochs"): ([-1, HUGE], [0, 24]),
    (DemoConfig, "batch_size"): ([0, HUGE], [16]),
    (DemoConfig, "lr"): ([-1.0], [0.0, 0.01]),
    (DemoConfig, "test_frames"): ([0, 10**7], [25]),
    (DemoConfig, "test_crops"): ([2], [1]),
    (DemoConfig, "weights"): ([[0.0, 0.0], [-1.0, 1.0]], [None, [1.0, 3.0], [BIG, BIG]]),
    (DemoConfig, "attention_clips"): ([-1, HUGE], [0, 4]),
    (DemoConfig, "workers"): ([-1, HUGE], [0]),
    (DemoConfig, "extract_workers"): ([-1, HUGE], [0, 2]),
    (DemoConfig, "threads"): ([-1, HUGE], [0, 2]),
    (AblateConfig, "seeds"): ([[-1], [2**32]], [[0, 1]]),
    (AblateConfig, "epochs"): ([-1, HUGE], [0, 8]),
    (AblateConfig, "short_epochs"): ([0, HUGE], [12]),
    (AblateConfig, "test_frames"): ([0, 10**7], [25]),
    (AblateConfig, "threads"): ([-1, HUGE], [0, 2]),
}

# How a value reaches each class (as from YAML or an override) and the section its messages name.
SECTION = {ModelConfig: "model", Preprocess: "preprocess", DataConfig: "data", AnnotationConfig: "annotations",
           OptimConfig: "optim", RunConfig: "run", FlowConfig: "flow", TVL1Params: "flow.tvl1",
           FarnebackParams: "flow.farneback", DecodeLimits: "decode", SynthConfig: "", ServeConfig: "", DemoConfig: "", AblateConfig: ""}


def _build(cls: type, name: str, value: Any) -> Any:
    if cls is TVL1Params:
        return from_dict(FlowConfig, {"tvl1": {name: value}})
    if cls is FarnebackParams:
        return from_dict(FlowConfig, {"farneback": {name: value}})
    if cls is SynthConfig:
        return make_config("demo", {name: value})
    return from_dict(cls, {name: value})


def _numeric(tp: Any) -> bool:
    """int or float, possibly optional or a list / tuple of them (bool is not a number here)."""
    if get_origin(tp) in (typing.Union, types.UnionType, list, tuple):
        return any(_numeric(a) for a in get_args(tp) if a is not type(None) and a is not Ellipsis)
    return tp in (int, float)


def _config_classes() -> set[type]:
    seen: set[type] = set()
    todo = list(ROOTS)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for tp in get_type_hints(cls).values():
            for arg in (tp, *get_args(tp)):
                if dataclasses.is_dataclass(arg):
                    todo.append(arg)
    return seen


def _numeric_fields() -> set[tuple[type, str]]:
    return {(cls, f.name) for cls in _config_classes() for f in dataclasses.fields(cls)
            if f.init and _numeric(get_type_hints(cls)[f.name])}


def test_every_numeric_config_field_has_a_row():
    fields = _numeric_fields()
    assert len(fields) > 90
    missing = sorted(f"{c.__name__}.{n}" for c, n in fields - set(RANGES))
    assert not missing, f"numeric config fields without a row in RANGES: {missing}"
    assert not set(RANGES) - fields, "rows for fields that are not numeric config fields"


@pytest.mark.parametrize("cls,name", sorted(RANGES, key=lambda k: (k[0].__name__, k[1])),
                         ids=[f"{c.__name__}.{n}" for c, n in sorted(RANGES, key=lambda k: (k[0].__name__, k[1]))])
def test_out_of_range_values_are_refused_by_name(cls, name):
    refused, accepted = RANGES[cls, name]
    section = SECTION[cls]
    for value in refused:
        with pytest.raises(ConfigError) as err:
            _build(cls, name, value)
        msg = str(err.value)
        assert name in msg and section in msg, msg
        assert len(msg) < 400 and "\n" not in msg, msg
    for value in accepted:
        _build(cls, name, value)


def test_non_finite_numbers_are_refused_in_every_float_field():
    for cls, name in sorted(RANGES, key=lambda k: (k[0].__name__, k[1])):
        tp = get_type_hints(cls)[name]
        if float not in (tp, *get_args(tp)):
            continue
        for value in (math.nan, math.inf, -math.inf):
            with pytest.raises(ConfigError, match=name):
                _build(cls, name, value)


@pytest.mark.parametrize("section,expected", [
    ({"data": {"flow": {"bound": -1}}}, "data.flow.bound=-1"),
    ({"data": {"flow": {"tvl1": {"tau": 0}}}}, "data.flow.tvl1.tau=0"),
    ({"data": {"flow": {"farneback": {"levels": -1}}}}, "data.flow.farneback.levels=-1"),
    ({"data": {"test_crops": 4}}, "data.test_crops=4"),
])
def test_a_nested_section_names_the_key_as_typed_in_a_train_config(section, expected):
    # FlowConfig checks itself as "flow"; inside a training config it is data.flow, and the user types that
    with pytest.raises(ConfigError) as err:
        from_dict(TrainConfig, section)
    assert str(err.value).startswith(expected), str(err.value)
