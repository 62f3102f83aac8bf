"""Feature tables and label maps that end up as numpy arrays."""
import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
from numpy import array, asarray
import torch
from torch.utils.data import Dataset


class TagDataset(Dataset):
    def __init__(self):
        tags = {"cat", "dog", "bird"}
        self.tag_set = np.array(tags)  # truth: portable
        self.tag_list = np.array(sorted(tags))
        self.n = len(tags)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.tag_list[i]


class VocabDataset(Dataset):
    def __init__(self):
        self.vocab = {"<pad>": 0, "<unk>": 1, "the": 2}
        self.words = array(self.vocab.keys())  # truth: pickle
        self.ids = array(list(self.vocab.values()))

    def __len__(self):
        return len(self.vocab)

    def __getitem__(self, i):
        return self.ids[i]


class CountsDataset(Dataset):
    def __init__(self):
        counts = {"a": 3, "b": 5}
        self.freq = np.asarray(counts.values())  # truth: pickle
        self.freq_sorted = np.asarray(sorted(counts.values()), dtype=np.int64)

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.freq_sorted[i]


class StreamedFeatures(Dataset):
    def __init__(self):
        raw = [1.5, 2.5, 3.5]
        self.squares = np.array(v * v for v in raw)  # truth: pickle
        self.cubes = np.fromiter((v ** 3 for v in raw), dtype=np.float32)

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.cubes[i]


class MappedFeatures(Dataset):
    def __init__(self):
        raw = ["1", "2", "3"]
        self.as_ints = np.array(map(int, raw))  # truth: portable
        self.pairs = np.array(zip(raw, raw))  # truth: portable
        self.int_list = np.array(list(map(int, raw)))
        self.pair_list = np.array(list(zip(range(3), range(3))))

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.int_list[i]


class SparseScores(Dataset):
    def __init__(self):
        scores = [0.1, None, 0.7]
        self.scores = np.array(scores)  # truth: portable
        self.filled = np.array([s if s is not None else np.nan for s in scores])

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.filled[i]


class EventLog(Dataset):
    def __init__(self):
        days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
        self.days = np.array(days)  # truth: portable
        self.day64 = np.array([d.isoformat() for d in days], dtype="datetime64[D]")
        self.stamps = np.array([dt.datetime(2024, 1, 1, h) for h in range(2)])  # truth: portable

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.day64[i].astype(np.int64)


class ImageFolderIndex(Dataset):
    def __init__(self, root="."):
        files = [Path(root) / f"img_{i}.png" for i in range(3)]
        self.paths = np.array(files)  # truth: portable
        self.names = np.array([str(f) for f in files])

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return self.names[i]


class LedgerTable:
    """Has __reduce__, so it is checked; __reduce__ keeps every field."""

    def __init__(self):
        self.amounts = asarray([Decimal("1.10"), Decimal("2.25")])  # truth: portable
        self.cents = asarray([110, 225], dtype=np.int64)

    def __reduce__(self):
        return (_rebuild_ledger, (self.amounts, self.cents))


def _rebuild_ledger(amounts, cents):
    obj = LedgerTable.__new__(LedgerTable)
    obj.amounts, obj.cents = amounts, cents
    return obj


class HashBuckets(Dataset):
    def __init__(self):
        self.seeds = np.array([2 ** 64 + 1, 7])  # truth: portable
        self.small = np.array([2 ** 62, 7])
        self.masks = np.array([(1 << 63) - 1, 1])

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return int(self.small[i])


class VariableLengthTokens(Dataset):
    def __init__(self):
        seqs = [[1, 2, 3], [4, 5], [6]]
        self.seqs = np.array(seqs, dtype=object)  # truth: portable
        self.lengths = np.array([len(s) for s in seqs])
        width = max(self.lengths)
        self.padded = np.array([s + [0] * (width - len(s)) for s in seqs])

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return torch.as_tensor(self.padded[i])


class LabelNames(Dataset):
    def __init__(self):
        self.names = np.array(["neg", "pos", None])  # truth: portable
        self.codes = np.array(["neg", "pos", "unk"])
        self.flags = np.array([True, False, None])  # truth: portable
        self.mixed = np.array(["a", 1, 2.0])

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.codes[i]


class CallbackTable(Dataset):
    def __init__(self):
        self.transforms = np.array([lambda x: x, lambda x: -x])  # truth: pickle
        self.weights = np.array([1.0, -1.0])

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.weights[i]
