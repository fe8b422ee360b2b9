"""The peer workload of the GPU check's training step: a ResNet-50 TSN step, written here (no torchvision).

ResNet-50 (He et al. 2016: bottleneck blocks 3-4-6-3, widths 64-128-256-512 x 4, stride in the 3x3
conv as torchvision's "v1.5") trained as TSN does (Wang et al. 2016): every segment's frame through
the backbone, the class scores averaged over the segments, cross-entropy, SGD with momentum. It is
the standard convolution training workload of this size, so the T-STAM step is judged against what
the same GPU, precision and memory format give to it, not against the matmul peak.

``tsn_step`` takes the T-STAM step's batch exactly as ``tstam.engine.train.train_step`` does: uint8
clips (B, N, 3, H, W) moved to the device, normalised there, autocast, gradient clipping, one
optimiser step; the optimiser is the fused SGD that ``setup_optimisation`` picks on CUDA.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tstam.preprocess import Preprocess


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.down is None else self.down(x)), inplace=True)


class ResNet50(nn.Module):
    """ResNet-50 with a ``width`` multiplier on every layer (1.0: the standard 25.6 M parameters at 1000 classes)."""

    channels_last = False  # the layout the frames are put in before the stem

    def __init__(self, num_classes: int, width: float = 1.0, dropout: float = 0.8) -> None:
        super().__init__()
        w = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 7, 2, 3, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], w[0]
        for i, (blocks, width_i) in enumerate(zip((3, 4, 6, 3), w)):
            for b in range(blocks):
                layers.append(Bottleneck(cin, width_i, 2 if b == 0 and i > 0 else 1))
                cin = width_i * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, H, W) normalised frames -> (B, K) class scores averaged over the N segments (TSN consensus)."""
        b, n = x.shape[:2]
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        feats = F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)
        return self.fc(self.drop(feats)).view(b, n, -1).mean(1)


def build_peer(num_classes: int, width: float, device: torch.device, *, channels_last: bool) -> tuple[ResNet50, torch.optim.Optimizer]:
    """The model on ``device`` in train mode and its optimiser (SGD, momentum 0.9, weight decay 5e-4: the T-STAM recipe's)."""
    torch.manual_seed(0)
    model = ResNet50(num_classes, width).to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.channels_last = channels_last
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4, **fused)
    return model, opt


def tsn_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
             device: torch.device, amp: torch.dtype | None, preprocess: Preprocess, clip_grad: float = 40.0) -> torch.Tensor:
    """One training step on uint8 clips ``x`` (B, N, 3, H, W) and labels ``y`` (B,); returns the loss (not read)."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    x = preprocess.normalize_clip(x)
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    opt.step()
    return loss.detach()
