"""The weights-only catalog is data, so the runtime is its judge (torch >= 2.6).

Every kind's, call's, prefix's and value's probe is torch.save'd and the DEFAULT torch.load
must refuse it; the loadable form a kind names must load; and where a kind has a quick fix, the
fix applied to each probe must load. Values that people expect to fail but load (OrderedDict,
Counter, set, random.getstate()) must stay out of the catalog.
This file reads the TOML itself so that a loader bug cannot hide a data bug.
"""

from __future__ import annotations

import importlib
import io
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from ckpt_lsp.analysis.splits import SPLITTERS

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DATA = tomllib.loads((ROOT / "server/ckpt_lsp/data/weights_only.toml").read_text("utf-8"))
KINDS: dict[str, dict[str, Any]] = {k["name"]: k for k in DATA["kind"]}
PROBED = [
    *(("method", e) for e in DATA.get("method", []) if e.get("probe")),
    *(("call", e) for e in DATA.get("call", [])),
    *(("prefix", e) for e in DATA.get("prefix", [])),
    *(("value", e) for e in DATA.get("value", [])),
    *(("factory", e) for e in DATA.get("factory", [])),
]
FIXED = {
    "item": "({}).item()",
    "state_dict": "({}).state_dict()",
    "vars": "vars({})",
    "str": "str({})",
    "to_container": "omegaconf.OmegaConf.to_container({})",
}
# measured to load under the default torch.load: never catalog entries
LOADS = {
    "collections.OrderedDict": "collections.OrderedDict(a=1)",
    "collections.Counter": "collections.Counter('aab')",
    "builtins.set": "{1, 2}",
    "random.getstate": "random.getstate()",
    "torch.get_rng_state": "torch.get_rng_state()",
    "torch.nn.Parameter": "torch.nn.Parameter(torch.zeros(2))",
    "numpy.random.rand()": "numpy.random.rand()",  # a Python float without arguments
    "torch.device": "torch.device('cpu')",
    "namedtuple._asdict": "collections.namedtuple('P', 'a')(1)._asdict()",
}


def _namespace(requires: list[str], tmp: Path) -> dict[str, Any]:
    names: dict[str, Any] = {"tmp": str(tmp), "torch": torch}
    for module in [*requires, "omegaconf", "numpy"]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            pytest.skip(f"{module} is not installed")
        top = module.split(".")[0]
        names[top] = sys.modules[top]
    return names


def _default_load_fails(value: object, save_may_fail: bool = False) -> bool:
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
    except Exception:
        if save_may_fail:
            return True
        raise
    buffer.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(buffer)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError or a RuntimeError
        return "weights only" in str(exc).lower() or "Unsupported" in str(exc)
    return False


def _evaluate(expr: str, requires: list[str], tmp: Path) -> object:
    return eval(expr, _namespace(requires, tmp))  # noqa: S307 - catalog probes are ours


def test_default_is_weights_only() -> None:
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6), "the rule is about torch >= 2.6"


@pytest.mark.parametrize("kind", sorted(KINDS), ids=str)
def test_kind_is_refused_and_its_loadable_form_loads(kind: str, tmp_path: Path) -> None:
    entry = KINDS[kind]
    requires = list(entry.get("requires", []))
    probe = _evaluate(entry["probe"], requires, tmp_path)
    assert _default_load_fails(probe, bool(entry.get("receiver_only"))), kind
    assert not _default_load_fails(_evaluate(entry["loadable_probe"], requires, tmp_path)), kind
    fix = entry.get("fix", "")
    if fix:
        fixed = FIXED[fix].format(entry["probe"])
        assert not _default_load_fails(_evaluate(fixed, requires, tmp_path)), fixed


