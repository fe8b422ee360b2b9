"""T-STAM: SE-BN-Inception + spatio-temporal attention + classifier, one stream (paper 1-3).

Per stream (DESIGN section 2), for input (B, N, C_in, H, W):

    X     = backbone(frames)              (B, N, C, h, w)        SE-BN-Inception, to 5b
    X_hat = W1 X + b1                     (B, N, D, h, w)        eq. 1, a shared 1x1 conv
    alpha = softmax_N(att_t(mean_hw X_hat))  (B, N)              eq. 2
    f_t   = sum_i alpha_i mean_hw X_hat_i    (B, D)              eq. 3
    beta  = softmax_hw(att_s_j(X_i))      (B, l, N, h, w)        eq. 4-6
    f_sj  = pool_i sum_k beta_jk X_hat_ik (B, l, D)              eq. 7 (pool: mean, or the paper's sum)
    F     = concat_j (f_t + f_sj)         (B, l*D)               eq. 8-9
    logits = FC(dropout(F))               (B, K)

Variants for the ablations share this code: ``head="tsn"`` (TSN average consensus, no attention),
``"temporal"`` (F = f_t), ``"spatial"`` (F_j = f_sj), ``temporal_attention="lstm"``, 1-5 heads,
SE on or off, mean or sum frame pooling. The forward returns the attention with the logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from tstam.config import ConfigError, check_literals
from tstam.models.attention import CNNTemporalAttention, LSTMTemporalAttention, MultiSpatialAttention
from tstam.models.bninception import BLOCK_NAMES, GOOGLENET_BLOCKS, BNInception
from tstam.preprocess import Preprocess, flow_preprocess, rgb_preprocess

__all__ = ["ModelConfig", "ModelOutput", "TSTAM", "build_model"]


@dataclass
class ModelConfig:
    """One stream of T-STAM. Defaults are the paper's model (DESIGN section 2)."""

    modality: Literal["rgb", "flow"] = "rgb"
    num_classes: int = 101                  # UCF101; 51 for HMDB51
    num_segments: int = 6                   # N frames per clip in training (paper 4.3.1)
    new_length: Optional[int] = None        # frames per snippet: None -> 1 (RGB), 5 (flow: 10 channels)
    input_size: int = 224                   # crop size H = W the model is built and checked for
    width_mult: float = 1.0                 # backbone channel multiplier (1.0 = BN-Inception)
    se_blocks: list[str] = field(default_factory=lambda: list(GOOGLENET_BLOCKS))  # [] = no SE
    se_reduction: int = 16                  # SE bottleneck ratio (paper: 1/16)
    se_gate: Literal["2sigmoid", "sigmoid"] = "2sigmoid"  # 2sigmoid: identity at init (see SqueezeExcite)
    head: Literal["tstam", "tsn", "temporal", "spatial"] = "tstam"  # tsn: average consensus baseline
    temporal_attention: Literal["cnn", "lstm"] = "cnn"  # lstm: the RNN design the paper argues against
    attention_hidden: int = 256             # hidden width of the temporal attention (paper: 256)
    num_heads: int = 4                      # l spatial attention heads (paper 4.3.2: 4)
    map_dim: int = 0                        # D of the eq. 1 mapping; 0 -> D = C
    frame_pool: Literal["mean", "sum"] = "mean"  # pooling of spatial features over frames; paper: sum
    dropout: Optional[float] = None         # None -> 0.8 (RGB), 0.7 (flow), as TSN
    preprocess: Optional[Preprocess] = None  # None -> the BN-Inception ImageNet normalisation

    def __post_init__(self) -> None:
        check_literals(self, "model")
        bad = sorted(set(self.se_blocks) - set(BLOCK_NAMES))
        if bad:
            raise ConfigError(f"model.se_blocks: {bad} are not blocks; expected names from {list(BLOCK_NAMES)}")
        if self.num_classes < 1 or self.num_segments < 1 or not 1 <= self.num_heads <= 16:
            raise ConfigError(
                f"model: num_classes ({self.num_classes}) and num_segments ({self.num_segments}) must be "
                f">= 1 and num_heads ({self.num_heads}) in 1..16"
            )
        if self.input_size < 32 or self.input_size % 32:
            raise ConfigError(f"model.input_size={self.input_size}: expected a multiple of 32, >= 32")
        if self.new_length is None:
            self.new_length = 1 if self.modality == "rgb" else 5
        if self.dropout is None:
            self.dropout = 0.8 if self.modality == "rgb" else 0.7
        if self.preprocess is None:
            self.preprocess = rgb_preprocess() if self.modality == "rgb" else flow_preprocess()
        if (self.preprocess.channel_order == "flow") != (self.modality == "flow"):
            # e.g. overriding only model.preprocess.std of a flow model builds an RGB Preprocess
            want = "flow" if self.modality == "flow" else "BGR or RGB"
            raise ConfigError(
                f"model.preprocess.channel_order={self.preprocess.channel_order!r} does not fit "
                f"model.modality={self.modality!r}: expected {want}; give the whole preprocess "
                f"(flow: channel_order=flow, mean=[128.0], std=[...])"
            )

    @property
    def in_chans(self) -> int:
        """Input channels per segment: 3 per RGB frame or 2 per flow field, times the snippet length."""
        return (3 if self.modality == "rgb" else 2) * self.new_length


