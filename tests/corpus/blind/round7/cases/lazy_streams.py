"""Generators consumed on the spot, and generators kept."""
import itertools
import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset, Dataset
import lightning.pytorch as pl


def make_blocks(n, width):
    for _ in range(n):
        yield nn.Linear(width, width)


def read_lines(text):
    for line in text.splitlines():
        yield line.strip()


class StackedMLP(nn.Module):
    """Clean: generators fed straight into containers."""

    def __init__(self, depth=3, width=8):
        super().__init__()
        self.blocks = nn.ModuleList(make_blocks(depth, width))
        self.extra = nn.ModuleList()
        self.extra.extend(nn.Linear(width, width) for _ in range(2))
        self.seq = nn.Sequential(*(nn.Identity() for _ in range(2)))
        self.n_params = sum(p.numel() for p in self.parameters())
        self.widths = tuple(b.out_features for b in self.blocks)


class VocabBuilder(Dataset):
    """Clean: dict / sorted / set / join / fromiter consume the generators."""

    def __init__(self, text="b a\nc a"):
        self.tokens = sorted(tok for line in read_lines(text) for tok in line.split())
        self.index = dict((tok, i) for i, tok in enumerate(self.tokens))
        self.unique = set(t for t in self.tokens)
        self.joined = " ".join(t for t in self.tokens)
        self.longest = max(len(t) for t in self.tokens)
        self.lengths = np.fromiter((len(t) for t in self.tokens), dtype=np.int64)
        self.ids = torch.tensor(list(self.index[t] for t in self.tokens))

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        return self.ids[i]


class LineStream(IterableDataset):
    def __init__(self, text="a\nb"):
        self.lines = read_lines(text)  # truth: pickle

    def __iter__(self):
        return self.lines


class LineStreamLazy(IterableDataset):
    """Clean: stores the text, builds the generator per epoch."""

    def __init__(self, text="a\nb"):
        self.text = text

    def __iter__(self):
        return read_lines(self.text)


class ShuffledPairs(IterableDataset):
    def __init__(self):
        data = list(range(6))
        random.shuffle(data)
        self.pairs = zip((x for x in data), data[1:])  # truth: pickle
        self.numbered = enumerate(read_lines("x\ny"))  # truth: pickle
        self.head = itertools.islice((d * 2 for d in data), 3)  # truth: pickle
        self.cycle = itertools.cycle(data)
        self.chain = itertools.chain(data, data)

    def __iter__(self):
        return iter(self.pairs)


class NoiseSchedule(nn.Module):
    def __init__(self, steps=10):
        super().__init__()
        self.proj = nn.Linear(2, 2)
        betas = (0.1 * (i + 1) / steps for i in range(steps))
        self.betas = betas  # truth: pickle
        self.alphas = [1 - b for b in (0.1 * (i + 1) / steps for i in range(steps))]


class CurriculumModule(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 2)
        self.stages = self._stages()  # truth: pickle
        self.stage_list = list(self._stages())

    def _stages(self):
        yield "easy"
        yield "hard"

    def training_step(self, batch, idx):
        return self.net(batch).sum()


class FilteredRecords(Dataset):
    def __init__(self):
        rows = [1, 0, 3]
        self.valid = filter(None, (r for r in rows))  # truth: pickle
        self.valid_list = list(filter(None, rows))
        self.kept = [r for r in rows if r]

    def __len__(self):
        return len(self.kept)

    def __getitem__(self, i):
        return self.kept[i]


class DataModuleWithIter(pl.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.batch_size = 4
        self.folds = (k for k in range(5))  # truth: pickle
        self.fold_ids = tuple(k for k in range(5))
