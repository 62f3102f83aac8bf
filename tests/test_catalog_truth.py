"""The hazard catalog is data, so the runtime is its judge.

Every `[[hazard]]` with a probe is built for real, stored on an object, and pushed
through each save path: pickle, copy.deepcopy, torch.save(nn.Module) and the
pickling a spawn start does. The paths that fail must be exactly the entry's
`breaks`. Cited truth-table rows must exist and agree. Holders must really keep a
lambda alive, object-array constructors must really pickle yet fail np.save without
pickle, and the well-known traps that DO pickle must stay out of the catalog.

This file reads the TOML itself (not through ckpt_lsp.catalog) so that a loader bug
cannot hide a data bug.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import io
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
from support import shared

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
CATALOG_PATH = ROOT / "server" / "ckpt_lsp" / "data" / "hazards.toml"
TRUTH_PATH = shared.TRUTH_TABLE

PATHS = ("pickle", "torch.save", "spawn", "deepcopy")
RULE_CODES = {f"CKPT00{n}" for n in range(1, 10)}
HAZARD_KEYS = {"name", "rule", "what", "breaks", "kind", "returns", "truth", "probe", "requires"}
HAZARD_KEYS |= {"note", "when_arg", "when_called", "safe_when", "elements", "fix", "methods"}
HOLDER_KEYS = {"name", "what", "truth", "probe", "requires", "note"}
# Truth-table column for each save path.
TRUTH_COLUMNS = {"pickle": "pickle", "deepcopy": "deepcopy", "spawn": "spawn"}
TRUTH_COLUMNS["torch.save"] = "tsave_mod"

CATALOG: dict[str, Any] = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))
HAZARDS: list[dict[str, Any]] = CATALOG["hazard"]
# Hazards for some arguments only (torch.compile of a function, not of a module).
CONDITIONAL: list[dict[str, Any]] = CATALOG.get("conditional_hazard", [])
ENTRIES = HAZARDS + CONDITIONAL
HOLDERS: list[dict[str, Any]] = CATALOG["holder"]
OBJECT_ARRAY: dict[str, Any] = CATALOG["object_array"]


class _Holder:
    """A plain object holding the value, as a model's attribute would."""

    def __init__(self, value: object) -> None:
        self.attr = value


try:
    import torch

    class _ModHolder(torch.nn.Module):
        """An nn.Module holding the value in its __dict__, as `self.x = value` does."""

        def __init__(self, value: object) -> None:
            super().__init__()
            self.attr = value

except ModuleNotFoundError:  # torch is optional for this test
    torch = None  # type: ignore[assignment]


# ---------------------------------------------------------------- save paths ---
def _fails(action: Callable[[], object]) -> bool:
    try:
        action()
    except Exception:
        return True
    return False


def _pickle_fails(value: object) -> bool:
    return _fails(lambda: pickle.loads(pickle.dumps(_Holder(value))))


def _deepcopy_fails(value: object) -> bool:
    return _fails(lambda: copy.deepcopy(_Holder(value)))


def _torch_save_fails(value: object) -> bool:
    def run() -> None:
        buf = io.BytesIO()
        torch.save(_ModHolder(value), buf)
        buf.seek(0)
        torch.load(buf, weights_only=False)

    return _fails(run)


def _spawn_fails(value: object) -> bool:
    """Pickle the holder the way a spawn/forkserver start does in the parent.

    Same method as the truth table (a spawn Popen marked as "spawning" so that
    multiprocessing's reducers for sockets, locks and queues take the spawn branch).
    When the parent's dump succeeds the child's load is tried too: a value that saves
    but cannot be rebuilt (numpy.finfo) kills the worker as it starts. Nothing whose
    dump collected file descriptors is loaded: that would give them a second owner here.
    """
    import multiprocessing.context
    import multiprocessing.popen_spawn_posix
    import multiprocessing.reduction

    class _FakeSpawnPopen(multiprocessing.popen_spawn_posix.Popen):
        def __init__(self) -> None:  # launches nothing; collects fds to pass
            self._fds: list[int] = []

    popen = _FakeSpawnPopen()
    multiprocessing.context.set_spawning_popen(popen)
    try:
        buf = io.BytesIO()
        if _fails(lambda: multiprocessing.reduction.ForkingPickler(buf, 4).dump(_Holder(value))):
            return True
    finally:
        multiprocessing.context.set_spawning_popen(None)
    return not popen._fds and _fails(lambda: pickle.loads(buf.getvalue()))


