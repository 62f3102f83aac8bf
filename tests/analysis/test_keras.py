"""CKPT012/CKPT013: VALID and INVALID Keras classes, across files, and fixes that load back.

Each table entry is a module; what the runtime says (keras 3.15.1, scripts/keras_truth_table.py)
decides which table it is in. The fix tests run the fixed code: every class saves with
`model.save`, loads with `keras.models.load_model` (no custom_objects) and computes the same.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ckpt_lsp.analysis.analyzer import Analyzer, analyze_text
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.fix import fix_source, fix_targets
from ckpt_lsp.report.json import render

HEAD = """\
import os
os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np
from keras import layers
reg = keras.saving.register_keras_serializable(package="t")
"""


def found(body: str) -> set[tuple[str, str, str]]:
    source = HEAD + textwrap.dedent(body)
    return {(f.code, f.class_name, f.attribute) for f in analyze_text(source, "m.py")}


INVALID: dict[str, tuple[str, str, str]] = {
    "unregistered layer": (
        """
        class Norm(keras.layers.Layer):
            def __init__(self, eps=1e-5, **kwargs):
                super().__init__(**kwargs)
                self.eps = eps
            def get_config(self):
                return {**super().get_config(), "eps": self.eps}
        """,
        ("CKPT012", "Norm", ""),
    ),
    "unregistered model through `from keras import layers`": (
        """
        class Tagger(keras.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.d = layers.Dense(2)
        """,
        ("CKPT012", "Tagger", ""),
    ),
    "unregistered subclass of a library layer": (
        "class MyDense(layers.Dense):\n    pass\n",
        ("CKPT012", "MyDense", ""),
    ),
    "bare __init__ (registered)": (
        """
        @reg
        class Bare(keras.Model):
            def __init__(self):
                super().__init__()
                self.d = layers.Dense(2)
        """,
        ("CKPT013", "Bare", "**kwargs"),
    ),
    "no **kwargs with super's config": (
        """
        @keras.saving.register_keras_serializable()
        class Clip(layers.Layer):
            def __init__(self, limit=1.0):
                super().__init__()
                self.limit = limit
            def get_config(self):
                config = super().get_config()
                config.update({"limit": self.limit})
                return config
        """,
        ("CKPT013", "Clip", "**kwargs"),
    ),
    "model without get_config built with another value": (
        """
        @reg
        class Clf(keras.Model):
            def __init__(self, num_classes=2, **kwargs):
                super().__init__(**kwargs)
                self.head = layers.Dense(num_classes)
        model = Clf(num_classes=5)
        """,
        ("CKPT013", "Clf", "num_classes"),
    ),
    "model without get_config, required argument": (
        """
        @reg
        class Req(keras.Model):
            def __init__(self, units, **kwargs):
                super().__init__(**kwargs)
                self.head = layers.Dense(units)
        model = Req(4)
        """,
        ("CKPT013", "Req", "units"),
    ),
    "get_config forgets a required argument": (
        """
        @reg
        class Forget(layers.Layer):
            def __init__(self, units, scale=1.0, **kwargs):
                super().__init__(**kwargs)
                self.units, self.scale = units, scale
            def get_config(self):
                return {**super().get_config(), "scale": self.scale}
        f = Forget(3)
        """,
        ("CKPT013", "Forget", "units"),
    ),
    "subclass adds an argument to a library layer's config": (
        """
        @reg
        class Tempered(layers.Dense):
            def __init__(self, units, temperature=1.0, **kwargs):
                super().__init__(units, **kwargs)
                self.temperature = temperature
        t = Tempered(4, temperature=2.0)
        """,
        ("CKPT013", "Tempered", "temperature"),
    ),
    "config returns a layer": (
        """
        @reg
        class Wrap(layers.Layer):
            def __init__(self, inner=None, **kwargs):
                super().__init__(**kwargs)
                self.inner = inner or layers.Dense(2)
            def get_config(self):
                return {**super().get_config(), "inner": self.inner}
        """,
        ("CKPT013", "Wrap", "inner"),
    ),
    "config returns an array": (
        """
        @reg
        class Bias(layers.Layer):
            def __init__(self, bias=None, **kwargs):
                super().__init__(**kwargs)
                self.bias = np.zeros(4) if bias is None else np.asarray(bias)
            def get_config(self):
                config = super().get_config()
                config["bias"] = self.bias
                return config
        """,
        ("CKPT013", "Bias", "bias"),
    ),
    "config returns a Keras function": (
        """
        @reg
        class Act(layers.Layer):
            def __init__(self, fn=keras.ops.tanh, **kwargs):
                super().__init__(**kwargs)
                self.fn = fn
            def get_config(self):
                return dict(super().get_config(), fn=self.fn)
        """,
        ("CKPT013", "Act", "fn"),
    ),
    "layer without get_config built with a layer": (
        """
        @reg
        class Holder(layers.Layer):
            def __init__(self, inner, **kwargs):
                super().__init__(**kwargs)
                self.inner = inner
        h = Holder(layers.Dense(3))
        """,
        ("CKPT013", "Holder", "inner"),
    ),
    "layer without get_config built with an object": (
        """
        @reg
        class Holder2(layers.Layer):
            def __init__(self, init=None, **kwargs):
                super().__init__(**kwargs)
                self.init = init
        h = Holder2(init=keras.initializers.Constant(2.0))
        """,
        ("CKPT013", "Holder2", "init"),
    ),
    "config returns a numpy function": (
        """
        @reg
        class NpAct(layers.Layer):
            def __init__(self, fn=np.tanh, **kwargs):
                super().__init__(**kwargs)
                self.fn = fn
            def get_config(self):
                return {**super().get_config(), "fn": self.fn}
        """,
        ("CKPT013", "NpAct", "fn"),
    ),
    "unregistered Sequential subclass": (
        "class Stack(keras.Sequential):\n    pass\n",
        ("CKPT012", "Stack", ""),
    ),
    "tf.keras spelling": (
        """
        import tensorflow as tf
        class TfModel(tf.keras.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
        """,
        ("CKPT012", "TfModel", ""),
    ),
    "from tensorflow import keras": (
        """
        from tensorflow import keras as tfk
        class TfLayer(tfk.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
        """,
        ("CKPT012", "TfLayer", ""),
    ),
}

VALID: dict[str, str] = {
    "registered, complete": """
        @keras.saving.register_keras_serializable(package="t")
        class Ok(layers.Layer):
            def __init__(self, units=4, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.lock = __import__("threading").Lock()  # Keras never pickles attributes
            def get_config(self):
                return {**super().get_config(), "units": self.units}
        """,
    "registered through an alias, automatic Layer config with plain values": """
        @reg
        class Auto(layers.Layer):
            def __init__(self, width=4, rate=0.1, names=("a", "b"), **kwargs):
                super().__init__(**kwargs)
                self.d = layers.Dense(width)
        a = Auto(8, rate=0.2)
        """,
    "model without get_config built with its defaults": """
        @keras.utils.register_keras_serializable()
        class Reg(keras.Model):
            def __init__(self, hidden=8, **kwargs):
                super().__init__(**kwargs)
                self.d = layers.Dense(hidden)
        model = Reg()
        """,
    "forgotten argument left at its default": """
        @reg
        class Off(layers.Layer):
            def __init__(self, factor=1.0, offset=0.0, **kwargs):
                super().__init__(**kwargs)
                self.factor, self.offset = factor, offset
            def get_config(self):
                return {**super().get_config(), "factor": self.factor}
        o = Off(2.0)
        """,
    "no **kwargs, own config without super's keys": """
        @reg
        class Plain(layers.Layer):
            def __init__(self, factor=2.0):
                super().__init__()
                self.factor = factor
            def get_config(self):
                return {"factor": self.factor}
        """,
    "own from_config": """
        @reg
        class Rebuilt(layers.Layer):
            def __init__(self, inner=None):
                super().__init__()
                self.inner = inner or layers.Dense(2)
            def get_config(self):
                return {**super().get_config(), "inner": keras.layers.serialize(self.inner)}
            @classmethod
            def from_config(cls, config):
                return cls(keras.layers.deserialize(config["inner"]))
        """,
    "serialized value": """
        @reg
        class Ser(layers.Layer):
            def __init__(self, bias=None, **kwargs):
                super().__init__(**kwargs)
                self.bias = np.zeros(4) if bias is None else np.asarray(bias)
            def get_config(self):
                return {**super().get_config(), "bias": self.bias.tolist()}
        """,
    "arguments handed to the parent": """
        @reg
        class Child(layers.Dense):
            def __init__(self, units, activation=None, **kwargs):
                super().__init__(units, activation=activation, **kwargs)
        c = Child(4, activation="relu")
        """,
    "unregistered but loaded with custom_objects": """
        class Custom(layers.Layer):
            def call(self, x):
                return x
        CUSTOM = {"Custom": Custom}
        def load(path):
            return keras.models.load_model(path, custom_objects=CUSTOM)
        """,
    "dynamic config": """
        @reg
        class Dyn(layers.Layer):
            def __init__(self, a=1, b=2, **kwargs):
                super().__init__(**kwargs)
                self.kw = dict(a=a, b=b)
            def get_config(self):
                config = super().get_config()
                config.update(self.kw)
                return config
        d = Dyn(3, 4)
        """,
    "no **kwargs, but name, trainable and dtype are parameters": """
        @reg
        class Named(layers.Layer):
            def __init__(self, path="x", trainable=True, name=None, dtype=None):
                super().__init__(trainable=trainable, name=name, dtype=dtype)
                self.path = path
            def get_config(self):
                return {**super().get_config(), "path": self.path}
        """,
    "argument folded into a value the config returns": """
        @reg
        class In(layers.Layer):
            def __init__(self, shape=None, batch_size=None, **kwargs):
                super().__init__(**kwargs)
                batch_shape = (batch_size, *shape)
                self._batch_shape = batch_shape
            @property
            def batch_shape(self):
                return self._batch_shape
            def get_config(self):
                return {**super().get_config(), "batch_shape": self.batch_shape}
        i = In((3,), batch_size=2)
        """,
    "base class built only by its subclasses": """
        @reg
        class BaseConvish(layers.Layer):
            def __init__(self, rank, filters=2, **kwargs):
                super().__init__(**kwargs)
                self.rank, self.filters = rank, filters
            def get_config(self):
                return {**super().get_config(), "filters": self.filters}
        @reg
        class Conv1Dish(BaseConvish):
            def __init__(self, filters=2, **kwargs):
                super().__init__(1, filters, **kwargs)
        c = Conv1Dish(4)
        """,
    "registered by a call": """
        class Late(layers.Layer):
            def call(self, x):
                return x
        Late = keras.saving.register_keras_serializable(package="t")(Late)
        """,
    "objects Keras serializes and __init__ gets back": """
        @reg
        class Init(layers.Layer):
            def __init__(self, init="ones", act="relu", **kwargs):
                super().__init__(**kwargs)
                self.init = keras.initializers.get(init)
                self.act = keras.activations.get(act)
            def get_config(self):
                return {**super().get_config(), "init": self.init, "act": self.act}
        i = Init(keras.initializers.Constant(2.0), "tanh")
        """,
    "a forgotten dropout changes no weights and no inference output": """
        @reg
        class Drop(keras.Model):
            def __init__(self, dropout=0.1, **kwargs):
                super().__init__(**kwargs)
                self.drop = layers.Dropout(dropout)
                self.d = layers.Dense(2)
        m = Drop(dropout=0.5)
        """,
    "an abstract base left for subclasses": """
        class BaseBlock(layers.Layer):
            def __init__(self, width=4):
                super().__init__()
                self.width = width
            def call(self, x):
                raise NotImplementedError("subclasses compute")
        b = BaseBlock(8)
        """,
    "not a layer: a Keras callback and a plain class": """
        class Cb(keras.callbacks.Callback):
            pass
        class Plain:
            def __init__(self):
                self.lock = __import__("threading").Lock()
        """,
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_is_flagged(name: str) -> None:
    body, expected = INVALID[name]
    assert expected in found(body)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_is_not_flagged(name: str) -> None:
    assert found(VALID[name]) == set()


def test_keras_classes_get_no_pickle_findings() -> None:
    body = """
    @reg
    class Holder(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.log = open(os.devnull, "w")
            self.fn = lambda x: x
    """
    assert found(body) == set()


def test_suppressed_on_the_class_line() -> None:
    body = "class Quiet(layers.Layer):  # ckpt: ignore[CKPT012]\n    pass\n"
    assert found(body) == set()


def test_json_attribute_is_null_for_a_class_finding() -> None:
    source = HEAD + "class Norm(layers.Layer):\n    pass\n"
    rows = json.loads(render(analyze_text(source, "m.py")))
    assert [(r["code"], r["class"], r["attribute"]) for r in rows] == [("CKPT012", "Norm", None)]


def _project(tmp_path: Path, files: dict[str, str]) -> dict[str, list[tuple[str, str, str]]]:
    (tmp_path / "pyproject.toml").write_text("")
    index = ProjectIndex(tmp_path)
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        index.add_source(str(path), path.read_text())
    analyzer = Analyzer(index=index, batch=True)
    out = {}
    for rel in files:
        path = tmp_path / rel
        result = analyzer.analyze(str(path), path.read_text())
        out[rel] = [(f.code, f.class_name, f.attribute) for f in result.findings]
    return out


def test_across_files_bases_and_custom_objects(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/blocks.py": """
            import keras
            @keras.saving.register_keras_serializable(package="pkg")
            class Base(keras.layers.Layer):
                def __init__(self, units=4, **kwargs):
                    super().__init__(**kwargs)
                    self.units = units
                def get_config(self):
                    return {**super().get_config(), "units": self.units}
            class Loaded(keras.layers.Layer):
                pass
            class AliasedAtLoad(keras.layers.Layer):
                pass
            """,
        "pkg/heads.py": """
            import keras
            from pkg.blocks import Base
            @keras.saving.register_keras_serializable(package="pkg")
            class Head(Base):
                def __init__(self, units=4, scale=1.0, **kwargs):
                    super().__init__(units, **kwargs)
                    self.scale = scale
            class Unregistered(Base):
                pass
            head = Head(4, scale=2.0)
            """,
        "pkg/common.py": """
            import keras
            register = keras.saving.register_keras_serializable(package="pkg")
            def registered(cls):
                return keras.saving.register_keras_serializable(package="pkg")(cls)
            """,
        "pkg/more.py": """
            import keras
            from pkg.common import register, registered
            @register
            class ByAlias(keras.layers.Layer):
                pass
            @registered
            class ByFunction(keras.layers.Layer):
                pass
            """,
        "pkg/serve.py": """
            import keras
            from pkg.blocks import Loaded
            def load(p):
                return keras.models.load_model(p, custom_objects={"Loaded": Loaded})
            """,
        # the class imported under another name and handed over by that name
        "pkg/serve_alias.py": """
            import keras
            from pkg.blocks import AliasedAtLoad as Layer
            def load(p):
                return keras.models.load_model(p, custom_objects={"Layer": Layer})
            """,
    }
    out = _project(tmp_path, files)
    assert out["pkg/blocks.py"] == []
    assert out["pkg/more.py"] == []
    assert sorted(out["pkg/heads.py"]) == [
        ("CKPT012", "Unregistered", ""),
        ("CKPT013", "Head", "scale"),
    ]


# ---------------------------------------------------------------- fixes, run


FIX_CASES = {
    "spelled_from_keras.py": """
        import os
        os.environ.setdefault("KERAS_BACKEND", "torch")
        from keras import layers


        class Shift(layers.Layer):
            def __init__(self, shift=1.0):
                super().__init__()
                self.shift = shift

            def call(self, x):
                return x + self.shift

            def get_config(self):
                return {**super().get_config(), "shift": self.shift}


        FACTORIES = {"Shift": lambda: Shift(2.5)}
        """,
    "configs.py": """
        import os
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras
        import numpy as np


        class Clf(keras.Model):
            def __init__(self, num_classes=2, hidden=3, **kwargs):
                super().__init__(**kwargs)
                self.body = keras.layers.Dense(hidden)
                self.head = keras.layers.Dense(num_classes)

            def call(self, x):
                return self.head(self.body(x))


        @keras.saving.register_keras_serializable(package="configs")
        class Scaled(keras.layers.Layer):
            def __init__(self, factor=1.0, offset=0.0, bias=None, **kwargs):
                super().__init__(**kwargs)
                self.factor = factor
                self.offset = offset
                self.bias = np.zeros(4, "float32") if bias is None else np.asarray(bias, "float32")

            def call(self, x):
                return x * self.factor + self.offset + keras.ops.convert_to_tensor(self.bias)

            def get_config(self):
                config = super().get_config()
                config.update({"factor": self.factor, "bias": self.bias})
                return config


        @keras.saving.register_keras_serializable(package="configs")
        class Tempered(keras.layers.Dense):
            def __init__(self, units, temperature=1.0, **kwargs):
                super().__init__(units, **kwargs)
                self.temperature = temperature

            def call(self, x):
                return super().call(x) / self.temperature


        FACTORIES = {
            "Clf": lambda: Clf(num_classes=5, hidden=2),
            "Scaled": lambda: Scaled(2.0, offset=1.0, bias=np.arange(4)),
            "Tempered": lambda: Tempered(3, temperature=4.0),
        }
        """,
    "values.py": """
        import os
        os.environ.setdefault("KERAS_BACKEND", "torch")
        from pathlib import Path
        import keras as K


        @K.saving.register_keras_serializable(package="values")
        class Vocab(K.layers.Layer):
            def __init__(self, vocab_file=None, **kwargs):
                super().__init__(**kwargs)
                self.vocab_file = Path(vocab_file) if vocab_file else None

            def call(self, x):
                return x * 2.0

            def get_config(self):
                return {**super().get_config(), "vocab_file": self.vocab_file}


        @K.saving.register_keras_serializable(package="values")
        class Gate(K.layers.Layer):
            def __init__(self, fn=K.activations.relu, scale=1.0, **kwargs):
                super().__init__(**kwargs)
                self.fn = fn
                self.scale = scale  # the new get_config must keep it too

            def call(self, x):
                return self.fn(x) * x * self.scale


        FACTORIES = {
            "Vocab": lambda: Vocab("/tmp/vocab.txt"),
            "Gate": lambda: Gate(fn=K.activations.sigmoid, scale=3.0),
        }
        """,
}

ROUND_TRIP = r"""
import importlib, json, os, sys, tempfile, warnings
os.environ["KERAS_BACKEND"] = "torch"
import keras, numpy as np
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
sample = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
out = {}
for name in sys.argv[2:]:
    mod = importlib.import_module(name)
    for cname, cls in vars(mod).items():
        if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
            continue
        if cls.__module__ != name:
            continue
        obj = getattr(mod, "FACTORIES", {}).get(cname, cls)()
        model = obj if isinstance(obj, keras.Model) else keras.Sequential(
            [keras.Input((4,)), obj])
        before = keras.ops.convert_to_numpy(model(sample))
        path = os.path.join(tempfile.mkdtemp(), "m.keras")
        try:
            model.save(path)
            after = keras.ops.convert_to_numpy(keras.models.load_model(path)(sample))
            out[cname] = "ok" if np.allclose(before, after, atol=1e-6) else "differs"
        except Exception as exc:
            out[cname] = f"{type(exc).__name__}: {str(exc)[:200]}"
print(json.dumps(out))
"""


def _round_trip(folder: Path, modules: list[str]) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, str(folder), *modules],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(
    importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None,
    reason="keras (torch backend) is not installed: the fixed classes cannot be run",
)
def test_fixed_classes_save_and_load_back(tmp_path: Path) -> None:
    before_dir, after_dir = tmp_path / "before", tmp_path / "after"
    for folder in (before_dir, after_dir):
        folder.mkdir()
    flagged: set[str] = set()
    for name, body in FIX_CASES.items():
        text = textwrap.dedent(body).lstrip()
        (before_dir / name).write_text(text)
        findings = analyze_text(text, name)
        flagged |= {f.class_name for f in findings}
        fixed = fix_source(text, fix_targets(findings))
        compile(fixed, name, "exec")
        assert analyze_text(fixed, name) == [], fixed  # nothing left to report
        (after_dir / name).write_text(fixed)
    modules = [n[:-3] for n in FIX_CASES]
    assert flagged == {"Shift", "Clf", "Scaled", "Tempered", "Vocab", "Gate"}
    before = _round_trip(before_dir, modules)
    assert {c for c, r in before.items() if r != "ok"} == flagged, before  # the runtime agrees
    after = _round_trip(after_dir, modules)
    assert all(r == "ok" for r in after.values()), after
    assert "import keras\n" in (after_dir / "spelled_from_keras.py").read_text()


# flagged, but no fix is certain: the finding stays, the text is left alone
NO_FIX = {
    "a Sequential subclass that adds its layers in __init__": """
        class Tower(keras.Sequential):
            def __init__(self, units=4, **kwargs):
                super().__init__(**kwargs)
                self.add(keras.Input(shape=(4,)))
                self.add(layers.Dense(units))
        t = Tower(units=5)
        """,
    "an array argument kept under another name, no get_config": """
        @reg
        class Weigh(layers.Layer):
            def __init__(self, weights=None, **kwargs):
                super().__init__(**kwargs)
                self.w = np.asarray(weights if weights is not None else [1.0], "float32")
        Weigh(np.array([0.5, 2.0]))
        """,
    "a path the caller makes, returned as it is": """
        import pathlib
        @reg
        class Vocab(layers.Layer):
            def __init__(self, path=None, **kwargs):
                super().__init__(**kwargs)
                self.path_ = path
            def get_config(self):
                return {**super().get_config(), "path": self.path_}
        Vocab(pathlib.Path("/tmp/v.txt"))
        """,
    "a function argument beside one the automatic config converted": """
        @reg
        class Gate(layers.Layer):
            def __init__(self, fn=keras.activations.relu, units=(2,), **kwargs):
                super().__init__(**kwargs)
                self.fn = fn
                self.units = list(units)
        Gate(fn=keras.activations.sigmoid, units=(3,))
        """,
    "a module function argument, no get_config": """
        def soft(x):
            return x
        @reg
        class Act(layers.Layer):
            def __init__(self, fn=None, **kwargs):
                super().__init__(**kwargs)
                self.fn = fn
        Act(fn=soft)
        """,
}


@pytest.mark.parametrize("name", sorted(NO_FIX))
def test_no_fix_where_none_is_certain(name: str) -> None:
    source = HEAD + textwrap.dedent(NO_FIX[name])
    findings = analyze_text(source, "m.py")
    assert findings, "the shape is flagged"
    assert fix_targets(findings) == [] or fix_source(source, fix_targets(findings)) == source
    assert all(json.loads(render([f]))[0]["fix"] is None for f in findings)


def test_hover_and_fix_titles_speak_of_keras() -> None:
    from ckpt_lsp.fix.policy import target_title
    from ckpt_lsp.lsp.hover import finding_markdown

    source = (
        HEAD + "class Bare(layers.Layer):\n    def __init__(self):\n        super().__init__()\n"
    )
    findings = analyze_text(source, "m.py")
    assert [(f.code, f.attribute) for f in findings] == [("CKPT012", ""), ("CKPT013", "**kwargs")]
    hover = finding_markdown(findings[0])
    assert "register it" in hover and "Exclude" not in hover
    assert "**Fails:** model.save + keras.models.load_model, deepcopy, pickle" in hover
    (target,) = fix_targets(findings)
    assert target.keras == ("register:m", "kwargs")
    assert target_title(target) == "Fix all Keras findings of `Bare`: register it, add **kwargs"
