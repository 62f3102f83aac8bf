"""Text datasets."""

from collections import defaultdict

import torch
from torch.utils.data import Dataset as TorchDataset

from mlkit.data.io_utils import UNK, connect, load_vocab, make_logger, open_index
from mlkit.data.vocab_io import VocabFile

MAX_LEN = 16


class TokenizedCorpus(TorchDataset):
    """Sentences to id tensors; unknown words map to <unk>."""

    def __init__(self, sentences=("the cat", "a dog")):
        self.sentences = list(sentences)
        self.vocab = load_vocab()
        self.stoi = defaultdict(lambda: self.vocab[UNK])  # truth: pickle
        self.stoi.update(self.vocab)
        self.itos = list(self.vocab)
        self.log = make_logger("tokenized")

    def __len__(self):
        return len(self.sentences)

    def __getitem__(self, i):
        ids = [self.stoi[w] for w in self.sentences[i].split()][:MAX_LEN]
        return torch.tensor(ids)


class CountingCorpus(TorchDataset):
    """Clean: defaultdict with a named factory pickles."""

    def __init__(self, sentences=("a b", "b c")):
        self.sentences = list(sentences)
        self.freq = defaultdict(int)
        for s in self.sentences:
            for w in s.split():
                self.freq[w] += 1
        self.by_length = defaultdict(list)

    def __len__(self):
        return len(self.sentences)

    def __getitem__(self, i):
        return self.sentences[i]


class LmdbTextDataset(TorchDataset):
    def __init__(self, path=None):
        self.env = open_index(path)  # truth: pickle
        self.txn = self.env.begin()  # truth: pickle
        self.length = self.env.stat()["entries"]

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return self.txn.get(str(i).encode())


class SqliteCorpus(TorchDataset):
    def __init__(self):
        self.conn = connect()  # truth: pickle
        self.cursor = self.conn.cursor()  # truth: pickle
        self.ids = [row[0] for row in self.cursor.execute("select id from docs").fetchall()]
        self.first = self.conn.execute("select text from docs").fetchone()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.cursor.execute("select text from docs where id = ?", (self.ids[i],)).fetchone()


class VocabSubset(TorchDataset):
    """Restricts a corpus to words of a vocabulary."""

    def __init__(self, vocab=None):
        self.vocab = vocab or load_vocab()
        self.allowed = self.vocab.keys()  # truth: pickle
        self.sorted_words = sorted(self.vocab)
        self.pairs = list(self.vocab.items())

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


class FileVocabDataset(TorchDataset):
    def __init__(self):
        self.vocab_file = VocabFile()  # truth: pickle
        self.tokens = self.vocab_file.tokens()

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        return self.tokens[i]