@pytest.mark.parametrize(
    ("table", "entry"), PROBED, ids=lambda v: v if isinstance(v, str) else v["name"]
)
def test_entry_is_refused(table: str, entry: dict[str, Any], tmp_path: Path) -> None:
    requires = list(entry.get("requires", []))
    value = _evaluate(entry["probe"], requires, tmp_path)
    # a receiver-only kind (a t-test's result): torch.save itself may fail on it
    save_may_fail = bool(KINDS[entry["kind"]].get("receiver_only"))
    assert _default_load_fails(value, save_may_fail), f"{table} {entry['name']} loads: not refused"
    fix = KINDS[entry["kind"]].get("fix", "")
    fix_args = entry.get("fix_args", -1)
    if fix and table == "call" and fix_args != 0:
        fixed = FIXED[fix].format(entry["probe"])
        assert not _default_load_fails(_evaluate(fixed, requires, tmp_path)), fixed


@pytest.mark.parametrize("entry", DATA.get("call", []), ids=lambda e: e["name"])
def test_a_called_function_read_as_a_value_is_refused_unless_marked(
    entry: dict[str, Any], tmp_path: Path
) -> None:
    """`pool=torch.sum` of a [[call]] entry: the function itself is a global the default load
    refuses; `reference = false` marks the ones that load (`set`, `Counter`)."""
    _namespace(list(entry.get("requires", [])), tmp_path)  # skips what is not installed
    function = _read(entry["name"])
    refused = _default_load_fails(function)
    assert refused == entry.get("reference", True), f"{entry['name']}: refused is {refused}"


@pytest.mark.parametrize("kind", sorted(k for k in KINDS if KINDS[k].get("probe")), ids=str)
def test_the_type_of_a_refused_value_is_refused_unless_listed(kind: str, tmp_path: Path) -> None:
    """`type(model)` saved: the analyzer calls it refused for every kind but the listed ones."""
    from ckpt_lsp.analysis.load_safety import TYPE_LOADS_OR_FAILS

    entry = KINDS[kind]
    value = _evaluate(entry["probe"], list(entry.get("requires", [])), tmp_path)
    refused = _default_load_fails(type(value), save_may_fail=True)
    buffer = io.BytesIO()
    try:
        torch.save(type(value), buffer)
        saved = True
    except Exception:  # noqa: BLE001 - pickle raises several kinds
        saved = False
    assert (refused and saved) == (kind not in TYPE_LOADS_OR_FAILS), kind


@pytest.mark.parametrize("name", sorted(LOADS))
def test_values_that_load_stay_out(name: str, tmp_path: Path) -> None:
    value = _evaluate(LOADS[name], ["collections", "random"], tmp_path)
    assert not _default_load_fails(value), f"{name} is refused now: catalog it"
    listed = {t for k in KINDS.values() for t in k.get("types", [])}
    # a call refused only over numpy values (`set(arr)`, `Counter(arr)`) may build a type that
    # loads: it is refused for its numpy items, not itself
    listed |= {e["name"] for _, e in PROBED if not e.get("numpy_args")}
    assert name not in listed


@pytest.mark.parametrize("entry", DATA.get("number", []), ids=lambda e: e["name"])
def test_a_number_entry_returns_a_python_number_that_loads(
    entry: dict[str, Any], tmp_path: Path
) -> None:
    """[[number]]: a Python int or float (so it loads), and numpy again divided by a numpy
    value (what the analyzer claims of `log_loss(y, p) / np.log(2)`)."""
    requires = list(entry.get("requires", []))
    value = _evaluate(entry["probe"], requires, tmp_path)
    assert type(value) in (int, float), f"{entry['name']} returns {type(value).__name__}"
    assert not _default_load_fails(value)
    assert _default_load_fails(
        _evaluate(f"({entry['probe']}) / numpy.float64(2.0)", [*requires, "numpy"], tmp_path)
    )


def test_calls_refused_only_with_their_arguments() -> None:
    from ckpt_lsp.weights_only import weights_only_catalog

    assert weights_only_catalog().for_call("numpy.random.rand", 0) is None
    assert weights_only_catalog().for_call("numpy.random.rand", 1) is not None