def measured_breaks(value: object) -> tuple[set[str], set[str]]:
    """(paths that fail, paths that could be measured here)."""
    checks: dict[str, Callable[[object], bool]] = {
        "pickle": _pickle_fails,
        "deepcopy": _deepcopy_fails,
    }
    if torch is not None:
        checks["torch.save"] = _torch_save_fails
    if os.name == "posix":
        checks["spawn"] = _spawn_fails
    return {p for p, check in checks.items() if check(value)}, set(checks)


# ------------------------------------------------------------------- probes ---
def _namespace(requires: list[str]) -> dict[str, Any]:
    """Import each required module; bind its top-level package for the probe."""
    ns: dict[str, Any] = {}
    for mod in requires:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            pytest.skip(f"probe needs {mod}: {exc}")
        top = mod.split(".")[0]
        ns[top] = sys.modules[top]
    return ns


def build(entry: dict[str, Any], tmp: Path) -> object:
    ns = _namespace(entry.get("requires", []))
    ns["tmp"] = str(tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eval(entry["probe"], ns)  # noqa: S307 - probes are our own catalog data


def dispose(value: object) -> None:
    """Release what a probe built: processes, pools, threads' queues, files, sockets."""
    if isinstance(value, (tuple, list)):
        for item in value:
            dispose(item)
        return
    if isinstance(value, subprocess.Popen):
        value.kill()
        value.wait()
        return
    cls = type(value)
    if callable(getattr(cls, "terminate", None)) and callable(getattr(cls, "join", None)):
        try:  # multiprocessing pools
            value.terminate()
            value.join()
        except Exception:
            pass
        return
    for method in ("shutdown", "abort", "close", "join_thread"):
        # look on the type: ctypes.CDLL's __getattr__ would hand back libc's abort()
        if not callable(getattr(type(value), method, None)):
            continue
        fn = getattr(value, method)
        if callable(fn):
            with contextlib.suppress(Exception):
                fn()


# -------------------------------------------------------------- truth table ---
def _truth_rows() -> dict[int, dict[str, str]]:
    shared.require(TRUTH_PATH)
    rows: dict[int, dict[str, str]] = {}
    header: list[str] = []
    for line in TRUTH_PATH.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and cells[0] == "#":
            header = cells
        elif header and cells and cells[0].isdigit():
            rows[int(cells[0])] = dict(zip(header, cells))
    return rows


def _cell_fails(cell: str) -> bool | None:
    """OK / OK* = the path works; n/a or missing = unknown; anything else fails."""
    if not cell or cell in {"n/a", "–"}:
        return None
    return not cell.startswith("OK")


# -------------------------------------------------------------------- tests ---
def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries]


def test_catalog_is_not_empty() -> None:
    assert len(HAZARDS) > 100
    assert {h["rule"] for h in HAZARDS} == RULE_CODES - {"CKPT003", "CKPT004"}
    assert HOLDERS and OBJECT_ARRAY["constructors"]


def test_names_are_unique() -> None:
    # a name may be a hazard both when called and when referenced (hashlib.new)
    names = [(h.get("kind", "call"), h["name"]) for h in ENTRIES]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    holders = [h["name"] for h in HOLDERS]
    assert len(holders) == len(set(holders))


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_hazard_schema(entry: dict[str, Any]) -> None:
    assert set(entry) <= HAZARD_KEYS, f"unknown keys {set(entry) - HAZARD_KEYS}"
    assert re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+", entry["name"]), "qualified name"
    assert entry["rule"] in RULE_CODES
    assert entry["rule"] not in {"CKPT003", "CKPT004"}, "syntax/object_array rules have no names"
    assert isinstance(entry["what"], str) and entry["what"].strip()
    breaks = entry["breaks"]
    assert breaks and len(breaks) == len(set(breaks)) and set(breaks) <= set(PATHS)
    assert entry.get("kind", "call") in {"call", "value"}
    assert isinstance(entry.get("returns", ""), str)
    assert all(isinstance(r, int) for r in entry["truth"])
    assert isinstance(entry["probe"], str)
    assert all(isinstance(m, str) and m for m in entry.get("requires", []))
    is_conditional = any(entry is c for c in CONDITIONAL)
    assert ("when_arg" in entry) == is_conditional, "when_arg belongs to conditional_hazard"
    when = entry.get("when_arg", "function")
    assert when == "function" or when.startswith(("suffix:", "keyword:"))
    backed = entry["truth"] or entry["probe"]
    assert backed or entry.get("note", "").strip(), "needs truth rows, a probe, or a note"


