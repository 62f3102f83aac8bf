"""Blocks and towers for the sequence model: a project base layer, its subclasses, and models made of them."""
import keras
from keras import layers
from keras.saving import register_keras_serializable as register

PKG = "seqblocks"


@register(package=PKG)
class DenseBlock(layers.Layer):
    """The project's base block."""

    def __init__(self, units=8, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation
        self.dense = layers.Dense(units, activation=activation)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "activation": self.activation})
        return config


@register(package=PKG)
class NormedBlock(DenseBlock):  # truth: keras
    """Adds `epsilon` to __init__ and leaves DenseBlock.get_config as it is."""

    def __init__(self, units=8, activation="relu", epsilon=1e-3, **kwargs):
        super().__init__(units=units, activation=activation, **kwargs)
        self.epsilon = epsilon
        self.norm = layers.LayerNormalization(epsilon=epsilon)

    def call(self, x):
        return self.norm(super().call(x))


@register(package=PKG)
class DropBlock(DenseBlock):
    """Adds `rate` and extends get_config."""

    def __init__(self, units=8, activation="relu", rate=0.1, **kwargs):
        super().__init__(units=units, activation=activation, **kwargs)
        self.rate = rate
        self.drop = layers.Dropout(rate)

    def call(self, x, training=False):
        return self.drop(super().call(x), training=training)

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config


class ExperimentBlock(DenseBlock):  # truth: keras
    """Inherits a registered base and its config, but is not registered itself."""

    def call(self, x):
        return super().call(x) * 0.5


@register(package=PKG)
class WidthBlock(DenseBlock):  # truth: keras
    """Adds `expansion`, which sizes the dense layer, without extending get_config."""

    def __init__(self, units=8, expansion=2, **kwargs):
        super().__init__(units=units * expansion, **kwargs)
        self.expansion = expansion


class PositionMix(layers.Layer):  # truth: keras
    """A helper layer used only inside SequenceRegressor; never registered."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.mix = layers.Dense(units)

    def call(self, x):
        return x + self.mix(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@register(package=PKG)
class SequenceRegressor(keras.Model):
    """Registered model that builds the unregistered PositionMix in __init__."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.mix = PositionMix(units)
        self.tower = keras.Sequential([DenseBlock(units), layers.Dense(1)])

    def call(self, x):
        return self.tower(self.mix(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@register(package=PKG)
class StackedBlocks(keras.Model):
    def __init__(self, sizes=(8, 4), **kwargs):
        super().__init__(**kwargs)
        self.sizes = list(sizes)
        self.blocks = [DropBlock(s, rate=0.2) for s in self.sizes]
        self.out = layers.Dense(1)

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x, training=training)
        return self.out(x)

    def get_config(self):
        config = super().get_config()
        config.update(sizes=self.sizes)
        return config


class BlockTower(keras.Sequential):  # truth: keras
    """A Sequential subclass that fills itself in __init__; not registered."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.add(keras.Input(shape=(4,)))
        self.add(DenseBlock(units))
        self.add(layers.Dense(1))


@register(package=PKG)
class RegisteredTower(keras.Sequential):
    """Registered Sequential subclass that only forwards the layer list it is given."""

    def __init__(self, layers=None, **kwargs):
        super().__init__(layers=layers, **kwargs)


@register(package=PKG)
class SelfBuildingTower(keras.Sequential):  # truth: keras
    """Registered Sequential subclass that adds its own layers in __init__ (the usual way)."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.add(DenseBlock(units))
        self.add(layers.Dense(1))


@register(package=PKG)
class FunctionalScorer(keras.Model):  # truth: keras
    """Registered subclass that builds itself with the functional API from registered blocks; no get_config,
    and the caller picks a non-default width."""

    def __init__(self, units=6, **kwargs):
        inputs = keras.Input(shape=(4,))
        h = DenseBlock(units)(inputs)
        h = DropBlock(units, rate=0.1)(h)
        outputs = layers.Dense(1)(h)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.units = units


@register(package=PKG)
class FunctionalConfigured(keras.Model):
    """FunctionalScorer with a get_config that extends the functional one."""

    def __init__(self, units=6, **kwargs):
        inputs = keras.Input(shape=(4,))
        h = DenseBlock(units)(inputs)
        outputs = layers.Dense(1)(h)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.units = units

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@register(package=PKG)
class FunctionalDefaults(keras.Model):
    """Functional subclass without get_config; nobody changes its width."""

    def __init__(self, units=6, **kwargs):
        inputs = keras.Input(shape=(4,))
        outputs = layers.Dense(1)(DropBlock(units)(inputs))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)


class FunctionalUnregistered(keras.Model):  # truth: keras
    def __init__(self, **kwargs):
        inputs = keras.Input(shape=(4,))
        outputs = layers.Dense(2)(DenseBlock(5)(inputs))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)


def build_block_model(units=6):
    """Plain functional model made of the registered blocks (no class of its own)."""
    inputs = keras.Input(shape=(4,))
    x = DenseBlock(units)(inputs)
    x = NormedBlock(units)(x)
    return keras.Model(inputs, layers.Dense(1)(x))


FACTORIES = {
    "DenseBlock": lambda: DenseBlock(6, activation="tanh"),
    "NormedBlock": lambda: NormedBlock(6, epsilon=0.5),
    "DropBlock": lambda: DropBlock(6, rate=0.3),
    "ExperimentBlock": lambda: ExperimentBlock(5),
    "WidthBlock": lambda: WidthBlock(4, expansion=3),
    "PositionMix": lambda: PositionMix(4),
    "SequenceRegressor": lambda: SequenceRegressor(units=4),
    "StackedBlocks": lambda: StackedBlocks(sizes=(6, 3)),
    "BlockTower": lambda: BlockTower(units=5),
    "RegisteredTower": lambda: RegisteredTower([keras.Input(shape=(4,)), DenseBlock(3), layers.Dense(1)]),
    "SelfBuildingTower": lambda: SelfBuildingTower(units=5),
    "FunctionalScorer": lambda: FunctionalScorer(units=9),
    "FunctionalConfigured": lambda: FunctionalConfigured(units=9),
}
