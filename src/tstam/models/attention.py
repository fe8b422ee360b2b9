"""The spatio-temporal attention of T-STAM (paper section 3, eq. 2-7), and the LSTM baseline.

Shapes: B = batch, N = frames (segments), C = backbone channels, D = mapped channels,
h x w = feature map, l = spatial heads.

- ``CNNTemporalAttention`` (eq. 2-3): one score per frame from the frame's mean mapped feature by a
  1x1 conv over the frame sequence (D -> 256, tanh, 256 -> 1), softmax over N. All frames in
  parallel, no recurrence.
- ``LSTMTemporalAttention``: the recurrent design the paper argues against (Du et al.), with the
  same hidden width, for the parameter and speed comparison.
- ``MultiSpatialAttention`` (eq. 4-6): l heads, head j: ``BN(conv5x5(tanh(BN(conv1x1_{C->C/2}(X)))))``
  -> one map per frame, softmax over the h*w locations. The l heads run as one grouped conv,
  which is the same computation as l separate heads.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["CNNTemporalAttention", "LSTMTemporalAttention", "MultiSpatialAttention", "TEMPORAL_ATTENTION"]


class CNNTemporalAttention(nn.Module):
    """Frame scores by 1x1 convs over the frame axis; returns alpha (B, N), summing to 1."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, hidden, 1)
        # No bias: a constant added to every frame's score cancels in the softmax.
        self.conv2 = nn.Conv1d(hidden, 1, 1, bias=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, N, D), the frame vectors x_hat_i
        s = self.conv2(torch.tanh(self.conv1(frames.transpose(1, 2))))  # (B, 1, N)
        return s.squeeze(1).softmax(dim=-1)                                # (B, N)


class LSTMTemporalAttention(nn.Module):
    """Frame scores from an LSTM run over the frames in order (the RNN design, for ablations)."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(frames)                    # (B, N, hidden)
        return self.score(h).squeeze(-1).softmax(-1)  # (B, N)


# ``model.temporal_attention`` -> its module, built as ``cls(dim, hidden)``
TEMPORAL_ATTENTION: dict[str, type[nn.Module]] = {"cnn": CNNTemporalAttention, "lstm": LSTMTemporalAttention}


class MultiSpatialAttention(nn.Module):
    """l spatial attention heads; returns maps (B*N, l, h*w), each summing to 1 over h*w."""

    def __init__(self, channels: int, num_heads: int = 4, kernel_size: int = 5):
        super().__init__()
        self.num_heads = num_heads
        mid = max(1, channels // 2) * num_heads
        self.reduce = nn.Conv2d(channels, mid, 1)                 # l x (C -> C/2), eq. 4 w1
        self.reduce_bn = nn.BatchNorm2d(mid)
        self.score = nn.Conv2d(mid, num_heads, kernel_size, padding=kernel_size // 2, groups=num_heads)
        self.score_bn = nn.BatchNorm2d(num_heads)                 # eq. 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B*N, C, h, w), backbone features X_i
        s = torch.tanh(self.reduce_bn(self.reduce(x)))            # (B*N, l*C/2, h, w)
        s = self.score_bn(self.score(s))                          # (B*N, l, h, w)
        return s.flatten(2).softmax(dim=-1)                       # (B*N, l, h*w), eq. 6

