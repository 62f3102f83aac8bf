"""Look-alikes that pickle: filtering __getstate__, weakref swaps, consumed generators, closed files."""
import os
import threading
import weakref

import lightning as L
import torch
from torch import nn
from torch.utils.data import Dataset


class FilteredState(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.lock = threading.Lock()
        self.trace_file = open(os.devnull, "w")
        self.step = 0

    def __getstate__(self):
        state = {}
        for key, value in self.__dict__.items():
            if key in ("lock", "trace_file"):
                continue
            state[key] = value
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.Lock()
        self.trace_file = open(os.devnull, "w")


class PrivateFilteredState(Dataset):
    def __init__(self):
        self.items = [1, 2, 3]
        self._lock = threading.RLock()
        self._log = open(os.devnull, "a")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._log = open(os.devnull, "a")

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class Vocab:
    def __init__(self):
        self.itos = ["<pad>", "a", "b"]


_SHARED_VOCAB = Vocab()


class WeakVocabDataset(Dataset):
    def __init__(self, vocab=_SHARED_VOCAB):
        self.vocab_ref = weakref.ref(vocab)
        self.items = [1, 2]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["vocab_ref"] = self.vocab_ref()
        return state

    def __setstate__(self, state):
        vocab = state.pop("vocab_ref")
        self.__dict__.update(state)
        self._vocab_keepalive = vocab
        self.vocab_ref = weakref.ref(vocab)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.vocab_ref().itos[self.items[i]]


class GeneratedStack(nn.Module):
    def __init__(self, depth=3, dim=8):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.widths = list(b.out_features for b in self.blocks)
        self.n_params = sum(p.numel() for p in self.parameters())
        self.extra = nn.ModuleList()
        self.extra.extend(nn.LayerNorm(dim) for _ in range(depth))
        self.names = tuple(name for name, _ in self.named_children())
        self.shapes = {name: tuple(p.shape) for name, p in self.named_parameters()}


class EagerTokens(Dataset):
    def __init__(self, text="a b c a"):
        self.tokens = list(tok for tok in text.split())
        self.total = sum(len(t) for t in self.tokens)
        self.vocab = sorted(set(self.tokens))
        self.ids = torch.tensor([self.vocab.index(t) for t in self.tokens])
        self.lookup = dict(zip(self.vocab, range(len(self.vocab))))

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        return self.ids[i]


class ClosedManifest(Dataset):
    def __init__(self, manifest=__file__):
        self.fh = open(manifest)
        self.lines = [line.rstrip("\n") for line in self.fh][:4]
        self.close()

    def close(self):
        if self.fh is not None:
            self.fh.close()
        self.fh = None

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]


class WeightedCE(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        self.metric_names = list(f"acc@{k}" for k in (1, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters())


class LightningWithLambdaMetric(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.metric = lambda logits, y: (logits.argmax(-1) == y).float().mean()  # truth: pickle

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("acc", self.metric(self.net(x), y))


NOT_BUILT = {"Vocab": "a plain helper class, not a model"}
