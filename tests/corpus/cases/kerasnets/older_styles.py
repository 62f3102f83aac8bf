"""Configs written the older ways: dict(list(...) + list(...)), update(k=v), a layer of this module."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np

reg = keras.saving.register_keras_serializable(package="kerasnets")


@reg
class OldStyle(keras.layers.Layer):  # truth: keras
    def __init__(self, units=3, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.scale = scale
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x) * self.scale

    def get_config(self):
        config = {"units": self.units}
        base_config = super().get_config()
        return dict(list(base_config.items()) + list(config.items()))


@reg
class Block(keras.layers.Layer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@reg
class Head(keras.Model):  # truth: keras
    def __init__(self, backbone=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone or Block(2)
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.backbone(x))

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


class UnregChild(Block):  # truth: keras
    pass


@reg
class NoArgs(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)
        self.cache = {}

    def call(self, x):
        return self.dense(x)


@reg
class Gate(keras.layers.Layer):  # truth: keras
    def __init__(self, units, activation="sigmoid", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.proj = keras.layers.Dense(units, activation=activation)

    def call(self, x):
        return self.proj(x)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


@reg
class Mixer(keras.Model):
    def __init__(self, hidden=4, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(hidden)
        self.drop = keras.layers.Dropout(dropout)

    def call(self, x):
        return self.drop(self.dense(x))


@reg
class Projector(keras.layers.Layer):  # truth: keras
    def __init__(self, matrix=None, **kwargs):
        super().__init__(**kwargs)
        self.matrix = np.eye(4, dtype="float32") if matrix is None else np.asarray(matrix, "float32")

    def call(self, x):
        return keras.ops.matmul(x, keras.ops.convert_to_tensor(self.matrix))

    def get_config(self):
        return {**super().get_config(), "matrix": self.matrix}


FACTORIES = {
    "OldStyle": lambda: OldStyle(5, scale=2.0),
    "Head": lambda: Head(backbone=Block(3)),
    "Gate": lambda: Gate(3, activation="tanh"),
    "Mixer": lambda: Mixer(hidden=4, dropout=0.5),
    "Projector": lambda: Projector(np.full((4, 4), 0.5)),
}