def _loads_after_registering(value: object, tmp: Path) -> bool:
    """Register each global the load refuses, as the error message tells users to."""
    from torch.serialization import (
        add_safe_globals,
        clear_safe_globals,
        get_unsafe_globals_in_checkpoint,
    )

    path = tmp / "registered.pt"
    torch.save({"value": value}, path)
    names = list(get_unsafe_globals_in_checkpoint(str(path)))
    try:
        for _ in range(8):
            clear_safe_globals()
            add_safe_globals([_resolve(n) for n in names])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.load(path)
                return True
            except Exception as exc:  # noqa: BLE001
                text = str(exc)
                marker, built = "Unsupported global: GLOBAL ", "but got <class '"
                if marker in text:
                    names.append(text.split(marker, 1)[1].split(" ", 1)[0])
                elif "Can only build" in text and built in text:
                    names.append(text.split(built, 1)[1].split("'", 1)[0])
                else:
                    return False
        return False
    finally:
        clear_safe_globals()


def _read(name: str) -> Any:
    """What code reading `name` gets: attributes first, a submodule only when none is there
    (`torch.ao.quantization.quantize` is the function, not the module of that name)."""
    parts = name.split(".")
    obj: Any = importlib.import_module(parts[0])
    for at, part in enumerate(parts[1:], start=1):
        if not hasattr(obj, part):
            importlib.import_module(".".join(parts[: at + 1]))
        obj = getattr(obj, part)
    return obj


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    if not module:  # a top-level package (`torchmetrics.` types the names it exports)
        return importlib.import_module(attr)
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("kind", sorted(k for k in KINDS if not KINDS[k].get("receiver_only")))
def test_registering_the_globals_loads_unless_the_kind_says_not(kind: str, tmp_path: Path) -> None:
    """A load after add_safe_globals is no finding (CKPT010) only where it really loads."""
    entry = KINDS[kind]
    value = _evaluate(entry["probe"], list(entry.get("requires", [])), tmp_path)
    assert _loads_after_registering(value, tmp_path) is entry.get("registrable", True), kind


