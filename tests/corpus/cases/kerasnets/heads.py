"""Heads and models built on blocks.py."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np

from .blocks import ScaledDense

register = keras.saving.register_keras_serializable(package="kerasnets")


@register
class TemperedDense(ScaledDense):  # truth: keras
    """Adds an argument its parent's config does not know."""

    def __init__(self, units=4, scale=1.0, temperature=1.0, **kwargs):
        super().__init__(units, scale, **kwargs)
        self.temperature = temperature

    def call(self, x):
        return super().call(x) / self.temperature


@register
class ShiftedDense(ScaledDense):
    """Adds an argument and gives it back."""

    def __init__(self, units=4, scale=1.0, shift=0.0, **kwargs):
        super().__init__(units, scale, **kwargs)
        self.shift = shift

    def call(self, x):
        return super().call(x) + self.shift

    def get_config(self):
        config = super().get_config()
        config["shift"] = self.shift
        return config


@register
class Classifier(keras.Model):  # truth: keras
    """A Model without get_config: its automatic config keeps only the defaults."""

    def __init__(self, num_classes=2, hidden=8, **kwargs):
        super().__init__(**kwargs)
        self.body = keras.layers.Dense(hidden, activation="relu")
        self.head = keras.layers.Dense(num_classes)

    def call(self, x):
        return self.head(self.body(x))


@register
class Regressor(keras.Model):
    """The same shape, built with its defaults: the automatic config is enough."""

    def __init__(self, hidden=8, **kwargs):
        super().__init__(**kwargs)
        self.body = keras.layers.Dense(hidden, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.body(x))


@register
class Embedder(keras.Model):
    def __init__(self, dim=3, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.dim = dim
        self.proj = keras.layers.Dense(dim)
        self.log = open(os.devnull, "w")  # a Python attribute Keras never serializes

    def call(self, x):
        return self.proj(x)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@register
class Bias(keras.layers.Layer):  # truth: keras
    """get_config hands back a numpy array: saved fine, load_model cannot rebuild it."""

    def __init__(self, bias=None, **kwargs):
        super().__init__(**kwargs)
        self.bias = np.zeros(4, "float32") if bias is None else np.asarray(bias, "float32")

    def call(self, x):
        return x + keras.ops.convert_to_tensor(self.bias)

    def get_config(self):
        return {**super().get_config(), "bias": self.bias}


@register
class ListBias(keras.layers.Layer):
    """The same bias as a list: JSON holds it."""

    def __init__(self, bias=(0.0, 0.0, 0.0, 0.0), **kwargs):
        super().__init__(**kwargs)
        self.bias = [float(b) for b in bias]

    def call(self, x):
        return x + keras.ops.convert_to_tensor(self.bias)

    def get_config(self):
        return {**super().get_config(), "bias": list(self.bias)}


@register
class Wrapped(keras.layers.Layer):  # truth: keras
    """get_config returns the inner layer itself."""

    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner or keras.layers.Dense(2)

    def call(self, x):
        return self.inner(x)

    def get_config(self):
        return {**super().get_config(), "inner": self.inner}


@register
class SerializedWrapped(keras.layers.Layer):
    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner or keras.layers.Dense(2)

    def call(self, x):
        return self.inner(x)

    def get_config(self):
        return {**super().get_config(), "inner": keras.layers.serialize(self.inner)}

    @classmethod
    def from_config(cls, config):
        config["inner"] = keras.layers.deserialize(config["inner"])
        return cls(**config)


@register
class Clip(keras.layers.Layer):  # truth: keras
    """No **kwargs: the base config's name/trainable/dtype cannot be passed back."""

    def __init__(self, limit=1.0):
        super().__init__()
        self.limit = limit

    def call(self, x):
        return keras.ops.clip(x, -self.limit, self.limit)

    def get_config(self):
        config = super().get_config()
        config.update({"limit": self.limit})
        return config


@register
class PlainConfig(keras.layers.Layer):
    """No **kwargs, but its get_config does not call super's: nothing extra comes back."""

    def __init__(self, factor=2.0):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {"factor": self.factor}


@register
class ForgetfulScale(keras.layers.Layer):  # truth: keras
    """Forgets an argument that changes the computation: loads with other outputs."""

    def __init__(self, factor=1.0, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.offset = offset

    def call(self, x):
        return x * self.factor + self.offset

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register
class DefaultOffset(keras.layers.Layer):
    """Forgets an argument, but it is always left at its default."""

    def __init__(self, factor=1.0, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.offset = offset

    def call(self, x):
        return x * self.factor + self.offset

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class LocalOnly(keras.layers.Layer):  # truth: keras
    """Not registered; only ever used inside Pipeline, yet a load of it alone fails."""

    def call(self, x):
        return x * 2.0


@register
class Pipeline(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.twice = LocalOnly()
        self.proj = keras.layers.Dense(2)

    def call(self, x):
        return self.proj(self.twice(x))


class LoadedWithCustomObjects(keras.layers.Layer):
    """Not registered, but handed to load_model through custom_objects below."""

    def __init__(self, factor=3.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def load(path):
    return keras.models.load_model(path, custom_objects={"LoadedWithCustomObjects": LoadedWithCustomObjects})


FACTORIES = {
    "TemperedDense": lambda: TemperedDense(4, 1.0, temperature=2.0),
    "ShiftedDense": lambda: ShiftedDense(4, shift=1.5),
    "Classifier": lambda: Classifier(num_classes=3),
    "Embedder": lambda: Embedder(5),
    "Bias": lambda: Bias(np.arange(4)),
    "Clip": lambda: Clip(0.5),
    "ForgetfulScale": lambda: ForgetfulScale(2.0, offset=1.0),
    "DefaultOffset": lambda: DefaultOffset(3.0),
}

NOT_BUILT = {
    "LoadedWithCustomObjects": "load() hands it to load_model through custom_objects",
}
