"""Losses and layers built on torch's private base classes."""
import math
import os
import threading

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss, _WeightedLoss
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.modules.pooling import _AdaptiveAvgPoolNd, _MaxPoolNd
from torch.nn.modules.utils import _pair
import torch.nn.modules.loss as L

from nets_common import GhostNormBase, MaskedLossBase, WeightedBase, devnull_writer


class FocalLoss(_Loss):
    def __init__(self, gamma=2.0):
        super().__init__()
        self.gamma = gamma
        self.modulate = lambda p: (1 - p) ** gamma  # truth: pickle

    def forward(self, logits, target):
        p = torch.sigmoid(logits)
        return (self.modulate(p) * F.binary_cross_entropy(p, target, reduction="none")).mean()


class SmoothL1Custom(L._Loss):
    """Clean: plain numbers and a functional reference."""

    def __init__(self, beta=1.0):
        super().__init__(reduction="mean")
        self.beta = beta
        self.base = F.smooth_l1_loss


class ClassBalancedLoss(_WeightedLoss):
    def __init__(self):
        super().__init__(weight=torch.ones(3))
        self.counts_lock = threading.Lock()  # truth: pickle
        self.counts = torch.zeros(3)


class LabelSmoothingLoss(L._WeightedLoss):
    def __init__(self, smoothing=0.1):
        super().__init__()
        self.smoothing = smoothing
        self.confidence = 1.0 - smoothing


class MaskedMSE(MaskedLossBase):
    def __init__(self):
        super().__init__(pad_value=0)
        self.trace = devnull_writer()  # truth: pickle

    def forward(self, pred, target):
        return ((self.masked(pred, target) - self.masked(target, target)) ** 2).mean()


class MaskedHuber(MaskedLossBase):
    def __init__(self, delta=1.0):
        super().__init__()
        self.delta = delta


class TemperedCE(WeightedBase):
    def __init__(self, t=2.0):
        super().__init__()
        self.t = t
        self.schedule = (t / (k + 1) for k in range(10))  # truth: pickle


class LocallyConnected2d(_ConvNd):
    def __init__(self, cin=3, cout=4, k=3):
        super().__init__(cin, cout, _pair(k), _pair(1), _pair(0), _pair(1), False, _pair(0), 1, True, "zeros")
        self.fan_in = cin * k * k
        self.init_fn = lambda w: w.uniform_(-1 / math.sqrt(self.fan_in), 1 / math.sqrt(self.fan_in))  # truth: pickle

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


class StdConv2d(_ConvNd):
    """Clean: weight standardization, no extra state."""

    def __init__(self, cin=3, cout=4, k=3):
        super().__init__(cin, cout, _pair(k), _pair(1), _pair(1), _pair(1), False, _pair(0), 1, False, "zeros")
        self.eps = 1e-5

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True)) / (self.weight.std((1, 2, 3), keepdim=True) + self.eps)
        return F.conv2d(x, w, None, self.stride, self.padding)


class RunningStatsNorm(_BatchNorm):
    def __init__(self, num_features=8):
        super().__init__(num_features)
        self.stats_log = open(os.devnull, "a")  # truth: pickle

    def _check_input_dim(self, x):
        pass


class GhostNorm1d(GhostNormBase):
    def __init__(self):
        super().__init__(num_features=8, virtual_batch=2)
        self.splits = map(int, ["2", "2"])


class GhostNorm1dLazy(GhostNormBase):
    def __init__(self):
        super().__init__(num_features=8)
        self.chunker = lambda x: x.split(self.virtual_batch)  # truth: pickle


class AdaIN(_InstanceNorm):
    def __init__(self, num_features=8):
        super().__init__(num_features, affine=False)
        self.style_ready = threading.Event()  # truth: pickle

    def _check_input_dim(self, x):
        pass


class PlainIN(_InstanceNorm):
    def __init__(self, num_features=8):
        super().__init__(num_features, affine=True)
        self.momentum_decay = 0.9

    def _check_input_dim(self, x):
        pass

    def _get_no_batch_dim(self):
        return 2


class TokenDropout(_DropoutNd):
    def __init__(self, p=0.1):
        super().__init__(p)
        self.keep = lambda t: torch.rand_like(t) > self.p  # truth: pickle

    def forward(self, x):
        return x * self.keep(x)


class ChannelDropout(_DropoutNd):
    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)


class SoftPool(_AdaptiveAvgPoolNd):
    def __init__(self, output_size=1):
        super().__init__(output_size)
        self._cache_guard = threading.RLock()  # truth: pickle

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


class BlurPool(_MaxPoolNd):
    def __init__(self, kernel_size=2):
        super().__init__(kernel_size)
        self.filt = torch.tensor([1.0, 2.0, 1.0]) / 4

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride)
