"""Project helpers that the model files import (functions, no classes to build)."""
import re

import torch
from torch import nn


def normalize_text(s):
    return re.sub(r"\s+", " ", s.lower()).strip()


def log1p_clip(X):
    return torch.log1p(torch.as_tensor(X)).clamp(max=10.0).numpy()


def quant_noise(module, p, block_size):
    """fairseq-style: quantization noise through a forward pre-hook registered on the module."""
    if p <= 0:
        return module

    def _forward_pre_hook(mod, inputs):
        if mod.training:
            weight = mod.weight
            mask = torch.zeros_like(weight).bernoulli_(p)
            mod.weight.data = weight.masked_fill(mask.bool(), 0) / (1 - p)

    module.register_forward_pre_hook(_forward_pre_hook)
    return module


def _scale_hook(mod, inputs, output):
    return output * 1.0


def with_output_scale(module):
    """Registers a module-level (importable) hook: pickles fine."""
    module.register_forward_hook(_scale_hook)
    return module


def capture_output(store):
    def hook(module, inputs, output):
        store.append(output.detach())

    return hook


def spectral(module):
    return nn.utils.parametrizations.spectral_norm(module)


@torch.no_grad()
def ema_update(target, source, decay=0.99):
    for t, s in zip(target.parameters(), source.parameters()):
        t.mul_(decay).add_(s, alpha=1 - decay)


@torch.no_grad()
def greedy_decode(logits):
    return logits.argmax(-1)
