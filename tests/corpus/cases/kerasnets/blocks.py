"""Reusable blocks: registered, with configs, that other modules build on."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
from keras import layers

register = keras.saving.register_keras_serializable(package="kerasnets")


@register
class ScaledDense(layers.Layer):
    def __init__(self, units=4, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.scale = scale
        self.dense = layers.Dense(units)

    def call(self, x):
        return self.dense(x) * self.scale

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "scale": self.scale})
        return config


@keras.utils.register_keras_serializable(package="kerasnets")
class Residual(layers.Layer):
    """No get_config: the automatic config records the plain arguments it was built with."""

    def __init__(self, width=4, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.proj = layers.Dense(width)
        self.drop = layers.Dropout(dropout)

    def call(self, x):
        return x + self.drop(self.proj(x))


class GatedUnit(layers.Layer):  # truth: keras
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.value = layers.Dense(units)
        self.gate = layers.Dense(units, activation="sigmoid")

    def call(self, x):
        return self.value(x) * self.gate(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


FACTORIES = {
    "ScaledDense": lambda: ScaledDense(6, scale=0.5),
    "Residual": lambda: Residual(4, dropout=0.1),
    "GatedUnit": lambda: GatedUnit(3),
}
