"""Measure which custom Keras class shapes survive Keras' save paths; print a markdown table.

Each row is a class shape that CKPT012/CKPT013 reason about; each column a save path:
`.keras` save, `load_model` (no custom_objects), `copy.deepcopy`, `keras.models.clone_model`,
`save_weights`/`load_weights` into a fresh instance, and a `pickle` round trip. A cell is "ok",
"fails" (the call raises), or "differs" (it loads but computes something else). The rule pages
and docs/checks.md quote this table: re-run it when the Keras version changes.

Run: KERAS_BACKEND=torch python scripts/keras_truth_table.py
"""

from __future__ import annotations

import copy
import os
import pickle
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

SAMPLE = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
register = keras.saving.register_keras_serializable(package="truth")


class Unregistered(keras.layers.Layer):
    def __init__(self, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@register
class LayerAutoConfig(keras.layers.Layer):
    """No get_config: a Layer records plain constructor arguments itself."""

    def __init__(self, units=3, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)
        self.scale = scale

    def call(self, x):
        return self.dense(x) * self.scale


@register
class LayerNoKwargs(keras.layers.Layer):
    def __init__(self, scale=2.0):
        super().__init__()
        self.scale = scale

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@register
class LayerBareInit(keras.layers.Layer):
    def __init__(self):
        super().__init__()

    def call(self, x):
        return x * 2.0


class UnregisteredModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


@register
class LayerArgNoConfig(keras.layers.Layer):
    """No get_config, built with a layer: the automatic config cannot hold it."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return self.inner(x)


@register
class OwnConfigNoKwargs(keras.layers.Layer):
    """No **kwargs, but get_config builds its own dict without Keras' base keys."""

    def __init__(self, scale=2.0):
        super().__init__()
        self.scale = scale

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {"scale": self.scale}


@register
class ModelNoConfig(keras.Model):
    """No get_config: a Model's automatic config keeps the defaults only."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x)


@register
class ForgetsShape(keras.layers.Layer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return super().get_config()


@register
class ForgetsScale(keras.layers.Layer):
    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return super().get_config()


@register
class ConfigHoldsLayer(keras.layers.Layer):
    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner or keras.layers.Dense(3)

    def call(self, x):
        return self.inner(x)

    def get_config(self):
        return {**super().get_config(), "inner": self.inner}


@register
class ConfigHoldsArray(keras.layers.Layer):
    def __init__(self, weights_init=None, **kwargs):
        super().__init__(**kwargs)
        self.weights_init = np.ones(4, "float32") if weights_init is None else weights_init

    def call(self, x):
        return x * keras.ops.convert_to_tensor(self.weights_init)

    def get_config(self):
        return {**super().get_config(), "weights_init": self.weights_init}


@register
class ConfigHoldsFunction(keras.layers.Layer):
    def __init__(self, fn=None, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn or keras.ops.tanh

    def call(self, x):
        return self.fn(x)

    def get_config(self):
        return {**super().get_config(), "fn": self.fn}


@register
class ConfigRebuildsLayer(keras.layers.Layer):
    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner or keras.layers.Dense(3)

    def call(self, x):
        return self.inner(x)

    def get_config(self):
        return {**super().get_config(), "inner": keras.layers.serialize(self.inner)}

    @classmethod
    def from_config(cls, config):
        config["inner"] = keras.layers.deserialize(config["inner"])
        return cls(**config)


@register
class Complete(keras.layers.Layer):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@register
class ChildAddsArg(Complete):
    def __init__(self, units=3, scale=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self.scale = scale

    def call(self, x):
        return super().call(x) * self.scale


@register
class ModelComplete(keras.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)
        self.squash = lambda v: v  # a Python attribute Keras never serializes

    def call(self, x):
        return self.squash(self.dense(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


ROWS: list[tuple[str, Callable[[], keras.layers.Layer]]] = [
    ("Layer, not registered (get_config, **kwargs)", lambda: Unregistered(3.0)),
    ("Model, not registered, bare `__init__(self)`", UnregisteredModel),
    ("Layer, registered, no get_config, plain args", lambda: LayerAutoConfig(5, 0.5)),
    (
        "Layer, registered, no get_config, built with a layer",
        lambda: LayerArgNoConfig(keras.layers.Dense(3)),
    ),
    ("Layer, registered, `__init__` without **kwargs", lambda: LayerNoKwargs(3.0)),
    ("Layer, registered, bare `__init__(self)`", LayerBareInit),
    ("no **kwargs, get_config without super's keys", lambda: OwnConfigNoKwargs(3.0)),
    ("Model, registered, no get_config, non-default arg", lambda: ModelNoConfig(5)),
    ("Model, registered, no get_config, default args", ModelNoConfig),
    ("get_config forgets an arg that shapes weights", lambda: ForgetsShape(5)),
    ("get_config forgets an arg of the computation", lambda: ForgetsScale(3.0)),
    ("get_config forgets an arg left at its default", ForgetsScale),
    ("get_config returns a layer", ConfigHoldsLayer),
    ("get_config returns a numpy array", lambda: ConfigHoldsArray(np.full(4, 2.0, "float32"))),
    ("get_config returns a function", ConfigHoldsFunction),
    ("get_config serializes a layer, from_config rebuilds it", ConfigRebuildsLayer),
    ("subclass adds an arg its parent's config lacks", lambda: ChildAddsArg(3, 3.0)),
    ("complete: registered, get_config, **kwargs", lambda: Complete(5)),
    ("complete Model with a lambda attribute", lambda: ModelComplete(5)),
]


def _numpy(y: object) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(y)]


def _same(a: object, b: object) -> bool:
    xs, ys = _numpy(a), _numpy(b)
    return len(xs) == len(ys) and all(
        x.shape == y.shape and np.allclose(x, y, atol=1e-6) for x, y in zip(xs, ys)
    )


def _as_model(obj: keras.layers.Layer) -> keras.Model:
    if isinstance(obj, keras.Model):
        return obj
    return keras.Sequential([keras.Input(shape=SAMPLE.shape[1:]), obj])


def _cell(run: Callable[[], object], before: object) -> str:
    try:
        after = run()
    except Exception as exc:
        return f"fails ({type(exc).__name__})"
    if after is None:
        return "ok"
    return "ok" if _same(before, after) else "**differs**"


def measure(build: Callable[[], keras.layers.Layer], tmp: Path) -> list[str]:
    model = _as_model(build())
    before = model(SAMPLE)
    target = tmp / "m.keras"
    try:
        model.save(target)
        saved = "ok"
    except Exception as exc:
        saved = f"fails ({type(exc).__name__})"
    loaded = (
        _cell(lambda: keras.models.load_model(target)(SAMPLE), before) if saved == "ok" else "-"
    )
    copied = _cell(lambda: copy.deepcopy(model)(SAMPLE), before)
    cloned = _cell(lambda: _clone(model), before)
    weights = _cell(lambda: _weights(model, build, tmp), before)
    pickled = _cell(lambda: pickle.loads(pickle.dumps(model))(SAMPLE), before)
    return [saved, loaded, copied, cloned, weights, pickled]


def _clone(model: keras.Model) -> None:
    keras.models.clone_model(model)  # fresh weights by design: only whether it builds counts


def _weights(model: keras.Model, build: Callable[[], keras.layers.Layer], tmp: Path) -> object:
    path = tmp / "m.weights.h5"
    model.save_weights(path)
    fresh = _as_model(build())
    fresh(SAMPLE)
    fresh.load_weights(path)
    return fresh(SAMPLE)


def main() -> int:
    header = "| class shape | `.keras` save | `load_model` | deepcopy | clone_model | save/load_weights | pickle |"
    print(
        f"Measured with keras {keras.__version__} ({keras.backend.backend()} backend), "
        f"numpy {np.__version__}, Python {sys.version.split()[0]}.\n"
    )
    print(header)
    print("|" + "---|" * 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, build in ROWS:
            with tempfile.TemporaryDirectory() as tmp:
                cells = measure(build, Path(tmp))
            print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
