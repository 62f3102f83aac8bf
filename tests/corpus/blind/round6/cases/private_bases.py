"""Losses and layers built on torch's private bases (_Loss, _WeightedLoss, _ConvNd, _BatchNorm, ...)."""
import os
import threading

import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.pooling import _MaxPoolNd
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.modules.loss import _Loss, _WeightedLoss
from torch.nn import modules as tnm


class LoggedMSELoss(_Loss):
    def __init__(self, log_path=os.devnull, reduction="mean"):
        super().__init__(reduction=reduction)
        self.log_file = open(log_path, "a")  # truth: pickle

    def forward(self, input, target):
        loss = F.mse_loss(input, target, reduction=self.reduction)
        self.log_file.write(f"{loss.item():.4f}\n")
        return loss


class SmoothL1WithPath(_Loss):
    """Clean: keeps the path, opens per call."""

    def __init__(self, log_path=os.devnull, beta=1.0):
        super().__init__()
        self.log_path = log_path
        self.beta = beta

    def forward(self, input, target):
        loss = F.smooth_l1_loss(input, target, beta=self.beta)
        with open(self.log_path, "a") as fh:
            fh.write(f"{loss.item()}\n")
        return loss


class FocalLoss(_WeightedLoss):
    def __init__(self, gamma=2.0, weight=None):
        super().__init__(weight=weight)
        self.gamma = gamma
        self.focus = lambda p: (1 - p) ** gamma  # truth: pickle

    def forward(self, logits, target):
        logp = F.log_softmax(logits, -1)
        ce = F.nll_loss(logp, target, weight=self.weight, reduction="none")
        return (self.focus(torch.exp(-ce)) * ce).mean()


class CountingNLLLoss(tnm.loss._WeightedLoss):
    def __init__(self):
        super().__init__()
        self.calls = 0
        self.lock = threading.Lock()  # truth: pickle

    def forward(self, input, target):
        with self.lock:
            self.calls += 1
        return F.nll_loss(input, target, weight=self.weight)


class CoordConv2d(_ConvNd):
    def __init__(self, in_ch=3, out_ch=4, k=3):
        super().__init__(in_ch + 2, out_ch, (k, k), (1, 1), (1, 1), (1, 1), False, (0, 0), 1, True, "zeros")
        self.coords_cache = {}
        self.grid_fn = lambda h, w: torch.stack(  # truth: pickle
            torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        )

    def forward(self, x):
        g = self.grid_fn(x.shape[-2], x.shape[-1]).expand(x.shape[0], -1, -1, -1)
        return F.conv2d(torch.cat([x, g], 1), self.weight, self.bias, self.stride, self.padding)


class PlainCoordConv2d(_ConvNd):
    """Clean: a private base alone is no hazard."""

    def __init__(self, in_ch=3, out_ch=4, k=3):
        super().__init__(in_ch + 2, out_ch, (k, k), (1, 1), (1, 1), (1, 1), False, (0, 0), 1, True, "zeros")
        self.coords_cache = {}


class StatsDumpingBatchNorm(_BatchNorm):
    def __init__(self, num_features=4, dump=os.devnull):
        super().__init__(num_features)
        self.dump = open(dump, "wb")  # truth: pickle

    def _check_input_dim(self, input):
        if input.dim() != 2:
            raise ValueError("expected 2D input")


class GhostBatchNorm(_BatchNorm):
    def __init__(self, num_features=4, virtual_batch=32):
        super().__init__(num_features)
        self.virtual_batch = virtual_batch
        self.splits = iter(range(0, 1024, virtual_batch))

    def _check_input_dim(self, input):
        pass


class StyleInstanceNorm(_InstanceNorm):
    def __init__(self, num_features=4):
        super().__init__(num_features, affine=True)
        self.stats = (torch.zeros(num_features) for _ in range(2))  # truth: pickle

    def _get_no_batch_dim(self):
        return 2

    def _check_input_dim(self, input):
        pass



class SoftPool2d(_MaxPoolNd):
    def __init__(self, kernel_size=2, beta=5.0):
        super().__init__(kernel_size)
        self.weighting = lambda x: torch.exp(beta * x)  # truth: pickle

    def forward(self, x):
        w = self.weighting(x)
        return F.avg_pool2d(x * w, self.kernel_size) / F.avg_pool2d(w, self.kernel_size).clamp_min(1e-6)


class ChannelDropout(_DropoutNd):
    """Clean: plain numbers on a private base."""

    def __init__(self, p=0.1, min_keep=1):
        super().__init__(p)
        self.min_keep = min_keep

    def forward(self, x):
        return F.dropout1d(x, self.p, self.training)
