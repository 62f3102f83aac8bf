"""Hooks registered on submodules: the hook lives in the submodule's hook dicts."""
import torch
from torch import nn

from project_utils import _scale_hook, quant_noise, capture_output, with_output_scale


class ProbedEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = []
        self.encoder = nn.Sequential(nn.Linear(8, 8), nn.ReLU())  # truth: pickle
        self.encoder.register_forward_hook(lambda m, i, o: self.features.append(o.detach()))
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.encoder(x))


class ActivationCache(nn.Module):
    def __init__(self):
        super().__init__()
        self.cache = []
        self.backbone = nn.Linear(8, 8)  # truth: pickle
        self.backbone.register_forward_hook(capture_output(self.cache))
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.backbone(x))


class PrefixedStateDict(nn.Module):
    def __init__(self):
        super().__init__()

        def drop_buffers(module, state_dict, prefix, local_metadata):
            for k in [k for k in state_dict if k.endswith("running_var")]:
                del state_dict[k]
            return state_dict

        self.norm = nn.BatchNorm1d(8)  # truth: pickle
        self.norm._register_state_dict_hook(drop_buffers)
        self.fc = nn.Linear(8, 2)


class QuantNoiseFFN(nn.Module):
    def __init__(self, dim=8, hidden=16, q_noise=0.1, block=4):
        super().__init__()
        self.fc1 = quant_noise(nn.Linear(dim, hidden), q_noise, block)  # truth: pickle
        self.fc2 = quant_noise(nn.Linear(hidden, dim), 0.0, block)
        self.act = nn.GELU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ScaledOutputs(nn.Module):
    """Clean: the helper registers an importable module-level hook."""

    def __init__(self):
        super().__init__()
        self.proj = with_output_scale(nn.Linear(8, 8))
        self.out = nn.Linear(8, 2)
        self.out.register_forward_hook(_scale_hook)


class GradClippedHead(nn.Module):
    """Clean: tensor hooks on a Parameter are not pickled with it."""

    def __init__(self, clip=1.0):
        super().__init__()
        self.head = nn.Linear(8, 2)
        for p in self.head.parameters():
            p.register_hook(lambda g: g.clamp(-clip, clip))


class HandleKeeper(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

        def remember(module, args):
            self.seen.append(args[0].shape)

        self.stem = nn.Conv2d(3, 4, 3)  # truth: pickle
        self.stem_handle = self.stem.register_forward_pre_hook(remember)  # truth: pickle

    def forward(self, x):
        return self.stem(x)


class RemovedHookProbe(nn.Module):
    """Clean: the probe's hook is removed right after the shape probe."""

    def __init__(self):
        super().__init__()
        shapes = []
        self.stem = nn.Conv2d(3, 4, 3)
        handle = self.stem.register_forward_hook(lambda m, i, o: shapes.append(o.shape))
        self.stem(torch.zeros(1, 3, 8, 8))
        handle.remove()
        self.out_shape = tuple(shapes[0])



class TappedStack(nn.Module):
    def __init__(self, depth=3):
        super().__init__()
        self.taps = {}
        self.layers = nn.Sequential(*[nn.Linear(8, 8) for _ in range(depth)])  # truth: pickle
        for idx, layer in enumerate(self.layers):
            layer.register_forward_hook(lambda m, i, o, idx=idx: self.taps.__setitem__(idx, o))


class GradNormProbe(nn.Module):
    def __init__(self):
        super().__init__()
        self.norms = []
        self.block = nn.Linear(8, 8)  # truth: pickle
        self.block.register_full_backward_hook(lambda m, gin, gout: self.norms.append(gout[0].norm().item()))


class LoadPatchedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)  # truth: pickle

        def report(module, incompatible):
            incompatible.missing_keys.clear()

        self.head.register_load_state_dict_post_hook(report)


class GlobalHookUser(nn.Module):
    """Clean: a global module hook lives in torch, not on the instance."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: o)
        handle.remove()


class AccumulateGradHook(nn.Module):
    """Clean: post-accumulate-grad hooks are tensor hooks, not pickled with the Parameter."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.fc.weight.register_post_accumulate_grad_hook(lambda p: p.grad.clamp_(-1, 1))
