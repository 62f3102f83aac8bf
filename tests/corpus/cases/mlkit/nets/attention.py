"""Attention layers.  Uses the package's re-exported base class."""

import math
import weakref
from collections import Counter
from functools import partial

import torch
from torch import nn

from mlkit.nets import DEFAULT_WIDTH, Layer


class MultiHeadAttention(Layer):
    """Plain scaled dot-product attention; nothing here breaks pickling."""

    def __init__(self, dim=DEFAULT_WIDTH, heads=4):
        super().__init__("mha")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.out = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.softmax = partial(torch.softmax, dim=-1)
        self.mask_cache = {}

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        att = self.softmax(q @ k.transpose(-1, -2) * self.scale)
        return self.out((att @ v).transpose(1, 2).reshape(b, t, d))


class KVCacheAttention(MultiHeadAttention):
    """Keeps key/value tensors of live requests without owning them."""

    def __init__(self, dim=DEFAULT_WIDTH, heads=4):
        super().__init__(dim, heads)
        self.kv_cache = weakref.WeakValueDictionary()  # truth: pickle
        self.hits = Counter()

    def lookup(self, request_id):
        self.hits[request_id] += 1
        return self.kv_cache.get(request_id)


class RoutedAttention(Layer):
    """Mixture of attention experts; reports which experts were used."""

    def __init__(self, dim=DEFAULT_WIDTH, n_experts=4):
        super().__init__("routed")
        self.experts = nn.ModuleList(MultiHeadAttention(dim) for _ in range(n_experts))
        self.router = nn.Linear(dim, n_experts)
        self.usage = {i: 0 for i in range(n_experts)}
        self.expert_ids = self.usage.keys()  # truth: pickle

    def forward(self, x):
        idx = int(self.router(x.mean(dim=1)).argmax(dim=-1)[0])
        self.usage[idx] += 1
        return self.experts[idx](x)


class ParentAwareAttention(Layer):
    """Holds a back-reference to the model that owns it (weakly, to avoid a cycle)."""

    def __init__(self, owner=None, dim=DEFAULT_WIDTH):
        super().__init__("parent_aware")
        self.attn = MultiHeadAttention(dim)
        owner = owner if owner is not None else nn.Identity()
        self.owner_ref = weakref.ref(owner)  # truth: pickle
        self._owner_keepalive = owner

    def forward(self, x):
        return self.attn(x)
