"""Flow settings: which algorithm, its parameters and the quantisation bound (docs/design.md, Data flow).

Recorded in every frame store's meta.json and in every flow checkpoint (``FlowConfig.describe``),
and read back exactly (``FlowConfig.from_describe``), so a model's flow can be reproduced.
Imports neither OpenCV nor torch.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from tstam.config import ConfigError, check_choice, check_literals, check_range, from_dict, short_repr
from tstam.errors import InputError

__all__ = ["FLOW_ALGORITHMS", "FlowAlgorithm", "TVL1Params", "DISParams", "FarnebackParams", "FlowConfig"]

FlowAlgorithm = Literal["tvl1", "dis", "farneback", "tvl1_torch"]
FLOW_ALGORITHMS: tuple[str, ...] = get_args(FlowAlgorithm)
_PARAMS = {"tvl1_torch": "tvl1"}  # algorithm -> FlowConfig field of its parameters, where they differ
MAX_FLOW_BOUND = 1000.0  # px; flow beyond a frame's side is not motion


@dataclass
class TVL1Params:
    """OpenCV DualTVL1OpticalFlow parameters; OpenCV's own default in each comment."""

    tau: float = 0.25  # time step of the numerical scheme (OpenCV 0.25)
    lambda_: float = 0.15  # data-term weight: smaller = smoother flow (OpenCV 0.15)
    theta: float = 0.3  # coupling of the two sub-problems (OpenCV 0.3)
    nscales: int = 4  # pyramid levels; with scale_step 0.5 the coarsest is 40x30 for 320x240 (OpenCV 5)
    warps: int = 5  # warpings per level (OpenCV 5); 3 is 1.3x faster but +50% error on large motion
    epsilon: float = 0.03  # stopping threshold of the outer loop; the main speed knob (OpenCV 0.01)
    inner_iterations: int = 30  # iterations per outer step (OpenCV 30)
    outer_iterations: int = 10  # cap on outer steps; epsilon usually stops earlier (OpenCV 10)
    scale_step: float = 0.5  # pyramid down-scaling factor; 0.5 sees motions the 0.8 pyramid misses (OpenCV 0.8)
    gamma: float = 0.0  # illumination-variation weight, 0 = off (OpenCV 0)
    median_filtering: int = 5  # median filter size on the flow between warps (OpenCV 5)

    def check(self, prefix: str) -> None:
        """Raise ConfigError naming the first parameter OpenCV would refuse (an assertion, a crash) or
        turn into NaN flow, or that would make each pair cost unbounded time."""
        for name in ("tau", "lambda_", "theta", "epsilon"):  # theta 0: NaN flow
            check_range(f"{prefix}.{name}", getattr(self, name), 0, 1e3, lo_open=True)
        check_range(f"{prefix}.nscales", self.nscales, 1, 16)
        check_range(f"{prefix}.warps", self.warps, 1, 100)
        check_range(f"{prefix}.inner_iterations", self.inner_iterations, 1, 1000)
        check_range(f"{prefix}.outer_iterations", self.outer_iterations, 1, 1000)
        check_range(f"{prefix}.scale_step", self.scale_step, 0, 1, lo_open=True, hi_open=True)
        check_range(f"{prefix}.gamma", self.gamma, 0, 1e3)
        # OpenCV's medianBlur takes only 3 and 5 on float flow (an assertion otherwise); 0 and 1 are none
        check_choice(f"{prefix}.median_filtering", self.median_filtering, (0, 1, 3, 5))

    @classmethod
    def opencv_defaults(cls) -> TVL1Params:
        """OpenCV's own defaults (the baseline of ``benchmarks/bench_flow.py``)."""
        return cls(nscales=5, epsilon=0.01, scale_step=0.8)


@dataclass
class DISParams:
    """OpenCV DIS optical flow (Kroeger et al. 2016)."""

    preset: Literal["ultrafast", "fast", "medium"] = "medium"  # OpenCV's presets; medium is the most accurate


