"""T-STAM: SE-BN-Inception + spatio-temporal attention + classifier, one stream (paper 1-3).

Per stream (docs/design.md, The paper in the code), for input (B, N, C_in, H, W):

    X     = backbone(frames)              (B, N, C, h, w)        SE-BN-Inception, to 5b
    X_hat = W1 X + b1                     (B, N, D, h, w)        eq. 1, a shared 1x1 conv
    alpha = softmax_N(att_t(mean_hw X_hat))  (B, N)              eq. 2
    f_t   = sum_i alpha_i mean_hw X_hat_i    (B, D)              eq. 3
    beta  = softmax_hw(att_s_j(X_i))      (B, l, N, h, w)        eq. 4-6
    f_sj  = pool_i sum_k beta_jk X_hat_ik (B, l, D)              eq. 7 (pool: mean, or the paper's sum)
    F     = concat_j (f_t + f_sj)         (B, l*D)               eq. 8-9
    logits = FC(dropout(F))               (B, K)

Variants for the ablations share this code. The head is chosen by name (``model.head``, or
``build_model("tsn", ...)`` as timm's ``create_model``; ``tstam.models.heads``): ``"tstam"`` (the
paper's), ``"tsn"`` (TSN average consensus, no attention), ``"temporal"`` (F = f_t), ``"spatial"``
(F_j = f_sj); besides, ``temporal_attention="lstm"``, 1-5 heads, SE on or off, mean or sum frame
pooling. The forward returns the attention with the logits.

Two opt-in options go beyond the paper (off in every shipped training preset):
``frame_pool="alpha"`` pools the spatial features over frames with the temporal weights,
f_sj = sum_i alpha_i sum_k beta_ijk X_hat_ik, so that no frame reaches F with a fixed weight (equal to
the mean at uniform alpha); ``temporal_aux_weight`` (lambda > 0) adds a training-only classifier on
f_t whose cross-entropy, times lambda, is added to the loss (``TSTAM.loss``): alpha then gets the
gradient the temporal-only model gets. In eval mode its output is not computed, so inference, export
and ONNX are the paper's graph.

``forward(x, alpha=...)`` replaces the temporal weights by given ones (test-time interventions,
``tstam.demo.analysis``), and ``frame_terms`` splits the logits into per-frame contributions.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm  # BatchNorm1d/2d and SyncBatchNorm alike

from tstam.config import ConfigError, check_literals, check_range
from tstam.models.bninception import BLOCK_NAMES, GOOGLENET_BLOCKS, BNInception
from tstam.models.heads import HEADS, Head, HeadName, HeadParts
from tstam.preprocess import Preprocess, flow_preprocess, rgb_preprocess

__all__ = ["ModelConfig", "ModelOutput", "FrameTerms", "TSTAM", "build_model", "MAX_NUM_SEGMENTS", "MAX_CLASSES"]

# Bounds of ModelConfig's numbers: far beyond any published setting, low enough that building the
# model and a training batch cannot exhaust memory before the first step.
MAX_NUM_SEGMENTS = 64       # training segments; TSN and the paper use 3-7 (the test frames are data.test_frames)
MAX_NEW_LENGTH = 32         # frames per snippet; TSN: 1 RGB, 5 flow
MAX_CLASSES = 100_000       # ImageNet-21k has 21,841, Kinetics-700 700
MAX_INPUT_SIZE = 1024       # crop side; the paper 224
MAX_WIDTH_MULT = 4.0        # backbone width; BN-Inception is 1.0 (~10 M parameters), 4.0 ~16x that
MAX_HIDDEN = 8192           # attention_hidden and map_dim; the paper 256 and C = 1024


@dataclass
class ModelConfig:
    """One stream of T-STAM. Defaults are the paper's model (docs/design.md, The paper in the code)."""

    modality: Literal["rgb", "flow"] = "rgb"  # the stream: RGB frames, or stacked x/y optical-flow fields
    num_classes: int | None = 101        # UCF101; 51 for HMDB51; null: training takes the annotations' count
    num_segments: int = 6                   # N frames per clip in training (paper 4.3.1)
    new_length: int | None = None        # frames per snippet: None -> 1 (RGB), 5 (flow: 10 channels)
    input_size: int = 224                   # crop size H = W the model is built and checked for
    width_mult: float = 1.0                 # backbone channel multiplier (1.0 = BN-Inception)
    se_blocks: list[str] = field(default_factory=lambda: list(GOOGLENET_BLOCKS))  # [] = no SE
    se_reduction: int = 16                  # SE bottleneck ratio (paper: 1/16)
    se_gate: Literal["2sigmoid", "sigmoid"] = "2sigmoid"  # 2sigmoid: identity at init (see SqueezeExcite)
    head: HeadName = "tstam"                # a name in HEADS; tsn: average consensus baseline
    temporal_attention: Literal["cnn", "lstm"] = "cnn"  # lstm: the RNN design the paper argues against
    attention_hidden: int = 256             # hidden width of the temporal attention (paper: 256)
    num_heads: int = 4                      # l spatial attention heads (paper 4.3.2: 4)
    map_dim: int = 0                        # D of the eq. 1 mapping; 0 -> D = C
    frame_pool: Literal["mean", "sum", "alpha"] = "mean"  # spatial features over frames; paper: sum; alpha: beyond it
    temporal_aux_weight: float = 0.0        # lambda of a training-only classifier on f_t (0: the paper's loss)
    dropout: float | None = None         # None -> 0.8 (RGB), 0.7 (flow), as TSN
    preprocess: Preprocess | None = None  # None -> the BN-Inception ImageNet normalisation

    def __post_init__(self) -> None:
        check_literals(self, "model")
        self._check_numbers()
        both = HEADS[self.head] == Head(temporal=True, spatial=True)  # f_t beside the f_sj
        if self.frame_pool == "alpha" and not both:
            raise ConfigError(f"model.frame_pool=alpha pools frames with the temporal weights of the T-STAM head; "
                              f"model.head={self.head!r} has no both-path head (use head=tstam or another frame_pool)")
        if self.temporal_aux_weight > 0 and not both:
            raise ConfigError(f"model.temporal_aux_weight={self.temporal_aux_weight} needs model.head=tstam "
                              f"(an auxiliary classifier on f_t beside the full head); got {self.head!r}")
        bad = sorted(set(self.se_blocks) - set(BLOCK_NAMES))
        if bad:
            raise ConfigError(f"model.se_blocks: {bad} are not blocks; expected names from {list(BLOCK_NAMES)}")
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

    def _check_numbers(self) -> None:
        if self.num_classes is not None:
            check_range("model.num_classes", self.num_classes, 1, MAX_CLASSES, note="null: the annotations' count")
        check_range("model.num_segments", self.num_segments, 1, MAX_NUM_SEGMENTS,
                    note="training segments; the paper's best is 6, the test frames are data.test_frames")
        if self.new_length is not None:
            check_range("model.new_length", self.new_length, 1, MAX_NEW_LENGTH, note="TSN: 1 RGB, 5 flow; null: those")
        if self.input_size < 32 or self.input_size % 32 or self.input_size > MAX_INPUT_SIZE:
            raise ConfigError(f"model.input_size={self.input_size}: expected a multiple of 32 from 32 to {MAX_INPUT_SIZE}")
        check_range("model.width_mult", self.width_mult, 0, MAX_WIDTH_MULT, lo_open=True, note="1.0 = BN-Inception")
        check_range("model.se_reduction", self.se_reduction, 1, 1024, note="the paper's 16")
        check_range("model.attention_hidden", self.attention_hidden, 1, MAX_HIDDEN, note="the paper's 256")
        check_range("model.num_heads", self.num_heads, 1, 16, note="the paper's 4")
        check_range("model.map_dim", self.map_dim, 0, MAX_HIDDEN, note="0: the backbone's channels")
        check_range("model.temporal_aux_weight", self.temporal_aux_weight, 0, 100, note="0: the paper's loss")
        if self.dropout is not None:
            check_range("model.dropout", self.dropout, 0, 1, hi_open=True, note="TSN: 0.8 RGB, 0.7 flow; null: those")

    @property
    def in_chans(self) -> int:
        """Input channels per segment: 3 per RGB frame or 2 per flow field, times the snippet length."""
        return (3 if self.modality == "rgb" else 2) * self.new_length


