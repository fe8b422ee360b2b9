"""T-STAM models: SE-BN-Inception backbone, spatio-temporal attention head, fusion, weights."""
from tstam.models.bninception import BLOCK_NAMES, GOOGLENET_BLOCKS, BNInception, SqueezeExcite
from tstam.models.fusion import DEFAULT_FUSION_WEIGHTS, check_weights, fuse_scores
from tstam.models.heads import HEADS, Head
from tstam.models.tstam import TSTAM, ModelConfig, ModelOutput, build_model
from tstam.models.weights import (
    PRETRAINED,
    WeightsError,
    adapt_input_conv,
    checkpoint_filter_fn,
    load_pretrained,
    read_state_dict,
    weights_file,
)

__all__ = [
    "BLOCK_NAMES", "GOOGLENET_BLOCKS", "BNInception", "SqueezeExcite",
    "TSTAM", "ModelConfig", "ModelOutput", "build_model", "HEADS", "Head",
    "fuse_scores", "check_weights", "DEFAULT_FUSION_WEIGHTS",
    "WeightsError", "adapt_input_conv", "checkpoint_filter_fn", "load_pretrained", "read_state_dict",
    "PRETRAINED", "weights_file",
]
from tstam.models.inference import fold_bn, merge_parallel_1x1, prepare_for_inference  # noqa: E402

__all__ += ["fold_bn", "merge_parallel_1x1", "prepare_for_inference"]