@dataclass
class FarnebackParams:
    """OpenCV Farneback polynomial-expansion flow (the values commonly used with OpenCV)."""

    pyr_scale: float = 0.5  # pyramid down-scaling factor
    levels: int = 4  # pyramid levels (reaches ~+-20 px at 320x240)
    winsize: int = 15  # averaging window: larger = smoother, more robust to noise
    iterations: int = 3  # iterations per level
    poly_n: int = 5  # neighbourhood of the polynomial expansion
    poly_sigma: float = 1.2  # Gaussian sigma of the expansion (OpenCV docs: 1.1 for poly_n 5; 1.2 is usual)

    def check(self, prefix: str) -> None:
        """Raise ConfigError naming the first parameter OpenCV would refuse (an assertion) or turn
        into NaN flow (winsize 0)."""
        check_range(f"{prefix}.pyr_scale", self.pyr_scale, 0, 1, lo_open=True, hi_open=True)
        check_range(f"{prefix}.levels", self.levels, 0, 16, note="0: the frame itself only")
        check_range(f"{prefix}.winsize", self.winsize, 1, 255)
        check_range(f"{prefix}.iterations", self.iterations, 1, 100)
        check_choice(f"{prefix}.poly_n", self.poly_n, (5, 7))  # the two sizes OpenCV documents
        check_range(f"{prefix}.poly_sigma", self.poly_sigma, 0, 10, lo_open=True, note="OpenCV: 1.1 for poly_n 5, 1.5 for 7")


@dataclass
class FlowConfig:
    """Which flow to compute and how it is quantised."""

    algorithm: FlowAlgorithm = "tvl1"  # TV-L1 as the paper and TSN
    bound: float = 20.0  # flow is clipped to [-bound, bound] px before quantisation (TSN: 20)
    tvl1: TVL1Params = field(default_factory=TVL1Params)  # used when algorithm is "tvl1" or "tvl1_torch"
    dis: DISParams = field(default_factory=DISParams)  # used when algorithm == "dis"
    farneback: FarnebackParams = field(default_factory=FarnebackParams)  # used when "farneback"

    def __post_init__(self) -> None:
        check_literals(self, "flow")
        if not math.isfinite(self.bound):
            raise ConfigError(f"flow.bound={short_repr(self.bound)} is not valid; expected a finite number > 0 (TSN: 20)")
        # a bound far beyond any frame's motion quantises every flow to the middle grey (127)
        check_range("flow.bound", self.bound, 0, MAX_FLOW_BOUND, lo_open=True, note="px; TSN: 20")
        self.tvl1.check("flow.tvl1")
        self.farneback.check("flow.farneback")

    def min_side(self) -> int:
        """The smallest frame height and width (px) the algorithm works on, measured with OpenCV 5.0
        on random frames of every size up to 40 x 1920: below it TV-L1 fails an assertion (1 px) and
        DIS refuses square frames under 12 px and *crashes the process* (segfault) on wide frames
        under 32 px high (ultrafast, fast) or 16 px (medium). Farneback works on any size;
        ``tvl1_torch`` needs 3 px (its finite differences)."""
        if self.algorithm == "dis":
            return 16 if self.dis.preset == "medium" else 32
        return {"tvl1": 2, "tvl1_torch": 3}.get(self.algorithm, 1)

    def check_frame_size(self, width: int, height: int, *, source: str = "") -> None:
        """Raise InputError naming the size and the minimum (and ``source``) when frames are too small."""
        need = self.min_side()
        if min(width, height) < need:
            preset = f" (preset {self.dis.preset})" if self.algorithm == "dis" else ""
            where = f"{source}: " if source else ""
            raise InputError(f"{where}{width}x{height} frames are too small for {self.algorithm} optical flow{preset}, "
                             f"which needs at least {need}x{need} px; decode at a larger size "
                             "(--size / --short-side, data.resize) or use farneback, which takes any size")

    def params(self) -> dict[str, Any]:
        """The parameters of the selected algorithm, as stored in the frame-store metadata."""
        return dataclasses.asdict(getattr(self, _PARAMS.get(self.algorithm, self.algorithm)))

    def describe(self) -> dict[str, Any]:
        """``{"algorithm", "bound", "params"}``: the ``flow`` entry of a video's meta.json."""
        return {"algorithm": self.algorithm, "bound": float(self.bound), "params": self.params()}

    @classmethod
    def from_describe(cls, flow: dict[str, Any], *, source: str = "flow settings") -> FlowConfig:
        """Inverse of :meth:`describe` (a meta.json or checkpoint ``flow`` entry).

        Raises:
            ConfigError: naming ``source``, when the settings cannot be reproduced exactly
                (unknown algorithm or parameters): flow computed otherwise would differ from training.
        """
        try:
            algorithm = flow["algorithm"]
            data = {"algorithm": algorithm, "bound": flow["bound"]}
            if flow.get("params") is not None:
                data[_PARAMS.get(algorithm, algorithm)] = dict(flow["params"])
            return from_dict(cls, data)
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{source}: flow settings {flow!r} cannot be reproduced by this tstam ({e}); "
                              f"expected an algorithm of {list(FLOW_ALGORITHMS)} with its parameters") from None
