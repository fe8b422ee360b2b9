"""Dense optical flow between consecutive frames, and its uint8 quantisation (docs/design.md, Data flow).

The paper (and TSN before it) feeds the temporal stream with TV-L1 flow computed on grayscale
frames, clipped to ``[-bound, bound]`` (bound = 20) and stored as one grayscale JPEG per
component: ``q = round(255 * (clip(v, -b, b) + b) / (2 b))``.

TV-L1 is OpenCV contrib's ``cv2.optflow.DualTVL1OpticalFlow``. Its default parameters cost
about 1-2.5 s per 320x240 pair on one core; our defaults (``TVL1Params``) were tuned with
``benchmarks/bench_flow.py`` (pairs/s per core and endpoint error against known motion and
against default-parameter TV-L1): a coarser pyramid (scale step 0.5, 4 levels instead of 0.8 and
5) reaches large motions that the default pyramid misses, and a looser stopping threshold
(epsilon 0.03 instead of 0.01) stops the outer iterations once the flow has settled. DIS and
Farneback are faster, less accurate options; the algorithm and its parameters go into each
video's metadata. ``tvl1_torch`` is the same TV-L1 written in PyTorch (``tstam.flow.tvl1_torch``) with
the same ``TVL1Params``: it solves many pairs at once, on the CPU or a GPU (``flow_pairs``).

Flow convention (OpenCV's): ``prev[y, x] ~ next[y + flow[y, x, 1], x + flow[y, x, 0]]``.
"""
from .accuracy import end_point_error, known_motion_pairs
from .compute import compute_flow, dequantize_flow, flow_pairs, iter_flow, quantize_flow, to_gray
from .config import FLOW_ALGORITHMS, DISParams, FarnebackParams, FlowAlgorithm, FlowConfig, TVL1Params

__all__ = [
    "FLOW_ALGORITHMS", "FlowAlgorithm", "TVL1Params", "DISParams", "FarnebackParams", "FlowConfig",
    "compute_flow", "iter_flow", "flow_pairs", "quantize_flow", "dequantize_flow", "to_gray",
    "end_point_error", "known_motion_pairs",
]
