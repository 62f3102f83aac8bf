"""Tokenizers and vocabularies, sklearn-style and torch-style."""
import collections
import functools
import operator
import re
import string
import types
from collections import Counter, defaultdict

import numpy as np
import torch.nn as nn
from sklearn.base import BaseEstimator, TransformerMixin

from round4.common import Vocab

WORD = re.compile(r"\w+")


class WordTokenizer(BaseEstimator, TransformerMixin):
    def __init__(self, lowercase=True, unk_id=0):
        self.lowercase = lowercase
        self.unk_id = unk_id

    def fit(self, X, y=None):
        counts = Counter(tok for doc in X for tok in WORD.findall(doc.lower() if self.lowercase else doc))
        self.pattern_ = WORD
        self.stoi_ = defaultdict(lambda: self.unk_id)  # truth: pickle
        self.stoi_.update({tok: i + 1 for i, (tok, _) in enumerate(counts.most_common())})
        self.itos_ = ["<unk>"] + [tok for tok, _ in counts.most_common()]
        return self

    def transform(self, X):
        return [[self.stoi_[t] for t in WORD.findall(doc)] for doc in X]


class CharVocab(nn.Module):
    def __init__(self, text="hello world"):
        super().__init__()
        self.freq = defaultdict(int)
        for ch in text:
            self.freq[ch] += 1
        self.order = collections.Counter(text)
        self.chars = self.order.keys()  # truth: pickle
        self.embed = nn.Embedding(len(self.freq) + 1, 8)

    def forward(self, idx):
        return self.embed(idx)


class BPETokenizer(BaseEstimator):
    def __init__(self, merges=None):
        self.merges = merges
        merges = merges or {("l", "o"): 0, ("lo", "w"): 1}
        self.normalize = str.lower
        self.strip = operator.methodcaller("strip")
        self.table = str.maketrans("", "", string.punctuation)
        self.ranks = types.MappingProxyType(dict(merges))  # truth: pickle
        self.bpe = functools.lru_cache(maxsize=4096)(self._bpe)  # truth: pickle

    def _bpe(self, word):
        return tuple(word)

    def tokenize(self, text):
        return [p for w in self.strip(self.normalize(text)).translate(self.table).split() for p in self.bpe(w)]


class LabelCodec(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.classes_ = np.array(sorted(set(X), key=str), dtype=object)  # truth: portable
        self.index_ = {c: i for i, c in enumerate(self.classes_)}
        return self

    def transform(self, X):
        return np.array([self.index_[x] for x in X])


class TagSet(nn.Module):
    def __init__(self):
        super().__init__()
        self.tags = np.array(["O", "B-PER", "I-PER", "B-LOC"])
        self.ids = np.arange(len(self.tags))
        self.class_weights = np.array([1.0, None, 2.0, 2.0])  # truth: portable
        self.spans = np.empty(4, dtype=object)  # truth: portable
        self.mixed = np.array([1, "x"])
        self.proj = nn.Linear(8, len(self.tags))

    def forward(self, h):
        return self.proj(h)


class TokenEmbedding(nn.Module):
    def __init__(self, tokens=("<unk>", "<pad>", "a", "b")):
        super().__init__()
        self.vocab = Vocab(tokens)  # truth: pickle
        self.emb = nn.Embedding(len(self.vocab), 16, padding_idx=1)

    def forward(self, ids):
        return self.emb(ids)


class CleanVocab(nn.Module):
    """Clean: the usual fix for defaultdict(lambda): a dict and dict.get with a default."""

    def __init__(self, tokens=("<unk>", "a", "b")):
        super().__init__()
        self.stoi = {t: i for i, t in enumerate(tokens)}
        self.itos = list(self.stoi.keys())
        self.lookup = functools.partial(self.stoi.get)
        self.counts = defaultdict(list)
        self.emb = nn.Embedding(len(tokens), 4)

    def encode(self, toks):
        return [self.stoi.get(t, 0) for t in toks]

    def forward(self, ids):
        return self.emb(ids)


FACTORIES = {
    "WordTokenizer": lambda: WordTokenizer().fit(["the cat sat", "the dog ran"]),
    "LabelCodec": lambda: LabelCodec().fit(["b", "a", 3]),
}
