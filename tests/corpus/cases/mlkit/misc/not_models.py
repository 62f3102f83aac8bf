"""Classes that are never checkpointed: plain helpers and Keras models."""

import os
import sqlite3
import threading

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
from keras import layers

from mlkit.misc.registry import Dataset, Module


class DataModule:
    """Not Lightning: wires datasets to the CLI."""

    def __init__(self):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(":memory:")


class DownloadPlugin(Module):
    commands = ("download",)

    def __init__(self):
        super().__init__()
        self.log = open(os.devnull, "a")
        self.on_done = lambda: None


class WikiText(Dataset):
    """A registry entry that keeps its local copy open."""

    def __init__(self):
        super().__init__("wikitext", "https://example.org/wikitext")
        self.local = open(os.devnull)


class RunTracker:
    def __init__(self):
        self.fh = open(os.devnull, "w")
        self.keys = {}.keys()
        self.stream = (i for i in range(3))


class KerasTextClassifier(keras.Model):  # truth: keras
    def __init__(self):
        super().__init__()
        self.embed = layers.Embedding(100, 8)
        self.out = layers.Dense(2)
        self.debug = open(os.devnull, "w")
        self.post = lambda logits: logits

    def call(self, x):
        return self.post(self.out(keras.ops.mean(self.embed(x), axis=1)))


class KerasGate(layers.Layer):  # truth: keras
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.activation = lambda t: t

    def call(self, x):
        return self.activation(x)


class KerasResidual(keras.layers.Layer):  # truth: keras
    def __init__(self, units=4):
        super().__init__()
        self.dense = keras.layers.Dense(units)
        self.trace = open(os.devnull, "w")

    def call(self, x):
        return x + self.dense(x)


NOT_BUILT = {
    "DataModule": "plain class named like Lightning's; out of scope, does not pickle",
    "DownloadPlugin": "subclass of a project class named Module (not torch); does not pickle",
    "WikiText": "subclass of a project class named Dataset (not torch); does not pickle",
    "RunTracker": "plain class; out of scope, does not pickle",
}