class ModelOutput(NamedTuple):
    logits: torch.Tensor                    # (B, K)
    temporal: Optional[torch.Tensor]        # (B, N) alpha over frames, sums to 1; None without it
    spatial: Optional[torch.Tensor]         # (B, l, N, h, w) maps, each sums to 1 over h*w


class TSTAM(nn.Module):
    """One stream of T-STAM. Build with ``build_model(cfg)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = BNInception(
            in_chans=cfg.in_chans,
            width_mult=cfg.width_mult,
            se_blocks=cfg.se_blocks,
            se_reduction=cfg.se_reduction,
            se_gate=cfg.se_gate,
        )
        c = self.backbone.num_features
        d = cfg.map_dim or c
        self.feat_hw = -(-cfg.input_size // 32)  # ceil: the pools use ceil_mode
        self.mapping = self.temporal_att = self.spatial_att = None
        if cfg.head == "tsn":
            out_dim = c
        else:
            self.mapping = nn.Conv2d(c, d, 1)  # eq. 1: shared W1, b1 for every frame and location
            if cfg.head in ("tstam", "temporal"):
                att = CNNTemporalAttention if cfg.temporal_attention == "cnn" else LSTMTemporalAttention
                self.temporal_att = att(d, cfg.attention_hidden)
            if cfg.head in ("tstam", "spatial"):
                self.spatial_att = MultiSpatialAttention(c, cfg.num_heads)
            out_dim = d if cfg.head == "temporal" else d * cfg.num_heads
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(out_dim, cfg.num_classes)
        nn.init.normal_(self.fc.weight, std=0.001)  # TSN's classifier init
        nn.init.zeros_(self.fc.bias)
        self._partial_bn = False
        self.channels_last = False  # feed the backbone NHWC frames (set by prepare_for_inference)

    # -- input checks ---------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError naming the expected and the received shape (no host sync: values are
        checked where data enters, e.g. uint8 frames cannot be non-finite)."""
        cfg = self.cfg
        expect = f"(B, N, {cfg.in_chans}, {cfg.input_size}, {cfg.input_size})"
        if x.dim() != 5:
            raise ValueError(
                f"T-STAM ({cfg.modality}) expects input {expect} (batch, segments, channels, H, W); "
                f"got a {x.dim()}-D tensor of shape {tuple(x.shape)} (missing the segment dimension?)"
            )
        if x.shape[2] != cfg.in_chans:
            raise ValueError(
                f"T-STAM ({cfg.modality}) expects {cfg.in_chans} channels per frame "
                f"({'RGB' if cfg.modality == 'rgb' else f'{cfg.new_length} flow fields x 2'}), "
                f"got {x.shape[2]} in shape {tuple(x.shape)}"
            )
        if x.shape[-2:] != (cfg.input_size, cfg.input_size):
            raise ValueError(
                f"T-STAM was built for {cfg.input_size}x{cfg.input_size} crops (model.input_size), "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )

    # -- forward --------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_in, H, W) -> backbone features (B, N, C, h, w)."""
        b, n = x.shape[:2]
        frames = x.flatten(0, 1)                                  # (B*N, C_in, H, W)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        f = self.backbone.forward_features(frames)                # (B*N, C, h, w)
        return f.unflatten(0, (b, n))                             # (B, N, C, h, w)

    def forward_head(self, feats: torch.Tensor) -> ModelOutput:
        """Backbone features (B, N, C, h, w) -> logits and attention."""
        cfg = self.cfg
        b, n, c, h, w = feats.shape
        if self.mapping is None:  # TSN: average consensus over frames and locations
            pooled = feats.mean((1, 3, 4))                        # (B, C)
            return ModelOutput(self.fc(self.dropout(pooled)), None, None)

        # The mapping (eq. 1) is affine and both poolings are convex combinations (the weights
        # sum to 1), so W1 (sum_k a_k X_k) + b1 = sum_k a_k (W1 X_k + b1): pooling first and mapping
        # the pooled vectors is exact and costs B*N*(1+l) instead of B*N*h*w vector maps.
        x = feats.flatten(0, 1)                                   # (B*N, C, h, w)
        w1, b1 = self.mapping.weight.flatten(1), self.mapping.bias  # (D, C), (D,)
        d = w1.shape[0]
        alpha = beta = None
        parts = []
        if self.temporal_att is not None:
            frames = F.linear(x.mean((2, 3)), w1, b1).view(b, n, d)  # (B, N, D), x_hat_i
            alpha = self.temporal_att(frames)                     # (B, N)
            f_t = torch.bmm(alpha.unsqueeze(1), frames).squeeze(1)  # (B, D), eq. 3
            parts.append(f_t)
        if self.spatial_att is not None:
            beta = self.spatial_att(x)                            # (B*N, l, h*w)
            pooled = torch.bmm(beta, x.flatten(2).transpose(1, 2))  # (B*N, l, C)
            f_s = F.linear(pooled, w1, b1).view(b, n, cfg.num_heads, d)  # (B, N, l, D), eq. 7 inner sum
            f_s = f_s.sum(1) if cfg.frame_pool == "sum" else f_s.mean(1)  # (B, l, D)
            beta = beta.view(b, n, cfg.num_heads, h, w).transpose(1, 2)  # (B, l, N, h, w)
            parts.append(f_s)
        if len(parts) == 2:
            fused = parts[0].unsqueeze(1) + parts[1]              # (B, l, D), eq. 8: F_j = f_t + f_sj
        elif alpha is not None:
            fused = parts[0].unsqueeze(1)                         # (B, 1, D)
        else:
            fused = parts[0]                                      # (B, l, D)
        logits = self.fc(self.dropout(fused.flatten(1)))          # (B, K), eq. 9 concat
        return ModelOutput(logits, alpha, beta)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input(x)
        return self.forward_head(self.forward_features(x))

    # -- TSN training practices -----------------------------------------------------------------
    def set_partial_bn(self, enabled: bool = True) -> "TSTAM":
        """TSN partial BN: in train mode every BN layer but the first keeps its statistics and
        its affine parameters frozen (they are excluded from ``optim_groups``)."""
        self._partial_bn = enabled
        if not enabled:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.requires_grad_(True)
                    m.bias.requires_grad_(True)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "TSTAM":
        super().train(mode)
        if mode and self._partial_bn:
            bns = [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
            for bn in bns[1:]:
                bn.eval()
                bn.weight.requires_grad_(False)
                bn.bias.requires_grad_(False)
        return self

    def optim_groups(self) -> list[dict]:
        """Parameter groups after TSN's ``get_optim_policies``: each a dict with params,
        lr_mult, decay_mult and name. The first conv gets lr x5 (weight) and x10 (bias) for
        flow (x1, x2 for RGB); other biases lr x2 without decay; BN without decay; with partial
        BN only the first backbone BN trains."""
        first = self.backbone.conv1_7x7_s2
        flow = self.cfg.modality == "flow"
        groups = {
            "first_conv_weight": dict(params=[first.weight], lr_mult=5.0 if flow else 1.0, decay_mult=1.0),
            "first_conv_bias": dict(params=[first.bias], lr_mult=10.0 if flow else 2.0, decay_mult=0.0),
            "weight": dict(params=[], lr_mult=1.0, decay_mult=1.0),
            "bias": dict(params=[], lr_mult=2.0, decay_mult=0.0),
            "bn": dict(params=[], lr_mult=1.0, decay_mult=0.0),
        }
        seen = {id(first.weight), id(first.bias)}
        backbone_bns = [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
        frozen_bns = set(map(id, backbone_bns[1:])) if self._partial_bn else set()
        for module in self.modules():
            for pname, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                    if id(module) not in frozen_bns:
                        groups["bn"]["params"].append(p)
                elif pname.startswith("bias"):
                    groups["bias"]["params"].append(p)
                else:
                    groups["weight"]["params"].append(p)
        return [dict(name=k, **v) for k, v in groups.items() if v["params"]]


def build_model(cfg: ModelConfig) -> TSTAM:
    """Build one T-STAM stream from its config (random init; see ``load_pretrained``)."""
    return TSTAM(cfg)
