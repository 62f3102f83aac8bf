"""numpy arrays that end up with dtype=object although nobody asked for it."""
import datetime as dt
import decimal
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn
from torch.utils.data import Dataset


class TagVocabulary(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        seen = set()
        for row in X:
            seen.update(row)
        self.classes_ = np.array(seen)  # truth: portable
        self.sorted_classes_ = np.array(sorted(seen))
        return self


class LabelIndex(BaseEstimator):
    def fit(self, X, y):
        index = {label: i for i, label in enumerate(dict.fromkeys(y))}
        self.index_ = index
        self.labels_ = np.array(index.keys())  # truth: pickle
        self.codes_ = np.array(list(index.values()))
        return self


class MissingAwareTargets(Dataset):
    def __init__(self, targets=(1.0, None, 3.5)):
        self.targets = np.array(targets)  # truth: portable
        self.mask = np.array([t is not None for t in targets])
        self.filled = np.array([0.0 if t is None else t for t in targets])

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.filled[i], self.mask[i]


class DailySeries(Dataset):
    def __init__(self, start=dt.date(2024, 1, 1), days=5):
        self.dates = np.array([start + dt.timedelta(days=i) for i in range(days)])  # truth: portable
        self.stamps = np.array([start + dt.timedelta(days=i) for i in range(days)], dtype="datetime64[D]")
        self.values = np.zeros(days, dtype=np.float32)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return self.values[i]


class ImageFolderIndex(Dataset):
    def __init__(self, root="."):
        root = Path(root)
        self.files = np.array([root / f"img_{i}.png" for i in range(3)])  # truth: portable
        self.names = np.array([str(root / f"img_{i}.png") for i in range(3)])
        self.sizes = np.fromiter((i * 10 for i in range(3)), dtype=np.int64)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return str(self.files[i])


class PriceTable(BaseEstimator):
    def fit(self, X, y=None):
        prices = [decimal.Decimal("19.99"), decimal.Decimal("5.00")]
        self.prices_ = np.asarray(prices)  # truth: portable
        self.prices_f_ = np.asarray([float(p) for p in prices])
        return self


class HashBuckets(nn.Module):
    def __init__(self):
        super().__init__()
        self.primes = np.array([2**61 - 1, 2**64 + 13])  # truth: portable
        self.small = np.array([2**31 - 1, 2**61 - 1])
        self.emb = nn.Embedding(16, 4)

    def forward(self, ids):
        return self.emb(ids % 16)


class SignedSeeds(nn.Module):
    def __init__(self):
        super().__init__()
        self.seeds = np.array([-(2**63) - 5, 7])  # truth: portable
        self.unsigned = np.array([2**63, 7], dtype=np.uint64)
        self.fc = nn.Linear(2, 2)


class RaggedBatches(Dataset):
    def __init__(self):
        lengths = [3, 1, 2]
        self.batches = np.array([list(range(n)) for n in lengths], dtype=object)  # truth: portable
        self.lengths = np.array(lengths)
        self.padded = np.zeros((3, 3), dtype=np.int64)

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return self.padded[i]


class StreamingIds(Dataset):
    def __init__(self, raw=("1", "2", "3")):
        self.ids = np.array(int(r) for r in raw)  # truth: pickle
        self.as_list = np.array([int(r) for r in raw])
        self.mapped = np.array(map(int, raw))  # truth: portable

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return i


class CategoryEncoder(BaseEstimator, TransformerMixin):
    """Clean: pandas-free categories, kept as unicode arrays."""

    def fit(self, X, y=None):
        cats = {str(x) for x in X}
        self.categories_ = np.array(sorted(cats))
        self.counts_ = np.unique(np.asarray([str(x) for x in X]), return_counts=True)[1]
        return self


class MixedLabels(nn.Module):
    def __init__(self, labels=("cat", None, "dog")):
        super().__init__()
        self.labels = np.array(labels)  # truth: portable
        self.has_label = torch.tensor([lab is not None for lab in labels])
        self.fc = nn.Linear(4, 3)


class FrozenVocab(BaseEstimator):
    def fit(self, X, y=None):
        self.vocab_ = np.array(frozenset(X))  # truth: portable
        self.vocab_size_ = len(set(X))
        return self


FACTORIES = {
    "TagVocabulary": lambda: TagVocabulary().fit([["a", "b"], ["b", "c"]]),
    "LabelIndex": lambda: LabelIndex().fit([[0], [1], [2]], ["x", "y", "x"]),
    "PriceTable": lambda: PriceTable().fit([[0.0]]),
    "CategoryEncoder": lambda: CategoryEncoder().fit(["a", "b", "a"]),
    "FrozenVocab": lambda: FrozenVocab().fit(["a", "b", "a"]),
}