class ModelOutput(NamedTuple):
    logits: torch.Tensor                    # (B, K)
    temporal: torch.Tensor | None        # (B, N) alpha over frames, sums to 1; None without it
    spatial: torch.Tensor | None         # (B, l, N, h, w) maps, each sums to 1 over h*w
    aux_logits: torch.Tensor | None = None  # (B, K) the f_t classifier, training mode with lambda > 0 only


class FrameTerms(NamedTuple):
    """The logits split by frame (eval mode): logits = sum_i frames_i + bias."""

    frames: torch.Tensor                    # (B, N, K) what frame i adds in all (temporal + spatial)
    temporal: torch.Tensor | None        # (B, N, K) what frame i adds through f_t (TSN: its consensus share)
    spatial: torch.Tensor | None         # (B, N, K) what frame i adds through the f_sj
    bias: torch.Tensor                      # (K,)
    alpha: torch.Tensor | None           # (B, N) the temporal weights used


class TSTAM(nn.Module):
    """One stream of T-STAM. Build with ``build_model(cfg)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.num_classes is None:
            raise ConfigError("model.num_classes is null (the annotations' count): tstam train sets it from them; "
                              "give a number to build a model without annotations")
        self.cfg = cfg
        self.backbone = BNInception(
            in_chans=cfg.in_chans,
            width_mult=cfg.width_mult,
            se_blocks=cfg.se_blocks,
            se_reduction=cfg.se_reduction,
            se_gate=cfg.se_gate,
        )
        c = self.backbone.num_features
        self.feat_hw = -(-cfg.input_size // 32)  # ceil: the pools use ceil_mode
        head = HEADS[cfg.head].modules(c, cfg.map_dim or c, temporal_attention=cfg.temporal_attention,
                                       hidden=cfg.attention_hidden, num_heads=cfg.num_heads)
        self.mapping, self.temporal_att, self.spatial_att = head.mapping, head.temporal_att, head.spatial_att
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(head.out_dim, cfg.num_classes)
        self.aux_fc = (nn.Linear(cfg.map_dim or c, cfg.num_classes)  # on f_t (D wide), training only
                       if cfg.temporal_aux_weight > 0 else None)
        for fc in filter(None, (self.fc, self.aux_fc)):
            nn.init.normal_(fc.weight, std=0.001)  # TSN's classifier init
            nn.init.zeros_(fc.bias)
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

    def _check_alpha(self, alpha: torch.Tensor, b: int, n: int) -> torch.Tensor:
        if alpha.shape != (b, n) or not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()):
            raise ValueError(f"alpha must be finite, non-negative weights of shape (B, N) = ({b}, {n}); "
                             f"got shape {tuple(alpha.shape)}")
        return alpha.to(self.fc.weight.dtype)

    def head_parts(self, feats: torch.Tensor, alpha: torch.Tensor | None) -> HeadParts:
        """The per-frame pieces of an attention head (not TSN's consensus) on backbone features
        (B, N, C, h, w); ``alpha`` (B, N), if given, is used instead of the computed weights."""
        cfg = self.cfg
        b, n = feats.shape[:2]
        if alpha is not None:
            alpha = self._check_alpha(alpha, b, n)
        # The mapping (eq. 1) is affine and both poolings are convex combinations (the weights
        # sum to 1), so W1 (sum_k a_k X_k) + b1 = sum_k a_k (W1 X_k + b1): pooling first and mapping
        # the pooled vectors is exact and costs B*N*(1+l) instead of B*N*h*w vector maps.
        x = feats.flatten(0, 1)                                   # (B*N, C, h, w)
        w1, b1 = self.mapping.weight.flatten(1), self.mapping.bias  # (D, C), (D,)
        d = w1.shape[0]
        frames = f_s = beta = None
        if self.temporal_att is not None:
            frames = F.linear(x.mean((2, 3)), w1, b1).view(b, n, d)  # (B, N, D), x_hat_i
            if alpha is None:
                alpha = self.temporal_att(frames)                 # (B, N)
        if self.spatial_att is not None:
            beta = self.spatial_att(x)                            # (B*N, l, h*w)
            pooled = torch.bmm(beta, x.flatten(2).transpose(1, 2))  # (B*N, l, C)
            f_s = F.linear(pooled, w1, b1).view(b, n, cfg.num_heads, d)  # (B, N, l, D), eq. 7 inner sum
        return HeadParts(frames, alpha, f_s, beta)

    def _frame_weights(self, parts: HeadParts, n: int) -> torch.Tensor | None:
        """(B, N) weights of the spatial features' frame pooling; None for the plain mean or sum."""
        if self.cfg.frame_pool == "alpha" or (self.temporal_att is None and parts.alpha is not None):
            w = parts.alpha                                       # frame_pool=alpha, or a spatial-only override
            return w * n if self.cfg.frame_pool == "sum" else w
        return None

    def forward_head(self, feats: torch.Tensor, alpha: torch.Tensor | None = None) -> ModelOutput:
        """Backbone features (B, N, C, h, w) -> logits and attention.

        ``alpha`` (B, N), if given, replaces the temporal weights (an intervention); heads without
        temporal attention (TSN, spatial-only) use it as their frame weights instead of uniform ones."""
        cfg = self.cfg
        b, n, c, h, w = feats.shape
        if self.mapping is None:  # TSN: average consensus over frames and locations
            frames = feats.mean((3, 4))                           # (B, N, C)
            if alpha is None:
                pooled = frames.mean(1)                           # (B, C)
            else:
                pooled = torch.bmm(self._check_alpha(alpha, b, n).unsqueeze(1), frames).squeeze(1)
            return ModelOutput(self.fc(self.dropout(pooled)), None, None)

        parts = self.head_parts(feats, alpha)
        alpha, beta, out = parts.alpha, None, []
        f_t = None
        if parts.frames is not None:
            f_t = torch.bmm(alpha.unsqueeze(1), parts.frames).squeeze(1)  # (B, D), eq. 3
            out.append(f_t.unsqueeze(1))                          # (B, 1, D)
        if parts.f_s is not None:
            f_s, weights = parts.f_s, self._frame_weights(parts, n)
            if weights is not None:
                f_s = torch.einsum("bn,bnld->bld", weights, f_s)  # (B, l, D): sum_i w_i f_sji
            else:
                f_s = f_s.sum(1) if cfg.frame_pool == "sum" else f_s.mean(1)  # (B, l, D)
            beta = parts.beta.view(b, n, cfg.num_heads, h, w).transpose(1, 2)  # (B, l, N, h, w)
            out.append(f_s)
        fused = out[0] + out[1] if len(out) == 2 else out[0]      # (B, l, D), eq. 8: F_j = f_t + f_sj
        logits = self.fc(self.dropout(fused.flatten(1)))          # (B, K), eq. 9 concat
        aux = self.aux_fc(self.dropout(f_t)) if self.aux_fc is not None and self.training else None
        return ModelOutput(logits, alpha if self.temporal_att is not None else None, beta, aux)

    @torch.no_grad()
    def frame_terms(self, feats: torch.Tensor, alpha: torch.Tensor | None = None) -> FrameTerms:
        """The logits of ``forward_head(feats, alpha)`` in eval mode, split by frame and path.

        The classifier is linear and each path a weighted sum over frames, so frame i adds
        ``alpha_i sum_j W_j x_hat_i`` through f_t and ``w_i sum_j W_j f_sji`` through the f_sj (w_i: 1/N
        for mean pooling, 1 for sum, alpha_i for ``frame_pool=alpha``); TSN's frames add
        ``W mean_hw X_i / N``. W_j is the classifier's block for head j."""
        if self.training:
            raise RuntimeError("frame_terms splits the eval-mode logits; call model.eval() first")
        b, n = feats.shape[:2]
        wfc = self.fc.weight                                      # (K, l*D) or (K, D) or (K, C)
        k = wfc.shape[0]
        if self.mapping is None:
            frames = feats.mean((3, 4))                           # (B, N, C)
            weights = torch.full((b, n), 1.0 / n) if alpha is None else self._check_alpha(alpha, b, n)
            per = torch.einsum("bn,bnc,kc->bnk", weights.to(frames), frames, wfc)  # (B, N, K)
            return FrameTerms(per, None, None, self.fc.bias, None)
        parts = self.head_parts(feats, alpha)
        heads = 1 if parts.f_s is None else self.cfg.num_heads
        wfc = wfc.view(k, heads, -1)                              # (K, l, D)
        temporal = spatial = None
        if parts.frames is not None:                              # the same f_t enters every F_j
            temporal = torch.einsum("bn,bnd,kd->bnk", parts.alpha, parts.frames, wfc.sum(1))  # (B, N, K)
        if parts.f_s is not None:
            weights = self._frame_weights(parts, n)
            if weights is None:
                weights = torch.full((b, n), 1.0 if self.cfg.frame_pool == "sum" else 1.0 / n).to(wfc)
            spatial = torch.einsum("bn,bnld,kld->bnk", weights, parts.f_s, wfc)  # (B, N, K)
        total = sum(t for t in (temporal, spatial) if t is not None)
        alpha_used = parts.alpha if self.temporal_att is not None else None
        return FrameTerms(total, temporal, spatial, self.fc.bias, alpha_used)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> ModelOutput:
        """(B, N, C_in, H, W) -> ``ModelOutput``; ``alpha`` (B, N): see ``forward_head``."""
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input(x)
        return self.forward_head(self.forward_features(x), alpha)

    def loss(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        """The training loss: cross-entropy of the logits, plus ``temporal_aux_weight`` x that of the
        auxiliary f_t classifier when it ran (training mode, lambda > 0)."""
        loss = F.cross_entropy(out.logits.float(), target)
        if out.aux_logits is not None:
            loss = loss + self.cfg.temporal_aux_weight * F.cross_entropy(out.aux_logits.float(), target)
        return loss

    # -- TSN training practices -----------------------------------------------------------------
    def set_partial_bn(self, enabled: bool = True) -> TSTAM:
        """TSN partial BN: in train mode every backbone BN layer but the first keeps its statistics
        and its affine parameters frozen (they are excluded from ``optim_groups``). BN layers are
        matched by their base class, so layers converted to SyncBatchNorm count as well."""
        self._partial_bn = enabled
        if not enabled:
            for m in self.backbone.modules():
                if isinstance(m, _BatchNorm):
                    m.weight.requires_grad_(True)
                    m.bias.requires_grad_(True)
        return self.train(self.training)

    def train(self, mode: bool = True) -> TSTAM:
        super().train(mode)
        if mode and self._partial_bn:
            bns = [m for m in self.backbone.modules() if isinstance(m, _BatchNorm)]
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
        backbone_bns = [m for m in self.backbone.modules() if isinstance(m, _BatchNorm)]
        frozen_bns = set(map(id, backbone_bns[1:])) if self._partial_bn else set()
        for module in self.modules():
            for pname, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                if isinstance(module, _BatchNorm):
                    if id(module) not in frozen_bns:
                        groups["bn"]["params"].append(p)
                elif pname.startswith("bias"):
                    groups["bias"]["params"].append(p)
                else:
                    groups["weight"]["params"].append(p)
        return [dict(name=k, **v) for k, v in groups.items() if v["params"]]


def build_model(cfg: ModelConfig | str, **fields: Any) -> TSTAM:
    """Build one T-STAM stream (random init; see ``load_pretrained``) from its config, or, as timm's
    ``create_model``, from a registered head name (``HEADS``) with ``ModelConfig`` fields as keywords,
    e.g. ``build_model("tsn", modality="flow", num_classes=51)``; ``fields`` also override a config's."""
    if isinstance(cfg, str):
        cfg = ModelConfig(head=cfg, **fields)  # an unknown name: ConfigError listing the heads
    elif fields:
        cfg = dataclasses.replace(cfg, **fields)
    return TSTAM(cfg)
