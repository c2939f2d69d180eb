"""Building blocks shared by NAFNet and NAFSSR: LayerNorm2d, SimpleGate and NAFBlock.

These mirror the authors' computation step by step (this is the *reference* path that the golden tests
check); parameter names and registration order follow the official checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from .tlc import MeanPool


class LayerNorm2d(nn.Module):
    """Layer norm over the channel axis only, per pixel (biased variance, eps 1e-6)."""

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / (var + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (the nonlinearity of NAFNet)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """The nonlinear-activation-free block: LN, 1x1, depthwise 3x3, gate, SCA, 1x1; then LN, FFN."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c, dw = channels, channels * 2
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(c, c, 1)
        # Index 0 holds no parameters, so the conv's keys are ``sca.1.*`` as in the official files.
        self.sca = nn.Sequential(MeanPool(), nn.Conv2d(c, c, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.norm1(inp)
        x = self.sg(self.conv2(self.conv1(x)))
        x = x * self.sca(x)
        x = self.conv3(x)
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma
