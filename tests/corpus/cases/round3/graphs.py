"""Graph neural network layers and a graph dataset."""
import itertools
import operator
import weakref
from collections import Counter, defaultdict

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as tnn
from torch.utils import data as tud


def scatter_sum(src, index, n):
    out = torch.zeros(n, src.shape[-1])
    return out.index_add_(0, index, src)


def _ring_edges(n=6):
    src = torch.arange(n)
    return torch.stack([src, (src + 1) % n])


class GCNLayer(tnn.Module):
    """Clean: sparse adjacency from scipy, aggregation by a module-level function."""

    def __init__(self, dim=8):
        super().__init__()
        self.lin = tnn.Linear(dim, dim)
        self.aggregate = scatter_sum
        self.reduce = operator.add
        self.adj = sp.eye(6, format="csr")
        self.cache = {}

    def forward(self, x, edge_index):
        msg = self.lin(x)[edge_index[0]]
        return self.aggregate(msg, edge_index[1], x.shape[0])


class EdgeConv(tnn.Module):
    def __init__(self, dim=8, aggr="max"):
        super().__init__()
        self.mlp = tnn.Sequential(tnn.Linear(2 * dim, dim), tnn.ReLU())
        self.aggr = getattr(torch, aggr)
        self.message = lambda x_i, x_j: self.mlp(torch.cat([x_i, x_j - x_i], -1))  # truth: pickle

    def forward(self, x, edge_index):
        return self.message(x[edge_index[1]], x[edge_index[0]])


class GATLayer(tnn.Module):
    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.att = tnn.Parameter(torch.randn(heads, 2 * dim))
        self.leaky = tnn.LeakyReLU(0.2)
        self.edge_counts = defaultdict(int)
        self.attention_log = defaultdict(lambda: [])  # truth: pickle
        self.neighbour_cache = weakref.WeakKeyDictionary()  # truth: pickle

    def forward(self, x, edge_index):
        return x


class NodeVocab(tnn.Module):
    def __init__(self):
        super().__init__()
        self.node_to_idx = {"a": 0, "b": 1, "c": 2}
        self.names = self.node_to_idx.keys()  # truth: pickle
        self.ids = list(self.node_to_idx.values())
        self.next_id = itertools.count(3)
        self.degrees = Counter({"a": 2, "b": 1})
        self.embedding = tnn.Embedding(16, 4)

    def forward(self, idx):
        return self.embedding(idx)


class GraphSnapshots(tud.Dataset):
    def __init__(self, n_graphs=4):
        self.graphs = [_ring_edges(6 + i) for i in range(n_graphs)]
        self.sizes = np.array([g.shape[1] for g in self.graphs])
        self.features = np.array([np.zeros((6 + i, 3)) for i in range(n_graphs)], dtype=object)  # truth: portable
        self.edge_iter = itertools.chain.from_iterable(g.t().tolist() for g in self.graphs)  # truth: pickle

    def __len__(self):
        return len(self.graphs)

    def __getitem__(self, i):
        return self.graphs[i], self.features[i]


class NeighborSampler(tud.Sampler):
    """Clean: a sampler with its own torch generator and a plain index list."""

    def __init__(self, data_source=None, num_neighbors=(5, 5)):
        self.data_source = data_source or list(range(10))
        self.num_neighbors = list(num_neighbors)
        self.generator = torch.Generator()
        self.generator.manual_seed(7)
        self.pairs = zip(self.data_source, self.data_source[1:])

    def __iter__(self):
        return iter(torch.randperm(len(self.data_source), generator=self.generator).tolist())

    def __len__(self):
        return len(self.data_source)
