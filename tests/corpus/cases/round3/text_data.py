"""Tokenizers and text datasets (DataLoader workers get a pickled copy under spawn)."""
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import unicodedata
from collections import Counter, OrderedDict
from functools import partial
from pathlib import Path

import lmdb
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from round3.common import TokenizerBase, scratch_dir

WORD_RE = re.compile(r"\w+|[^\w\s]")


def _corpus_file(lines=("hello world", "good bye")):
    path = os.path.join(tempfile.mkdtemp(), "corpus.txt")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path


def _csv_file():
    path = os.path.join(tempfile.mkdtemp(), "pairs.csv")
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["src", "tgt"], ["a", "b"]])
    return path


class WordPieceVocab(TokenizerBase, Dataset):
    """Clean: compiled regex, a bound findall, a Counter, a partial of unicodedata."""

    def __init__(self, path=None):
        super().__init__(lowercase=True)
        self.path = Path(path or _corpus_file())
        self.pattern = WORD_RE
        self.split = WORD_RE.findall
        self.normalize_fn = partial(unicodedata.normalize, "NFKC")
        self.counts = Counter(self.split(self.path.read_text()))
        self.itos = ["[PAD]", "[UNK]"] + sorted(self.counts)
        self.stoi = OrderedDict((t, i) for i, t in enumerate(self.itos))
        self.strip_accents = str.maketrans("éè", "ee")

    def __len__(self):
        return len(self.itos)

    def __getitem__(self, i):
        return self.itos[i]


class StreamingTextDataset(IterableDataset):
    def __init__(self, path=None):
        self.path = path or _corpus_file()
        self.handle = open(self.path, encoding="utf-8")  # truth: pickle
        self.line_iter = map(str.strip, self.handle)  # truth: pickle

    def __iter__(self):
        for line in self.line_iter:
            yield line


class LineDataset(Dataset):
    """Clean: the lines are read inside `with`; the handle is closed and dropped."""

    def __init__(self, path=None):
        self.path = path or _corpus_file()
        fh = open(self.path)
        self.lines = fh.read().splitlines()
        fh.close()
        self.offsets = np.cumsum([0] + [len(x) + 1 for x in self.lines])
        self.tmp = None

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]


class LmdbTokenCache(Dataset):
    def __init__(self, root=None):
        self.root = root or scratch_dir()
        self.env = lmdb.open(self.root, map_size=1 << 20, subdir=True)  # truth: pickle
        with self.env.begin(write=True) as txn:
            txn.put(b"0", b"hello")
        self.txn = self.env.begin()  # truth: pickle
        self.length = 1

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return self.txn.get(str(i).encode())


class LazyLmdbDataset(Dataset):
    """Clean: the environment is opened on first access in each worker."""

    def __init__(self, root=None):
        self.root = root or scratch_dir()
        self.env = None
        self.keys = [b"0"]

    def _open(self):
        self.env = lmdb.open(self.root, readonly=True, lock=False)

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        if self.env is None:
            self._open()
        with self.env.begin() as txn:
            return txn.get(self.keys[i])


class ParallelCorpus(Dataset):
    def __init__(self, path=None):
        self.path = path or _csv_file()
        self._fh = open(self.path, newline="")  # truth: pickle
        self.rows = csv.DictReader(self._fh)  # truth: pickle
        self.fingerprint = hashlib.sha1(self.path.encode()).hexdigest()
        self.dedup = hashlib.md5()  # truth: pickle

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return next(self.rows)


class JsonlDataset(Dataset):
    def __init__(self, records=({"text": "a"}, {"text": "b"})):
        buf = io.BytesIO()
        for r in records:
            buf.write((json.dumps(r) + "\n").encode())
        self.buffer = buf
        self.decoder = json.JSONDecoder()  # truth: pickle
        self.encoder = json.JSONEncoder(sort_keys=True)
        self.texts = np.array([r["text"] for r in records])
        self.raw = np.array(list(records))  # truth: portable

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        return self.texts[i]


class BucketBatchSampler(Sampler):
    """Clean: length-bucketed batches from a seeded generator."""

    def __init__(self, lengths=(3, 1, 2, 5), batch_size=2):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(0)
        self.buckets = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)

    def __iter__(self):
        for i in range(0, len(self.buckets), self.batch_size):
            yield self.buckets[i : i + self.batch_size]

    def __len__(self):
        return (len(self.buckets) + self.batch_size - 1) // self.batch_size
