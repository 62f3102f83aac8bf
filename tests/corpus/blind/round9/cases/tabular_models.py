"""Subclassed Keras models for the churn / price regressors (keras 3, any backend)."""
import keras
from keras import layers, saving
from keras.saving import register_keras_serializable as serializable

register_model = keras.saving.register_keras_serializable(package="tabular")


class TabularMLP(keras.Model):  # truth: keras
    """The first version: a correct config, but nobody registered it."""

    def __init__(self, hidden=16, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.dropout = dropout
        self.body = layers.Dense(hidden, activation="relu")
        self.drop = layers.Dropout(dropout)
        self.head = layers.Dense(1)

    def call(self, x, training=False):
        return self.head(self.drop(self.body(x), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(hidden=self.hidden, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="tabular")
class ChurnClassifier(keras.Model):
    def __init__(self, hidden=16, n_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.n_classes = n_classes
        self.body = layers.Dense(hidden, activation="relu")
        self.head = layers.Dense(n_classes, activation="softmax")

    def call(self, x):
        return self.head(self.body(x))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "n_classes": self.n_classes}


@keras.utils.register_keras_serializable(package="tabular")
class ResidualRegressor(keras.Model):
    def __init__(self, width=8, depth=2, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.depth = depth
        self.proj = layers.Dense(width)
        self.blocks = [layers.Dense(width, activation="relu") for _ in range(depth)]
        self.out = layers.Dense(1)

    def call(self, x):
        h = self.proj(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)

    def get_config(self):
        base = super().get_config()
        base["width"] = self.width
        base["depth"] = self.depth
        return base


@saving.register_keras_serializable()
class WideAndDeep(keras.Model):  # truth: keras
    """Registered, no get_config; the training script builds it wider than the default."""

    def __init__(self, deep_units=8, **kwargs):
        super().__init__(**kwargs)
        self.wide = layers.Dense(1)
        self.deep = keras.Sequential([layers.Dense(deep_units, activation="relu"), layers.Dense(1)])

    def call(self, x):
        return self.wide(x) + self.deep(x)


@serializable(package="tabular")
class PriceHead(keras.Model):
    """Registered, no get_config, and every caller keeps the defaults."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(units, activation="tanh")
        self.out = layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


class LateRegistered(keras.Model):
    def __init__(self, units=6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        cfg = super().get_config()
        cfg.update({"units": self.units})
        return cfg


LateRegistered = keras.saving.register_keras_serializable(package="tabular", name="LateRegistered")(LateRegistered)


class MeantToBeRegistered(keras.Model):  # truth: keras
    """`register_model` is built at the top of the module but never applied to this class."""

    def __init__(self, units=6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return dict(super().get_config(), units=self.units)


@register_model
class AppliedAlias(keras.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return dict(super().get_config(), units=self.units)


@serializable(package="tabular")
class StrictRanker(keras.Model):
    """__init__ takes no **kwargs, and get_config returns only `units` (no super())."""

    def __init__(self, units=8):
        super().__init__()
        self.units = units
        self.score = layers.Dense(units)

    def call(self, x):
        return self.score(x)

    def get_config(self):
        return {"units": self.units}


@serializable(package="tabular")
class StrictScorer(keras.Model):  # truth: keras
    """__init__ takes no **kwargs, and get_config merges super().get_config()."""

    def __init__(self, units=8):
        super().__init__()
        self.units = units
        self.score = layers.Dense(units)

    def call(self, x):
        return self.score(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@serializable(package="tabular")
class ExplicitNameRanker(keras.Model):
    """No **kwargs, but get_config returns exactly what __init__ takes (no super config)."""

    def __init__(self, units=8, name="ranker"):
        super().__init__(name=name)
        self.units = units
        self.score = layers.Dense(units)

    def call(self, x):
        return self.score(x)

    def get_config(self):
        return {"units": self.units, "name": self.name}


@keras.saving.register_keras_serializable(package="tabular")
class ForgetfulEncoder(keras.Model):  # truth: keras
    """get_config forgets `latent`, which shapes the weights."""

    def __init__(self, hidden=8, latent=2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.latent = latent
        self.enc = layers.Dense(hidden, activation="relu")
        self.z = layers.Dense(latent)

    def call(self, x):
        return self.z(self.enc(x))

    def get_config(self):
        config = super().get_config()
        config.update({"hidden": self.hidden})
        return config


@keras.saving.register_keras_serializable(package="tabular")
class TemperatureScaled(keras.Model):  # truth: keras
    """get_config forgets `temperature`: no weight depends on it, so it loads and computes otherwise."""

    def __init__(self, n_classes=3, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes
        self.temperature = temperature
        self.logits = layers.Dense(n_classes)

    def call(self, x):
        return keras.ops.softmax(self.logits(x) / self.temperature)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes}


@keras.saving.register_keras_serializable(package="tabular")
class CalibratedHead(keras.Model):
    """Same omission as TemperatureScaled, but every caller keeps temperature at its default."""

    def __init__(self, n_classes=3, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes
        self.temperature = temperature
        self.logits = layers.Dense(n_classes)

    def call(self, x):
        return keras.ops.softmax(self.logits(x) / self.temperature)

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes}


FACTORIES = {
    "TabularMLP": lambda: TabularMLP(hidden=12),
    "ChurnClassifier": lambda: ChurnClassifier(hidden=10, n_classes=3),
    "ResidualRegressor": lambda: ResidualRegressor(width=6, depth=3),
    "WideAndDeep": lambda: WideAndDeep(deep_units=32),
    "PriceHead": lambda: PriceHead(),
    "ForgetfulEncoder": lambda: ForgetfulEncoder(hidden=8, latent=5),
    "TemperatureScaled": lambda: TemperatureScaled(n_classes=3, temperature=4.0),
    "CalibratedHead": lambda: CalibratedHead(n_classes=4),
}
