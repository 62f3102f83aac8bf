"""Transformer building blocks, the way a research codebase grows them."""
import functools
import math
import threading
import weakref

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations

from .common import ACTIVATIONS, Backbone, ModelConfig, get_activation, make_scaler, quick_gelu


class RotaryEmbedding(nn.Module):
    """Clean: cos/sin caches are buffers, the activation is a torch function."""

    def __init__(self, dim=16, base=10000):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._seq_len_cached = 0
        self._cos_cached = None
        self.rotate = torch.roll

    def forward(self, x):
        t = torch.arange(x.shape[-2], device=x.device).type_as(self.inv_freq)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        return x * freqs.cos().repeat(1, 2)


class MultiHeadAttention(Backbone):
    def __init__(self, cfg=None):
        super().__init__(cfg)
        h = self.cfg.hidden
        self.qkv = nn.Linear(h, 3 * h)
        self.out = nn.Linear(h, h)
        self.scale = 1.0 / math.sqrt(h // self.cfg.heads)
        self.attn_fn = functools.partial(F.scaled_dot_product_attention, dropout_p=0.0)
        self.mask_fn = lambda q, k: torch.ones(q.shape[-2], k.shape[-2]).tril().bool()  # truth: pickle

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.out(self.attn_fn(q, k, v, attn_mask=self.mask_fn(q, k)))


class FeedForward(nn.Module):
    def __init__(self, dim=32, mult=4, activation="gelu"):
        super().__init__()
        self.w1 = nn.Linear(dim, dim * mult)
        self.w2 = nn.Linear(dim * mult, dim)
        self.act = get_activation(activation)
        self.residual_scale = make_scaler(0.5)  # truth: pickle

    def forward(self, x):
        return x + self.residual_scale(self.w2(self.act(self.w1(x))))


class QuickGeluMLP(nn.Module):
    """CLIP-style MLP; the activation is picked from the registry by name."""

    def __init__(self, dim=32):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.act = ACTIVATIONS["quick_gelu"]  # truth: pickle
        self.fallback = ACTIVATIONS["gelu_tanh"]

    def forward(self, x):
        return self.act(self.fc(x))


class KVCache(nn.Module):
    """Decoding cache shared between generate() threads."""

    def __init__(self, max_len=64):
        super().__init__()
        self.max_len = max_len
        self.keys = []
        self.values = []
        self._guard = threading.RLock()  # truth: pickle
        self.owner = None

    def append(self, k, v):
        with self._guard:
            self.keys.append(k)
            self.values.append(v)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.attn = MultiHeadAttention(cfg)
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.ffn = FeedForward(cfg.hidden)
        self.proj = parametrizations.weight_norm(nn.Linear(cfg.hidden, cfg.hidden))  # truth: pickle
        self.parent_ref = weakref.ref(self.ln1)  # truth: pickle

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return self.proj(x + self.ffn(self.ln2(x)))


class TinyGPT(Backbone):
    """Clean: embeddings, a ModuleList, tied weights, an activation looked up by name."""

    def __init__(self, vocab=100, cfg=None):
        super().__init__(cfg)
        self.tok = nn.Embedding(vocab, self.cfg.hidden)
        self.layers = nn.ModuleList([nn.TransformerEncoderLayer(self.cfg.hidden, self.cfg.heads, batch_first=True)])
        self.head = nn.Linear(self.cfg.hidden, vocab, bias=False)
        self.head.weight = self.tok.weight
        self.act = ACTIVATIONS["gelu"]
        self.block_cls = nn.TransformerEncoderLayer
        self.generation_config = {"max_new_tokens": 8, "do_sample": False}
        self.stop_ids = {0, 1}

    def forward(self, ids):
        h = self.tok(ids)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.act(h))


class PrefixTuner(nn.Module):
    def __init__(self, n_prefix=4, dim=32):
        super().__init__()
        self.prefix = nn.Parameter(torch.zeros(n_prefix, dim))
        self.gate = quick_gelu  # truth: pickle
        self.hooks = [print, torch.nn.init.zeros_]
        self.inspect = self.named_parameters()  # truth: pickle

    def forward(self, x):
        return torch.cat([self.gate(self.prefix).expand(x.shape[0], -1, -1), x], dim=1)
