"""Forward / backward / state-dict hooks kept on child modules, and tensor hooks."""
import functools

import torch
import torch.nn as nn
import lightning.pytorch as pl

from nets_common import attach_probe, attach_shape_recorder, record_shape


class FeatureExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = {}
        self.backbone = nn.Sequential(nn.Linear(8, 8), nn.ReLU())  # truth: pickle
        self.head = nn.Linear(8, 2)
        self.backbone.register_forward_hook(lambda m, i, o: self.features.__setitem__("bb", o))


class GradNormWatcher(nn.Module):
    def __init__(self):
        super().__init__()
        self.norms = []
        self.encoder = nn.Linear(4, 4)  # truth: pickle
        self.decoder = nn.Linear(4, 4)

        def _grad_hook(module, grad_in, grad_out):
            self.norms.append(grad_out[0].norm().item())

        enc = self.encoder
        enc.register_full_backward_hook(_grad_hook)


class ProbedClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.acts = {}
        self.stem = attach_probe(nn.Linear(4, 4), self.acts)  # truth: pickle
        self.tail = attach_shape_recorder(nn.Linear(4, 2))


class ShapeLogged(nn.Module):
    """Clean: hooks are module-level functions or partials of them."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.a.register_forward_hook(record_shape)
        self.b.register_forward_pre_hook(functools.partial(_scale_input, factor=0.5))


def _scale_input(module, inputs, factor=1.0):
    return tuple(x * factor for x in inputs)


class PreHookedAll(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(4, 4)  # truth: pickle
        self.l2 = nn.Linear(4, 4)  # truth: pickle
        for child in self.children():
            child.register_forward_pre_hook(lambda m, inp: tuple(x.float() for x in inp))


class TensorHooked(nn.Module):
    """Clean: tensor hooks live on the autograd side and are not pickled."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        for p in self.fc.parameters():
            p.register_hook(lambda g: g.clamp(-1, 1))
        self.fc.weight.register_hook(lambda g: g * 0.5)


class SelfRecordingNet(nn.Module):
    """Clean: the hook is a bound method of the model itself, which pickles with it."""

    def __init__(self):
        super().__init__()
        self.last = None
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.blocks[0].register_forward_hook(self._record)

    def _record(self, module, inp, out):
        self.last = out.detach()


class HookThenRemove(nn.Module):
    """Clean: the handle removes the lambda right away."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        handle = self.proj.register_forward_hook(lambda m, i, o: o * 2)
        handle.remove()
        self.handle = None


class StateDictRenamer(nn.Module):
    def __init__(self):
        super().__init__()
        self.legacy = nn.Linear(2, 2)  # truth: pickle
        self.fresh = nn.Linear(2, 2)  # truth: pickle
        self.legacy.register_state_dict_pre_hook(lambda mod, prefix, keep_vars: None)
        self.fresh.register_load_state_dict_post_hook(lambda mod, keys: keys.missing_keys.clear())


class LayerStats(nn.Module):
    def __init__(self, depth=3):
        super().__init__()
        self.stats = {}
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(depth)])  # truth: pickle
        for idx, layer in enumerate(self.layers):
            layer.register_forward_hook(self._make_hook(idx))

    def _make_hook(self, idx):
        def hook(module, inp, out):
            self.stats[idx] = out.mean().item()
        return hook


class LitProbe(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 4), nn.Tanh())  # truth: pickle
        self.saturation = []
        self.net[1].register_forward_hook(lambda m, i, o: self.saturation.append((o.abs() > 0.99).float().mean()))

    def training_step(self, batch, idx):
        return self.net(batch).sum()


class LitTensorHooks(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 4)
        self.net.bias.register_hook(lambda g: torch.zeros_like(g))

    def training_step(self, batch, idx):
        return self.net(batch).sum()
