"""Custom preprocessing / feature layers shared by the tabular and the sequence models."""
import numpy as np
import keras as K
from keras import layers, ops
from keras.saving import register_keras_serializable


class ClipAndScale(layers.Layer):  # truth: keras
    def __init__(self, low=-3.0, high=3.0, scale=0.5, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high, self.scale = low, high, scale

    def call(self, x):
        return ops.clip(x, self.low, self.high) * self.scale

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high, "scale": self.scale}


@register_keras_serializable(package="features")
class Affine(layers.Layer):
    """No get_config: the constructor takes plain numbers only."""

    def __init__(self, shift=0.0, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.shift = shift
        self.factor = factor

    def call(self, x):
        return (x + self.shift) * self.factor


@register_keras_serializable(package="features")
class ProjectTo(layers.Layer):
    """No get_config; weights made in build() from an int argument."""

    def __init__(self, units, activation="linear", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = K.activations.get(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, x):
        return self.activation(ops.matmul(x, self.kernel) + self.bias)


@register_keras_serializable(package="features")
class PickColumns(layers.Layer):
    """No get_config; a list of ints."""

    def __init__(self, columns=(0,), **kwargs):
        super().__init__(**kwargs)
        self.columns = list(columns)

    def call(self, x):
        return ops.take(x, self.columns, axis=-1)


@register_keras_serializable(package="features")
class ColumnWeights(layers.Layer):  # truth: keras
    """No get_config, and the constructor takes a numpy array of per-column weights."""

    def __init__(self, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.col_weights = np.asarray(weights if weights is not None else [1.0], "float32")

    def call(self, x):
        return x * self.col_weights


@register_keras_serializable(package="features")
class ActivationGate(layers.Layer):  # truth: keras
    """No get_config; the activation comes in as a keras function object."""

    def __init__(self, fn=K.activations.relu, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, x):
        return self.fn(x) * x


@register_keras_serializable(package="features")
class LookupByName(layers.Layer):
    """No get_config; a dict of column name -> index."""

    def __init__(self, index=None, **kwargs):
        super().__init__(**kwargs)
        self.index = dict(index or {"a": 0})

    def call(self, x):
        return ops.take(x, sorted(self.index.values()), axis=-1)


@register_keras_serializable(package="features")
class Standardize(layers.Layer):  # truth: keras
    """A bare __init__: no arguments, no **kwargs."""

    def __init__(self):
        super().__init__()

    def call(self, x):
        mean = ops.mean(x, axis=-1, keepdims=True)
        return x - mean


@register_keras_serializable(package="features")
class Square(layers.Layer):
    """No __init__ at all."""

    def call(self, x):
        return ops.square(x)


@register_keras_serializable(package="features")
class GatedDense(layers.Layer):
    """__init__ has no **kwargs, but get_config returns only its own arguments (no super())."""

    def __init__(self, units=4, use_gate=True):
        super().__init__()
        self.units = units
        self.use_gate = use_gate

    def build(self, input_shape):
        self.proj = layers.Dense(self.units)
        self.gate = layers.Dense(self.units, activation="sigmoid")

    def call(self, x):
        h = self.proj(x)
        return h * self.gate(x) if self.use_gate else h

    def get_config(self):
        return {"units": self.units, "use_gate": self.use_gate}


@register_keras_serializable(package="features")
class StrictGate(layers.Layer):  # truth: keras
    """__init__ has no **kwargs and get_config starts from super().get_config()."""

    def __init__(self, units=4):
        super().__init__()
        self.units = units
        self.gate = layers.Dense(units, activation="sigmoid")

    def call(self, x):
        return self.gate(x)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@register_keras_serializable(package="features")
class BottleneckDense(layers.Layer):  # truth: keras
    """get_config forgets `bottleneck`, which sizes a weight."""

    def __init__(self, units=4, bottleneck=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.bottleneck = bottleneck

    def build(self, input_shape):
        self.down = self.add_weight(shape=(input_shape[-1], self.bottleneck), initializer="glorot_uniform")
        self.up = self.add_weight(shape=(self.bottleneck, self.units), initializer="glorot_uniform")

    def call(self, x):
        return ops.matmul(ops.matmul(x, self.down), self.up)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config


@register_keras_serializable(package="features")
class ScaledResidual(layers.Layer):
    """get_config forgets `alpha`, but the model code never changes it."""

    def __init__(self, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, x):
        return x + self.alpha * ops.tanh(x)

    def get_config(self):
        return super().get_config()


@register_keras_serializable(package="features")
class LeakyShift(layers.Layer):  # truth: keras
    """get_config only calls super(): `slope` is dropped and the layer was built with another slope."""

    def __init__(self, slope=0.2, **kwargs):
        super().__init__(**kwargs)
        self.slope = slope

    def call(self, x):
        return ops.where(x > 0, x, self.slope * x)

    def get_config(self):
        base_config = super().get_config()
        return base_config


@register_keras_serializable(package="features")
class NoisyFeatures(layers.Layer):
    """Complete get_config; a seed generator created in __init__."""

    def __init__(self, stddev=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed = seed
        self.seed_gen = K.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if training:
            return x + K.random.normal(ops.shape(x), stddev=self.stddev, seed=self.seed_gen)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config


FACTORIES = {
    "ClipAndScale": lambda: ClipAndScale(low=-1.0, high=1.0, scale=2.0),
    "Affine": lambda: Affine(shift=0.5, factor=3.0),
    "ProjectTo": lambda: ProjectTo(7, activation="relu"),
    "PickColumns": lambda: PickColumns(columns=[0, 2, 3]),
    "ColumnWeights": lambda: ColumnWeights(np.array([0.5, 1.0, 2.0, 4.0])),
    "ActivationGate": lambda: ActivationGate(fn=K.activations.sigmoid),
    "LookupByName": lambda: LookupByName({"age": 1, "income": 3}),
    "GatedDense": lambda: GatedDense(units=6),
    "StrictGate": lambda: StrictGate(units=3),
    "BottleneckDense": lambda: BottleneckDense(units=4, bottleneck=3),
    "LeakyShift": lambda: LeakyShift(slope=0.5),
    "NoisyFeatures": lambda: NoisyFeatures(stddev=0.2, seed=7),
}
SAMPLES = {
    "LeakyShift": np.array([[-1.0, 2.0, -3.0, 4.0], [0.5, -0.5, 1.0, -2.0]], "float32"),
    "ClipAndScale": np.array([[-2.0, 0.5, 3.0, 0.1], [1.0, -0.5, 0.2, 2.0]], "float32"),
}