def test_stateful_kinds_load_through_fabric(tmp_path: Path) -> None:
    """Fabric.save turns modules and optimizers into their state_dict itself."""
    lightning = pytest.importorskip("lightning")
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    for kind in (k for k in KINDS.values() if k.get("stateful")):
        path = tmp_path / f"{kind['name']}.ckpt"
        value = _evaluate(kind["probe"], list(kind.get("requires", [])), tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fabric.save(path, {"value": value})
            torch.load(path)
    numpy = pytest.importorskip("numpy")
    fabric.save(tmp_path / "n.ckpt", {"step": numpy.int64(3)})
    with pytest.raises(Exception, match="(?i)weights only"):
        torch.load(tmp_path / "n.ckpt")


def test_the_loader_reads_the_data() -> None:
    from ckpt_lsp.weights_only import weights_only_catalog

    catalog = weights_only_catalog()
    assert set(catalog.kinds) == set(KINDS)
    assert catalog.for_type("torch.nn.Linear") is not None
    assert catalog.for_type("torch.nn.Parameter") is None
    assert catalog.for_type("collections.OrderedDict") is None


def test_a_wrong_entry_is_an_error() -> None:
    from ckpt_lsp.weights_only import parse

    with pytest.raises(ValueError, match="unknown kind"):
        parse({"kind": [], "call": [{"name": "x.y", "kind": "nope"}]})
    bad = dict(KINDS["path"], fix="nope")
    with pytest.raises(ValueError, match="unknown fix"):
        parse({"kind": [bad]})


@pytest.mark.parametrize("kind", sorted(k for k, e in KINDS.items() if e.get("sums")))
def test_sums_of_a_summing_kind_are_refused(kind: str, tmp_path: Path) -> None:
    entry = KINDS[kind]
    value = _evaluate(entry["probe"], list(entry.get("requires", [])), tmp_path)
    assert _default_load_fails(value - value), kind
    assert _default_load_fails(value + (value - value)), kind


@pytest.mark.parametrize("kind", sorted(k for k, e in KINDS.items() if e.get("nested")))
def test_nested_values_of_a_nested_kind(kind: str, tmp_path: Path) -> None:
    entry = KINDS[kind]
    requires = list(entry.get("requires", []))
    assert _default_load_fails(_evaluate(entry["nested_probe"], requires, tmp_path)), kind
    assert not _default_load_fails(_evaluate(entry["nested_leaf"], requires, tmp_path)), kind


@pytest.mark.parametrize(
    "entry", [e for e in DATA.get("call", []) if e.get("items")], ids=lambda e: e["name"]
)
def test_each_item_of_a_tuple_result_is_refused(entry: dict[str, Any], tmp_path: Path) -> None:
    """`codes, uniques = pd.factorize(col)`: each unpacked name is refused, as listed."""
    value = _evaluate(entry["probe"], list(entry.get("requires", [])), tmp_path)
    assert isinstance(value, tuple) and len(value) == len(entry["items"]), entry["name"]
    for item, kind in zip(value, entry["items"]):
        assert kind in KINDS and _default_load_fails(item), (entry["name"], kind)


# pandas values measured to load: a column's count of uniques, its lists, a RangeIndex's items,
# its iteration (Python scalars, unlike a numpy array's)
PANDAS_LOADS = [
    "pandas.Series([1, 2, 2]).nunique()",
    "pandas.Series([1.5, 2.5]).tolist()",
    "list(pandas.Series([1.5, 2.5]))",
    "sorted(pandas.Series([2.5, 1.5]))",
    "[v for v in pandas.Series([1.5, 2.5])]",
    "pandas.DataFrame({'y': [1.0, 2.0]}).index[-1]",
    "pandas.Series(['a', 'b']).unique().tolist()",
    "pandas.Timestamp('2024-01-01').isoformat()",
]


@pytest.mark.parametrize("expr", PANDAS_LOADS)
def test_pandas_values_that_load(expr: str, tmp_path: Path) -> None:
    assert not _default_load_fails(_evaluate(expr, ["pandas"], tmp_path)), expr


def test_a_kind_like_another_has_its_methods() -> None:
    from ckpt_lsp.weights_only import weights_only_catalog

    catalog = weights_only_catalog()
    assert catalog.method("pandas-time-frame", "describe", False, False) == "pandas-frame"
    # its own entries win: dropping rows keeps the dates' index
    assert catalog.method("pandas-time-frame", "dropna", False, False) == "pandas-time-frame"
    assert catalog.method("pandas-time-frame", "index", True, False) == "pandas-datetime-index"
    assert catalog.method("pandas-frame", "index", True, False) == "pandas-index"


@pytest.mark.parametrize(
    "entry", [e for e in DATA.get("method", []) if e.get("unsized")], ids=lambda e: e["name"]
)
def test_a_sized_method_without_a_size_returns_its_unsized_kind(
    entry: dict[str, Any], tmp_path: Path
) -> None:
    """`rng.integers(5, 20)` is one numpy integer: refused, and of the kind listed."""
    value = _evaluate(entry["unsized_probe"], list(entry.get("requires", [])), tmp_path)
    assert _default_load_fails(value), entry["name"]
    assert entry["unsized"] == "numpy-scalar" and type(value).__module__ == "numpy"
    assert getattr(value, "ndim", None) == 0, entry["name"]


@pytest.mark.parametrize(
    "entry",
    [e for e in DATA.get("method", []) if e.get("unsized_sequence")],
    ids=lambda e: e["name"],
)
def test_a_sized_method_over_a_list_without_a_size_returns_one_numpy_item(
    entry: dict[str, Any], tmp_path: Path
) -> None:
    """`rng.choice([8, 16])`, `rng.choice(["adam", "sgd"])`: one numpy item, refused."""
    value = _evaluate(entry["unsized_sequence_probe"], list(entry.get("requires", [])), tmp_path)
    assert _default_load_fails(value), entry["name"]
    assert entry["unsized_sequence"] == "numpy-scalar" and type(value).__module__ == "numpy"
    for items in ("[8, 16]", "(0.5, 1.5)", "['a', 'b']"):
        probe = entry["unsized_sequence_probe"].replace("['adam', 'sgd']", items)
        assert _default_load_fails(_evaluate(probe, ["numpy"], tmp_path)), probe


def test_unsized_choice_loads(tmp_path: Path) -> None:
    """`rng.choice(5)` is a Python int (measured): choice has no `unsized` entry."""
    assert not _default_load_fails(
        _evaluate("numpy.random.default_rng(0).choice(5)", ["numpy"], tmp_path)
    )
    assert not any(e["name"] == "choice" and e.get("unsized") for e in DATA["method"])


@pytest.mark.parametrize(
    "probe",
    [
        "numpy.random.default_rng(0).choice([8, 16, 32])",
        "numpy.random.default_rng(0).choice(('adam', 'sgd'))",
        "numpy.random.default_rng(0).choice(range(4))",
        "numpy.random.default_rng(0).choice(numpy.arange(3))",
        "numpy.random.RandomState(0).choice([0.1, 0.2])",
    ],
)
def test_a_choice_from_a_sequence_is_a_numpy_scalar(probe: str, tmp_path: Path) -> None:
    """draws.py: `rng.choice(seq)` without a size is one numpy item, refused (a number's draw
    is a Python int: test_unsized_choice_loads)."""
    value = _evaluate(probe, ["numpy"], tmp_path)
    assert _default_load_fails(value) and type(value).__module__ == "numpy", probe


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored")
@pytest.mark.parametrize("name", sorted(SPLITTERS))
def test_a_splitters_folds_are_numpy_arrays(name: str, tmp_path: Path) -> None:
    """splits.py: each `(train, test)` pair of a scikit-learn splitter holds numpy arrays."""
    import numpy
    import sklearn.model_selection

    X = numpy.arange(24).reshape(12, 2)
    y, groups = numpy.array([0, 1] * 6), numpy.repeat(numpy.arange(6), 2)
    given = {"LeavePGroupsOut": {"n_groups": 2}, "LeavePOut": {"p": 2}}
    given["PredefinedSplit"] = {"test_fold": [0, 1] * 6}
    splitter = getattr(sklearn.model_selection, name)(**given.get(name, {}))
    train, test = next(iter(splitter.split(X, y, groups)))
    for value in (train, test):
        assert isinstance(value, numpy.ndarray) and _default_load_fails(value), name


def test_a_legacy_choice_of_a_number_loads(tmp_path: Path) -> None:
    """draws.py: `np.random.choice(5)` is a Python int, unlike a choice from a list."""
    assert not _default_load_fails(_evaluate("numpy.random.choice(5)", ["numpy"], tmp_path))
    assert _default_load_fails(_evaluate("numpy.random.choice([1, 2])", ["numpy"], tmp_path))


@pytest.mark.parametrize(
    "entry", [e for e in DATA.get("call", []) if "sized" in e], ids=lambda e: e["name"]
)
def test_a_sized_call_without_a_size_loads(entry: dict[str, Any], tmp_path: Path) -> None:
    """`np.random.randint(0, 9)` is a Python int: the kind holds only given a size."""
    from ckpt_lsp.weights_only import weights_only_catalog

    value = _evaluate(entry["unsized_probe"], list(entry.get("requires", [])), tmp_path)
    assert not _default_load_fails(value)
    catalog = weights_only_catalog()
    sized = int(entry["sized"])
    assert catalog.for_call(entry["name"], sized) is None
    assert catalog.for_call(entry["name"], sized, frozenset({"size=None"})) is None
    assert catalog.for_call(entry["name"], sized + 1) is not None
    assert catalog.for_call(entry["name"], 0, frozenset({"size=3"})) is not None


def test_a_load_with_a_pickle_module_or_the_force_variable_opts_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `load_sites` counts as an opt-out: `pickle_module=` without `weights_only`, and
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set to a true value; "0" and an explicit
    `weights_only=True` still refuse."""
    import pickle

    import numpy

    path = tmp_path / "ckpt.pt"
    torch.save({"m": numpy.float64(1.0)}, path)
    assert torch.load(path, pickle_module=pickle)["m"] == 1.0
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "true")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert torch.load(path)["m"] == 1.0
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)


def test_lightning_hparams_hold_the_arguments_as_passed(tmp_path: Path) -> None:
    """hparam_reads.py: `module.hparams.x`, `["x"]` and `.get("x")` give back what the call
    passed (an Enum member, a numpy scalar stay refused; a float loads); the AttributeDict
    itself is refused even holding only plain values, a `dict(...)` of it loads."""
    lightning = pytest.importorskip("lightning")
    numpy = pytest.importorskip("numpy")
    from http import HTTPStatus  # an Enum a pickle finds by name

    class Lit(lightning.LightningModule):
        def __init__(self, stage=HTTPStatus.OK, lr=0.1, scale=None):  # noqa: ANN001
            super().__init__()
            self.save_hyperparameters()

    module = Lit(scale=numpy.float64(2.0))
    hparams = module.hparams
    for read in (hparams.stage, hparams["stage"], hparams.get("stage"), hparams.scale):
        assert _default_load_fails(read)
    assert not _default_load_fails(hparams.lr)
    assert _default_load_fails(Lit(stage="fit", scale=2.0).hparams)
    assert not _default_load_fails(dict(Lit(stage="fit", scale=2.0).hparams))


# what each [[prefix]] kind's classes subclass, or how one of them is recognized
_PREFIX_BASES = {
    "module": "torch.nn.Module",
    "optimizer": "torch.optim.Optimizer",
    "scheduler": "torch.optim.lr_scheduler.LRScheduler",
    "pruning-method": "torch.nn.utils.prune.BasePruningMethod",
    "torch-distribution": "torch.distributions.Distribution",
    "pandas-offset": "pandas._libs.tslibs.offsets.BaseOffset",
}


@pytest.mark.parametrize(
    "entry",
    [e for e in DATA.get("prefix", []) if e["name"] != "sklearn."],
    ids=lambda e: e["name"],
)
def test_every_class_under_a_prefix_is_of_its_kind(entry: dict[str, Any]) -> None:
    """A [[prefix]] types every capitalized name directly under its module: each one, unless
    excepted or typed by a kind's `types`, is a class of the prefix's kind (a new
    `torch.ao.quantization` name that is not a module must be excepted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # `pandas.offsets` is an attribute of pandas (its module is pandas.tseries.offsets)
        module = _resolve(entry["name"].rstrip("."))
    base = _resolve(_PREFIX_BASES[entry["kind"]])
    typed = {t for k in KINDS.values() for t in k.get("types", [])}
    excepted = set(entry.get("except", [])) | typed
    for name in dir(module):
        qualified = entry["name"] + name
        if not name[:1].isupper() or qualified in excepted:
            continue
        value = getattr(module, name)
        assert isinstance(value, type) and issubclass(value, base), qualified


# quantization and pruning values measured to load: a quantized or pruned model's state_dict
# (packed params and masks are tensors), a quantized dtype, the engine's name, the quantized
# weight's scale, zero point and integer tensor, a pruning method's amount
QUANT_PRUNE_LOADS = [
    "torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), "
    "{torch.nn.Linear}, dtype=torch.qint8).state_dict()",
    "torch.qint8",
    "torch.backends.quantized.engine",
    "torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), "
    "{torch.nn.Linear}, dtype=torch.qint8)[0].weight().q_scale()",
    "torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), "
    "{torch.nn.Linear}, dtype=torch.qint8)[0].weight().int_repr()",
    "torch.nn.utils.prune.l1_unstructured(torch.nn.Linear(2, 2), 'weight', 0.5).state_dict()",
    "torch.nn.utils.prune.L1Unstructured(amount=0.4).amount",
    "torch.nn.utils.prune.global_unstructured([(torch.nn.Linear(2, 2), 'weight')], "
    "pruning_method=torch.nn.utils.prune.L1Unstructured, amount=0.5)",
]


@pytest.mark.parametrize("expr", QUANT_PRUNE_LOADS)
def test_quantization_and_pruning_values_that_load(expr: str, tmp_path: Path) -> None:
    requires = ["torch.ao.quantization", "torch.nn.utils.prune"]
    assert not _default_load_fails(_evaluate(expr, requires, tmp_path)), expr