def _resolve(dotted: str) -> object | None:
    """The object a dotted name reaches at runtime, or None when it is not importable."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


METHODS = [h for h in HAZARDS if h["name"].rpartition(".")[0].rpartition(".")[2][:1].isupper()]


@pytest.mark.parametrize("entry", METHODS, ids=_ids(METHODS))
def test_method_entries_name_real_methods(entry: dict[str, Any]) -> None:
    """`T.m` must be reachable: T is returned by an entry or is a class, and has m."""
    owner, _, method = entry["name"].rpartition(".")
    returned = {h["returns"] for h in HAZARDS if "returns" in h}
    cls = _resolve(owner)
    package = owner.split(".")[0]
    if cls is None and importlib.util.find_spec(package) is None:
        pytest.skip(f"needs {package}, not installed here (scripts/setup.sh installs it)")
    if cls is None:
        assert owner in returned, f"nothing returns {owner} and it is not importable here"
        return
    assert isinstance(cls, type), f"{owner} is not a class"
    assert hasattr(cls, method), f"{owner} has no {method}"


WITH_METHODS = [h for h in ENTRIES if h.get("methods")]


@pytest.mark.parametrize("entry", WITH_METHODS, ids=_ids(WITH_METHODS))
def test_bound_methods_fail_like_their_object(entry: dict[str, Any], tmp_path: Path) -> None:
    """`methods` lists bound methods that hold the value: each must fail pickle too."""
    value = build(entry, tmp_path)
    try:
        for method in entry["methods"]:
            assert _pickle_fails(getattr(value, method)), f"{entry['name']}().{method} pickled"
    finally:
        dispose(value)


@pytest.mark.parametrize("entry", ENTRIES + HOLDERS, ids=_ids(ENTRIES + HOLDERS))
def test_truth_rows_exist(entry: dict[str, Any]) -> None:
    rows = _truth_rows()
    missing = [r for r in entry["truth"] if r not in rows]
    assert missing == [], f"rows {missing} are not in {TRUTH_PATH.name}"


@pytest.mark.parametrize(
    "entry", [h for h in ENTRIES if h["truth"]], ids=_ids([h for h in ENTRIES if h["truth"]])
)
def test_breaks_agree_with_truth_rows(entry: dict[str, Any]) -> None:
    rows = _truth_rows()
    for number in entry["truth"]:
        row = rows[number]
        for path in PATHS:
            fails = _cell_fails(row.get(TRUTH_COLUMNS[path], ""))
            if fails is None:
                continue
            assert fails == (path in entry["breaks"]), (
                f"row {number} ({row['pattern']}) says {path}: {row[TRUTH_COLUMNS[path]]!r}"
            )


PROBED = [h for h in ENTRIES if h["probe"]]


# A failed deepcopy leaves a half-built copy whose __del__ complains: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("entry", PROBED, ids=_ids(PROBED))
def test_probe_breaks_exactly_the_declared_paths(entry: dict[str, Any], tmp_path: Path) -> None:
    value = build(entry, tmp_path)
    try:
        assert value is not None, "probe built nothing"
        failing, measured = measured_breaks(value)
        assert failing == set(entry["breaks"]) & measured
    finally:
        if entry.get("kind", "call") == "call":  # never close sys.stdout or os.environ
            dispose(value)


@pytest.mark.parametrize("entry", HOLDERS, ids=_ids(HOLDERS))
def test_holder_keeps_a_lambda_alive(entry: dict[str, Any], tmp_path: Path) -> None:
    assert set(entry) <= HOLDER_KEYS
    assert entry["what"].strip() and entry["probe"] and "lambda" in entry["probe"]
    assert entry["probe"].split("(")[0] == entry["name"].replace("builtins.", "")
    value = build(entry, tmp_path)
    assert _pickle_fails(value), f"{entry['name']}(lambda) pickled"
    # the same holder around a builtin pickles: the lambda is the hazard, not the holder
    assert not _pickle_fails(build(dict(entry, probe=_swap_lambda(entry["probe"])), tmp_path))


def _swap_lambda(probe: str) -> str:
    """Replace each `lambda ...: expr` argument with a picklable builtin (`max`)."""
    return re.sub(r"lambda[^:]*:\s*\w+", "max", probe)


# numpy constructors -> how to call each with an object dtype
OBJECT_BUILDERS: dict[str, Callable[[Any, object], Any]] = {
    "numpy.array": lambda np, dt: np.array([1, 2, 3], dtype=dt),
    "numpy.asarray": lambda np, dt: np.asarray([1, 2], dtype=dt),
    "numpy.asanyarray": lambda np, dt: np.asanyarray([1, 2], dtype=dt),
    "numpy.empty": lambda np, dt: np.empty(3, dtype=dt),
    "numpy.zeros": lambda np, dt: np.zeros(3, dtype=dt),
    "numpy.ones": lambda np, dt: np.ones(3, dtype=dt),
    "numpy.full": lambda np, dt: np.full(3, 7, dtype=dt),
    "numpy.empty_like": lambda np, dt: np.empty_like(np.ones(3), dtype=dt),
    "numpy.zeros_like": lambda np, dt: np.zeros_like(np.ones(3), dtype=dt),
    "numpy.ones_like": lambda np, dt: np.ones_like(np.ones(3), dtype=dt),
    "numpy.full_like": lambda np, dt: np.full_like(np.ones(3), 7, dtype=dt),
    "numpy.fromiter": lambda np, dt: np.fromiter(iter([1, 2]), dtype=dt),
    "numpy.ndarray": lambda np, dt: np.ndarray((3,), dtype=dt),
}


def test_object_array_constructors_have_builders() -> None:
    assert sorted(OBJECT_ARRAY["constructors"]) == sorted(OBJECT_BUILDERS)
    assert OBJECT_ARRAY["truth"]


@pytest.mark.parametrize("name", sorted(OBJECT_BUILDERS))
def test_object_array_pickles_but_not_weights_only(name: str, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    for dtype in (object, "O", np.object_):
        arr = OBJECT_BUILDERS[name](np, dtype)
        assert arr.dtype == np.dtype(object)
        assert not _pickle_fails(arr)
        with pytest.raises(ValueError, match="allow_pickle"):
            np.save(tmp_path / "a.npy", arr, allow_pickle=False)
    assert np.save(tmp_path / "f.npy", OBJECT_BUILDERS[name](np, float), allow_pickle=False) is None


def test_object_dtype_spellings() -> None:
    np = pytest.importorskip("numpy")
    for spelling in OBJECT_ARRAY["dtype_strings"]:
        assert np.dtype(spelling) == np.dtype(object), spelling
    resolved = {"builtins.object": object, "numpy.object_": np.object_}
    assert set(OBJECT_ARRAY["dtype_names"]) == set(resolved)
    for name in OBJECT_ARRAY["dtype_names"]:
        assert np.dtype(resolved[name]) == np.dtype(object)


# Look-alikes that DO pickle: they must never enter the catalog (the docs cite these).
NOT_HAZARDS: list[tuple[str, str, list[str]]] = [
    ("io.BytesIO", "io.BytesIO(b'x')", ["io"]),
    ("io.StringIO", "io.StringIO('x')", ["io"]),
    ("re.compile", "re.compile('a+')", ["re"]),
    ("logging.getLogger", "logging.getLogger('ckpt-lsp.nh')", ["logging"]),
    ("logging.NullHandler", "logging.NullHandler()", ["logging"]),
    ("builtins.iter", "iter([1, 2])", []),
    ("builtins.map", "map(abs, [1, 2])", []),
    ("builtins.zip", "zip([1], [2])", []),
    ("itertools.count", "itertools.count()", ["itertools"]),
    ("itertools.cycle", "itertools.cycle([1])", ["itertools"]),
    ("operator.itemgetter", "operator.itemgetter(0)", ["operator"]),
    ("functools.partial", "functools.partial(abs, 1)", ["functools"]),
    ("collections.defaultdict", "collections.defaultdict(list)", ["collections"]),
    ("numpy.random.default_rng", "numpy.random.default_rng(0)", ["numpy"]),
    ("numpy.memmap", "numpy.memmap(tmp + '/m.dat', mode='w+', shape=(2,))", ["numpy"]),
    ("tempfile.TemporaryDirectory", "tempfile.TemporaryDirectory(dir=tmp)", ["tempfile"]),
    ("pathlib.Path", "pathlib.Path(tmp)", ["pathlib"]),
    ("asyncio.Lock", "asyncio.Lock()", ["asyncio"]),
    ("asyncio.Event", "asyncio.Event()", ["asyncio"]),
    (
        "weakref.finalize",
        "weakref.finalize(logging.getLogger('nh'), abs, 1)",
        ["weakref", "logging"],
    ),
    ("weakref.proxy", "weakref.proxy(logging.getLogger('ckpt-lsp.nh'))", ["weakref", "logging"]),
    ("random.Random", "random.Random(0)", ["random"]),
    ("tqdm.tqdm(disable=True)", "tqdm.tqdm(total=1, disable=True)", ["tqdm"]),
    ("torch.Generator", "torch.Generator()", ["torch"]),
    ("torch.optim.SGD", "torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)", ["torch"]),
    ("torch.utils.data.DataLoader", "torch.utils.data.DataLoader([1, 2])", ["torch.utils.data"]),
    ("torch.compile(module)", "torch.compile(torch.nn.Linear(1, 1))", ["torch"]),
    ("requests.Session", "requests.Session()", ["requests"]),
]


@pytest.mark.parametrize("name,probe,requires", NOT_HAZARDS, ids=[n[0] for n in NOT_HAZARDS])
def test_lookalike_pickles_and_is_not_cataloged(
    name: str, probe: str, requires: list[str], tmp_path: Path
) -> None:
    cataloged = {h["name"] for h in HAZARDS}
    assert name not in cataloged
    value = build({"probe": probe, "requires": requires}, tmp_path)
    assert not _pickle_fails(value), f"{name} does not pickle: it is a hazard after all"
    assert not _deepcopy_fails(value)


# ------------------------------------------------------- rule documentation ---
DOCS = ROOT / "docs" / "rules"
DOC_SECTIONS = (
    "## What it finds",
    "## Why it breaks",
    "## Example",
    "## How to fix",
    "## What is not flagged",
    "## Suppression",
)


@pytest.mark.parametrize("code", sorted(RULE_CODES))
def test_rule_page_has_title_and_sections(code: str) -> None:
    from ckpt_lsp.rules import RULES

    text = (DOCS / f"{code}.md").read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# {code}: {RULES[code].name}"
    positions = [text.find(section) for section in DOC_SECTIONS]
    assert -1 not in positions, f"missing {DOC_SECTIONS[positions.index(-1)]}"
    assert positions == sorted(positions), "sections out of order"
    assert f"# ckpt: ignore[{code}]" in text and f"# noqa: {code}" in text
    assert f"# {code}" in text.split("## Example")[1], "the example marks its finding"


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_rule_page_lists_the_entry(entry: dict[str, Any]) -> None:
    """The page a diagnostic links to names every kind of value the rule reports."""
    text = (DOCS / f"{entry['rule']}.md").read_text(encoding="utf-8")
    owner, _, last = entry["name"].rpartition(".")
    if last == "__getitem__":
        last = "[" if owner.startswith("h5py") else last
    assert last.lstrip("_") in text, f"{entry['name']} is not mentioned in {entry['rule']}.md"


def test_rule_pages_cite_existing_rows() -> None:
    rows = _truth_rows()
    for page in sorted(DOCS.glob("CKPT00*.md")):
        for group in re.findall(r"\[(\d+(?:\s*[-,]\s*\d+)*)\]", page.read_text(encoding="utf-8")):
            for number in re.findall(r"\d+", group):
                assert int(number) in rows, f"{page.name} cites row {number}"


SAFE_WHEN = [e for e in ENTRIES if e.get("safe_when") and e.get("probe")]


@pytest.mark.parametrize("entry", SAFE_WHEN, ids=_ids(SAFE_WHEN))
def test_safe_when_arguments_make_it_pickle(entry: dict[str, Any], tmp_path: Path) -> None:
    """`safe_when` claims (tqdm(disable=True) pickles) are proven like the hazards are."""
    import ast

    call = ast.parse(entry["probe"], mode="eval").body
    assert isinstance(call, ast.Call), "safe_when needs a call probe"
    call.keywords = [kw for kw in call.keywords if kw.arg not in entry["safe_when"]]
    call.keywords += [
        ast.keyword(arg=k, value=ast.Constant(v)) for k, v in entry["safe_when"].items()
    ]
    safe = dict(entry, probe=ast.unparse(call))
    value = build(safe, tmp_path)
    try:
        pickle.loads(pickle.dumps(value))
    finally:
        dispose(value)


ELEMENTS = [e for e in ENTRIES if e.get("elements") and e.get("probe")]


@pytest.mark.parametrize("entry", ELEMENTS, ids=_ids(ELEMENTS))
def test_elements_claims_hold_after_consuming(entry: dict[str, Any], tmp_path: Path) -> None:
    """`elements`: list(value) still fails to pickle (the entries themselves do not)."""
    (tmp_path / "f").write_text("x")
    value = build(entry, tmp_path)
    try:
        items = list(value)
        assert items, "probe yielded nothing to check"
        assert _pickle_fails(items)
    finally:
        dispose(value)
