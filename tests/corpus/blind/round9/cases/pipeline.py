"""Plain model-building code: built-in layers only, plus the helpers around it."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import keras
from keras import layers


@dataclasses.dataclass
class TrainConfig:
    hidden: int = 16
    dropout: float = 0.1
    epochs: int = 3
    out_dir: str = "runs"


class FeatureStats:
    """Column means / stds computed once from the training frame."""

    def __init__(self, mean=None, std=None):
        self.mean = np.zeros(4, "float32") if mean is None else np.asarray(mean, "float32")
        self.std = np.ones(4, "float32") if std is None else np.asarray(std, "float32")

    def apply(self, x):
        return (x - self.mean) / self.std


class RunPaths:
    def __init__(self, root="runs", name="baseline"):
        self.root = Path(root)
        self.name = name
        self.best = self.root / name / "best.keras"

    def dump(self, cfg):
        return json.dumps(dataclasses.asdict(cfg))


def build_baseline(cfg=TrainConfig()):
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            layers.Dense(cfg.hidden, activation="relu"),
            layers.Dropout(cfg.dropout),
            layers.Dense(1),
        ],
        name="baseline",
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def build_functional(hidden=8):
    inputs = keras.Input(shape=(4,), name="features")
    x = layers.Normalization(axis=-1)(inputs)
    x = layers.Dense(hidden, activation="gelu")(x)
    x = layers.Concatenate()([x, inputs])
    outputs = layers.Dense(1, name="price")(x)
    return keras.Model(inputs, outputs, name="price_model")


def train_and_save(x, y, cfg=TrainConfig(), paths=RunPaths()):
    model = build_baseline(cfg)
    ckpt = keras.callbacks.ModelCheckpoint(str(paths.best), save_best_only=True)
    model.fit(x, y, epochs=cfg.epochs, validation_split=0.2, callbacks=[ckpt], verbose=0)
    model.save(paths.best)
    return keras.models.load_model(paths.best)
