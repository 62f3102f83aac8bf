"""Layers whose configuration carries objects: sub-layers, arrays, functions, paths."""
from pathlib import Path

import numpy as np
import keras
from keras import layers


def soft_clip(x):
    return keras.ops.tanh(x) * 3.0


@keras.saving.register_keras_serializable(package="cfgobj")
class WrapLayer(layers.Layer):  # truth: keras
    """get_config returns the wrapped layer object itself, and there is no from_config."""

    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner if inner is not None else layers.Dense(4)

    def call(self, x):
        return self.inner(x) + x

    def get_config(self):
        config = super().get_config()
        config["inner"] = self.inner
        return config


@keras.saving.register_keras_serializable(package="cfgobj")
class WrapLayerFixed(layers.Layer):
    """The same, serialised with keras.layers.serialize and rebuilt in from_config."""

    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner if inner is not None else layers.Dense(4)

    def call(self, x):
        return self.inner(x) + x

    def get_config(self):
        config = super().get_config()
        config["inner"] = keras.layers.serialize(self.inner)
        return config

    @classmethod
    def from_config(cls, config):
        config["inner"] = keras.layers.deserialize(config["inner"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="cfgobj")
class BlockStack(layers.Layer):
    """A list of sub-layers, rebuilt with keras.saving.deserialize_keras_object."""

    def __init__(self, blocks=None, **kwargs):
        super().__init__(**kwargs)
        self.blocks = blocks or [layers.Dense(4, activation="relu"), layers.Dense(4)]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def get_config(self):
        return {**super().get_config(),
                "blocks": [keras.saving.serialize_keras_object(b) for b in self.blocks]}

    @classmethod
    def from_config(cls, config):
        blocks = [keras.saving.deserialize_keras_object(b) for b in config.pop("blocks")]
        return cls(blocks=blocks, **config)


@keras.saving.register_keras_serializable(package="cfgobj")
class Rescale(layers.Layer):  # truth: keras
    """get_config hands back the numpy array it was given."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, "float32")
        self.std = np.asarray(std, "float32")

    def call(self, x):
        return (x - self.mean) / self.std

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std})
        return config


@keras.saving.register_keras_serializable(package="cfgobj")
class RescaleListed(layers.Layer):
    """The usual fix: .tolist() in get_config, np.asarray in __init__."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, "float32")
        self.std = np.asarray(std, "float32")

    def call(self, x):
        return (x - self.mean) / self.std

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean.tolist(), "std": self.std.tolist()})
        return config


@keras.saving.register_keras_serializable(package="cfgobj")
class CustomActivation(layers.Layer):  # truth: keras
    """get_config returns a project function (not a keras one)."""

    def __init__(self, fn=None, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn or soft_clip

    def call(self, x):
        return self.fn(x)

    def get_config(self):
        return {**super().get_config(), "fn": self.fn}


@keras.saving.register_keras_serializable(package="cfgobj")
class KerasActivation(layers.Layer):
    """get_config returns keras.activations.serialize(...) and __init__ runs activations.get."""

    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)

    def call(self, x):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="cfgobj")
class InitializedDense(layers.Layer):
    """get_config returns the initializer object; __init__ passes it through initializers.get."""

    def __init__(self, units=3, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer=self.kernel_initializer)

    def call(self, x):
        return keras.ops.matmul(x, self.w)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kernel_initializer": self.kernel_initializer}


@keras.saving.register_keras_serializable(package="cfgobj")
class VocabPath(layers.Layer):  # truth: keras
    """get_config returns a pathlib.Path (the layer only keeps it for bookkeeping)."""

    def __init__(self, vocab_file=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_file = Path(vocab_file) if vocab_file else None

    def call(self, x):
        return x * 2.0

    def get_config(self):
        return {**super().get_config(), "vocab_file": self.vocab_file}


FACTORIES = {
    "WrapLayer": lambda: WrapLayer(layers.Dense(4, activation="relu")),
    "WrapLayerFixed": lambda: WrapLayerFixed(layers.Dense(4, activation="relu")),
    "BlockStack": lambda: BlockStack([layers.Dense(5), layers.Dense(4, activation="tanh")]),
    "Rescale": lambda: Rescale([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]),
    "RescaleListed": lambda: RescaleListed([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]),
    "CustomActivation": lambda: CustomActivation(soft_clip),
    "KerasActivation": lambda: KerasActivation("gelu"),
    "InitializedDense": lambda: InitializedDense(units=5, kernel_initializer=keras.initializers.HeNormal(seed=1)),
    "VocabPath": lambda: VocabPath("/tmp/vocab.txt"),
}
