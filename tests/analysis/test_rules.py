"""Each rule's VALID and INVALID examples: the traps the runtime says pickle are VALID.

Every snippet is the body of `__init__` of a `torch.nn.Module` subclass, so the
table reads like the code people write.
"""

from __future__ import annotations

import textwrap

import pytest
from ckpt_lsp.analysis.analyzer import analyze_text

HEADER = """\
import functools, gzip, hashlib, importlib, io, logging, mmap, operator, os, re, socket
import sqlite3, ssl, subprocess, sys, tempfile, threading, queue, weakref, zlib, contextvars
import collections
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from concurrent.futures import ThreadPoolExecutor


def module_fn(x):
    return x


class Model(nn.Module):
    def __init__(self, path="x.txt"):
        super().__init__()
"""


def findings_for(body: str) -> list[tuple[str, str]]:
    source = HEADER + textwrap.indent(textwrap.dedent(body), " " * 8)
    return [(f.code, f.attribute) for f in analyze_text(source, "model.py")]


INVALID = {
    "CKPT001": [
        "self.f = open(path)",
        "self.f = io.open(path, 'rb')",
        "self.f = gzip.open(path)",
        "self.f = tempfile.NamedTemporaryFile()",
        "self.m = mmap.mmap(-1, 16)",
        "self.h = logging.FileHandler(path)",
        "self.out = sys.stdout",
        "with open(path) as fh:\n    self.f = fh",
        "fh = open(path)\nself.f = fh",
        "setattr(self, 'f', open(path))",
        "self.f: io.TextIOWrapper = open(path)",
        "self.f, self.n = open(path), 3",
    ],
    "CKPT002": [
        "self.s = socket.socket()",
        "self.db = sqlite3.connect(':memory:')",
        "self.db = sqlite3.connect(':memory:')\nself.cur = self.db.cursor()",
        "self.ctx = ssl.create_default_context()",
        "self.proc = subprocess.Popen(['true'])",
    ],
    "CKPT003": [
        "self.fn = lambda x: x",
        "def helper(x):\n    return x\nself.fn = helper",
        "class Local:\n    pass\nself.obj = Local()",
        "self.fn = functools.partial(lambda x, y: x, 1)",
        "self.counts = collections.defaultdict(lambda: 0)",
        "self.fns = [lambda x: x, module_fn]",
        "self.fns = {'id': lambda x: x}",
        "self.fn = (lambda x: x) if path else None",
    ],
    "CKPT004": [
        "self.a = np.array([1, None], dtype=object)",
        "self.a = np.empty(3, dtype='O')",
        "self.a = np.zeros(3, dtype=np.object_)",
        "self.a = np.asarray([1, 'a'], object)",
    ],
    "CKPT005": [
        "self.lock = threading.Lock()",
        "self.lock = threading.RLock()",
        "self.ev = threading.Event()",
        "self.q = queue.Queue()",
        "self.pool = ThreadPoolExecutor(2)",
        "self.tls = threading.local()",
    ],
    "CKPT006": [
        "self.g = (i for i in range(3))",
        "self.v = {'a': 1}.keys()",
        "self.p = self.parameters()",
        "self.d = os.scandir('.')",
    ],
    "CKPT007": [
        "self.np = np",
        "self.F = F",
        "self.mod = importlib.import_module('json')",
    ],
    "CKPT008": [
        "self.r = weakref.ref(self)",
        "self.s = weakref.WeakSet()",
    ],
    "CKPT009": [
        "self.h = hashlib.sha256()",
        "self.z = zlib.compressobj()",
        "self.env = os.environ",
        "self.var = contextvars.ContextVar('v')",
        "self.fi = torch.finfo(torch.float16)",
        "info = torch.iinfo(torch.int64)\nself.info = info",
        "self.parse = np.frompyfunc(float, 1, 1)",
        "self.fi = np.finfo(np.float32)",  # saves, then fails to load
    ],
}

VALID = [
    "self.log = logging.getLogger(__name__)",
    "self.neg = torch.finfo(torch.float16).min",
    "info = torch.iinfo(torch.int64)\nself.top = info.max",
    "self.tiny = np.finfo(np.float32).tiny",
    "self.pat = re.compile('a+')",
    "self.buf = io.BytesIO()",
    "self.sbuf = io.StringIO()",
    "self.it = iter([1, 2])",
    "self.m = map(module_fn, [1, 2])",
    "self.z = zip([1], [2])",
    "self.get = operator.itemgetter(0)",
    "self.fn = functools.partial(module_fn, 1)",
    "self.fn = self.forward",
    "self.act = torch.relu",
    "self.act = F.gelu",
    "self.rng = np.random.default_rng(0)",
    "self.f = None",
    "self.a = np.array([1.0, 2.0])",
    "self.a = np.zeros(3, dtype=np.float32)",
    "self.params = list(self.parameters())",
    "self.d = collections.defaultdict(list)",
    "self.tmp = tempfile.TemporaryDirectory()",
    "self.fn = module_fn",
    "self.ring = [1]\nself.ring.append(self.ring)",
    "self.x = open",
    "self.keys = sorted({'a': 1}.keys())",
]


@pytest.mark.parametrize(
    ("code", "body"), [(code, body) for code, bodies in INVALID.items() for body in bodies]
)
def test_invalid_is_flagged(code: str, body: str) -> None:
    found = findings_for(body)
    assert found, f"no finding for: {body}"
    assert code in {c for c, _ in found}, found


@pytest.mark.parametrize("body", VALID)
def test_valid_is_not_flagged(body: str) -> None:
    assert findings_for(body) == []


def test_class_level_lambda_is_not_flagged() -> None:
    source = "from torch import nn\nclass M(nn.Module):\n    act = lambda x: x\n"
    assert analyze_text(source) == []


def test_module_level_lambda_stored_on_instance_is_flagged() -> None:
    # pickle looks a function up by its __qualname__ ("<lambda>"), which fails
    source = (
        "from torch import nn\nsquash = lambda x: x\n"
        "class M(nn.Module):\n    def __init__(self):\n        self.fn = squash\n"
    )
    assert [f.code for f in analyze_text(source)] == ["CKPT003"]


def test_assignment_in_any_method_is_flagged() -> None:
    source = (
        "import threading\nfrom torch import nn\n"
        "class M(nn.Module):\n"
        "    def setup(self):\n        self.lock = threading.Lock()\n"
    )
    assert [(f.code, f.attribute) for f in analyze_text(source)] == [("CKPT005", "lock")]


def test_generator_method_result_is_flagged() -> None:
    source = (
        "from torch.utils.data import IterableDataset\n"
        "class D(IterableDataset):\n"
        "    def __init__(self):\n        self.stream = self._rows()\n"
        "    def _rows(self):\n        yield 1\n"
    )
    assert [f.code for f in analyze_text(source)] == ["CKPT006"]


def test_factory_in_same_file_is_followed() -> None:
    source = (
        "import sqlite3\nfrom torch.utils.data import Dataset\n"
        "def connect(path):\n    conn = sqlite3.connect(path)\n    return conn\n"
        "class D(Dataset):\n    def __init__(self):\n        self.db = connect(':memory:')\n"
    )
    found = analyze_text(source)
    assert [f.code for f in found] == ["CKPT002"]
    assert "connect()" in found[0].message


def test_local_import_inside_method_resolves() -> None:
    source = (
        "from torch.utils.data import Dataset\n"
        "class D(Dataset):\n    def __init__(self, p):\n        import h5py\n"
        "        self.h5 = h5py.File(p, 'r')\n"
    )
    assert [f.code for f in analyze_text(source)] == ["CKPT001"]


def test_helper_instance_holding_a_lock_is_flagged() -> None:
    source = (
        "import threading\nfrom torch import nn\n"
        "class Meter:\n    def __init__(self):\n        self.lock = threading.Lock()\n"
        "class M(nn.Module):\n    def __init__(self):\n        self.meter = Meter()\n"
    )
    found = analyze_text(source)
    assert [(f.code, f.attribute) for f in found] == [("CKPT005", "meter")]
    assert "`Meter` instance" in found[0].message


def test_lambda_default_argument_is_flagged() -> None:
    source = (
        "from torch import nn\nclass M(nn.Module):\n"
        "    def __init__(self, act=lambda x: x, scale=None):\n"
        "        self.act = act\n        self.scale = scale\n"
    )
    assert [(f.code, f.attribute) for f in analyze_text(source)] == [("CKPT003", "act")]


def test_module_level_hazard_stored_on_instance() -> None:
    source = (
        "import threading\nfrom torch import nn\n_LOCK = threading.Lock()\nNAME = 'x'\n"
        "class M(nn.Module):\n    def __init__(self):\n"
        "        self.lock = _LOCK\n        self.name = NAME\n"
    )
    assert [(f.code, f.attribute) for f in analyze_text(source)] == [("CKPT005", "lock")]


def test_object_setattr_and_container_mutation() -> None:
    source = (
        "import threading\nfrom torch import nn\nclass M(nn.Module):\n"
        "    def __init__(self):\n"
        "        object.__setattr__(self, 'lock', threading.Lock())\n"
        "        self.hooks = []\n        self.table = {}\n        self.plain = []\n"
        "        self.hooks.append(lambda m: m)\n        self.table['f'] = lambda: 0\n"
        "        self.plain.append(1)\n"
    )
    found = [(f.code, f.attribute, f.location.row) for f in analyze_text(source)]
    assert found == [("CKPT005", "lock", 5), ("CKPT003", "hooks", 6), ("CKPT003", "table", 7)]


def test_path_open_and_staticmethod_factory() -> None:
    source = (
        "import sqlite3\nfrom pathlib import Path\nfrom torch.utils.data import Dataset\n"
        "class D(Dataset):\n    def __init__(self, root='.'):\n"
        "        self.root = Path(root)\n        self.index = (self.root / 'index.txt').open()\n"
        "        self.db = D._connect(':memory:')\n"
        "    @staticmethod\n    def _connect(p):\n        return sqlite3.connect(p)\n"
    )
    assert [(f.code, f.attribute) for f in analyze_text(source)] == [
        ("CKPT001", "index"),
        ("CKPT002", "db"),
    ]


def test_mixin_of_a_model_in_the_same_file() -> None:
    source = (
        "from torch import nn\nclass LogMixin:\n    def __init__(self):\n"
        "        self.log_file = open('train.log', 'a')\n"
        "class M(LogMixin, nn.Module):\n    pass\n"
        "class Unused:\n    def __init__(self):\n        self.f = open('x')\n"
    )
    found = [(f.class_name, f.attribute) for f in analyze_text(source)]
    assert found == [("LogMixin", "log_file")]


def test_torch_compile_of_a_function_but_not_of_a_module() -> None:
    source = (
        "import torch\nfrom torch import nn\ndef step(x):\n    return x\n"
        "class M(nn.Module):\n    def __init__(self):\n"
        "        self.net = torch.compile(nn.Linear(2, 2))\n"
        "        self.step = torch.compile(step)\n"
    )
    assert [(f.code, f.attribute) for f in analyze_text(source)] == [("CKPT009", "step")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("P = collections.namedtuple('P', 'a b')\nself.kind = P", ["CKPT003"]),
        ("P = collections.namedtuple('P', 'a b')\nself.p = P(1, 2)", ["CKPT003"]),
        ("self.a = np.full(3, None)", ["CKPT004"]),
        ("self.a = np.array([1, None, 'x'])", ["CKPT004"]),
        ("self.a = np.array([1, 2, 3])", []),
        ("self.z = np.load('weights.npz')", ["CKPT001"]),
        ("self.z = np.load('weights.npy')", []),
        ("self.env = dict(os.environ)", []),
        ("self.env = os.environ.copy()", []),
        ("self.fns = list([lambda x: x])", ["CKPT003"]),
        ("self.tmp = open(path)\nself.head = self.tmp.readline()\nself.tmp = None", []),
        ("self.g = (i for i in range(3))\nself.g = list(self.g)", []),
        ("self.f = open(path)\ndel self.f", []),
        ("self.f = open(path)\nif path:\n    self.f = None", ["CKPT001"]),
    ],
)
def test_flow_and_inference(body: str, expected: list[str]) -> None:
    assert [c for c, _ in findings_for(body)] == expected


def test_lazy_open_outside_init_is_the_fix_not_a_hazard() -> None:
    source = (
        "import h5py\nfrom torch.utils.data import Dataset\nclass D(Dataset):\n"
        "    def __init__(self, p):\n        self.p = p\n        self._file = None\n"
        "    def __getitem__(self, i):\n        if self._file is None:\n"
        "            self._file = h5py.File(self.p, 'r')\n        return self._file['x'][i]\n"
        "    def reopen(self):\n        self._other = h5py.File(self.p, 'r')\n"
    )
    assert [f.attribute for f in analyze_text(source)] == ["_other"]


def test_disabled_tqdm_pickles() -> None:
    source = (
        "from tqdm import tqdm\nfrom torch import nn\nclass M(nn.Module):\n"
        "    def __init__(self):\n        self.quiet = tqdm(total=3, disable=True)\n"
        "        self.loud = tqdm(total=3)\n"
    )
    assert [f.attribute for f in analyze_text(source)] == ["loud"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("self.f = codecs.open(path, 'w', 'utf-8')", ["CKPT001"]),
        ("self.it = enumerate(i for i in range(3))", ["CKPT006"]),
        ("self.it = enumerate(sorted([3, 1]))", []),
        ("self.fwd = torch.no_grad()(module_fn)", ["CKPT003"]),
        ("self.fwd = self.forward", []),
        ("self.cached = functools.lru_cache(maxsize=8)(self.__init__)", ["CKPT003"]),
        ("self.cached = functools.lru_cache(module_fn)", ["CKPT003"]),
        ("self.norm = staticmethod(module_fn)", ["CKPT009"]),
        ("self.hooks = [print]\nself.hooks += [lambda m: None]", ["CKPT003"]),
        ("self.ns = collections.namedtuple('N', 'a')\n", ["CKPT003"]),
        ("self.a = np.array([{'obs': 0}] * 4)", ["CKPT004"]),
        ("self.ev = __import__('multiprocessing').Event()", []),
    ],
)
def test_round_two_values(body: str, expected: list[str]) -> None:
    assert [c for c, _ in findings_for(body)] == expected


def test_attribute_of_an_attribute_taints_the_holder() -> None:
    source = (
        "import types\nfrom torch import nn\nclass M(nn.Module):\n    def __init__(self):\n"
        "        self.ns = types.SimpleNamespace()\n        self.ns.sink = open('x', 'w')\n"
    )
    assert [(f.code, f.attribute, f.location.row) for f in analyze_text(source)] == [
        ("CKPT001", "ns", 5)
    ]


def test_multiprocessing_context_methods() -> None:
    source = (
        "import multiprocessing as mp\nfrom torch import nn\nclass M(nn.Module):\n"
        "    def __init__(self):\n        self.ev = mp.get_context('spawn').Event()\n"
        "        ctx = mp.get_context('fork')\n        self.q = ctx.Queue()\n"
    )
    assert [f.attribute for f in analyze_text(source)] == ["ev", "q"]


def test_lazy_open_through_a_helper_method() -> None:
    source = (
        "import lmdb\nfrom torch.utils.data import Dataset\nclass D(Dataset):\n"
        "    def __init__(self, p):\n        self.p = p\n"
        "    def _open(self):\n        self.env = lmdb.open(self.p)\n"
        "        self.txn = self.env.begin()\n"
        "    def __getitem__(self, i):\n        if not hasattr(self, 'txn'):\n"
        "            self._open()\n        return self.txn.get(b'k')\n"
    )
    assert analyze_text(source) == []
    eager = source.replace("        self.p = p\n", "        self.p = p\n        self._open()\n")
    assert [f.attribute for f in analyze_text(eager)] == ["env", "txn"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("self.sched = LambdaLR(None, lambda s: 1.0)", ["CKPT003"]),
        ("self.loader = DataLoader([1], collate_fn=lambda b: b)", ["CKPT003"]),
        ("self.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))", []),
        ("self.best = max([1, 2], key=lambda v: -v)", []),
        ("self.it = iter(DataLoader([1, 2]))", ["CKPT006"]),
        ("self.it = iter([1, 2])", []),
        ("self.rec = np.zeros(2, dtype=[('id', 'i4'), ('obj', 'O')])", ["CKPT004"]),
        ("self.m = re.compile('a').match('a')", ["CKPT009"]),
        ("self.p = re.compile('a')", []),
        ("try:\n    pass\nexcept Exception as e:\n    self.tb = e.__traceback__", ["CKPT006"]),
        ("self.header = __import__('struct').Struct('<I')", []),
    ],
)
def test_round_three_values(body: str, expected: list[str]) -> None:
    source_body = (
        "from torch.utils.data import DataLoader\n"
        "from torch.optim.lr_scheduler import LambdaLR\n" + body
    )
    assert [c for c, _ in findings_for(source_body)] == expected


def test_registry_lookup_by_key_and_imported_lambdas(tmp_path) -> None:
    from ckpt_lsp.analysis.analyzer import Analyzer
    from ckpt_lsp.analysis.index import ProjectIndex

    (tmp_path / "common.py").write_text(
        "import re\nimport torch\nquick = lambda x: x\n"
        "ACTS = {'quick': quick, 'relu': torch.relu}\nVERSION = re.compile('v')\n"
    )
    model = (
        "from torch import nn\nfrom common import ACTS, quick, VERSION\n"
        "class M(nn.Module):\n    def __init__(self):\n"
        "        self.a = ACTS['quick']\n        self.b = ACTS['relu']\n"
        "        self.c = quick\n        self.d = VERSION.match('v1')\n        self.e = VERSION\n"
    )
    (tmp_path / "model.py").write_text(model)
    index = ProjectIndex(tmp_path)
    index.scan([tmp_path / "common.py", tmp_path / "model.py"])
    found = Analyzer(None, index).analyze(str(tmp_path / "model.py"), model).findings
    assert [f.attribute for f in found] == ["a", "c", "d"]


def test_function_behind_a_decorator_without_wraps() -> None:
    source = (
        "import functools\nfrom torch import nn\n"
        "def counted(fn):\n    def wrapper(*a):\n        return fn(*a)\n    return wrapper\n"
        "def kept(fn):\n    @functools.wraps(fn)\n    def wrapper(*a):\n        return fn(*a)\n"
        "    return wrapper\n"
        "@counted\ndef focal(x):\n    return x\n@kept\ndef dice(x):\n    return x\n"
        "class M(nn.Module):\n    def __init__(self):\n        self.a = focal\n        self.b = dice\n"
    )
    assert [f.attribute for f in analyze_text(source)] == ["a"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("self.entries = sorted(os.scandir('.'), key=lambda e: e.name)", ["CKPT006"]),
        ("self.names = sorted(['b', 'a'], key=lambda e: e)", []),
        ("self.d = dict(f=lambda: 0)", ["CKPT003"]),
        ("self.h = self.register_forward_pre_hook(lambda m, a: None)", ["CKPT003"]),
        ("self.h = self.register_forward_hook(module_fn)", []),
        ("self.sel = __import__('selectors').DefaultSelector()", []),
    ],
)
def test_round_four_values(body: str, expected: list[str]) -> None:
    assert [c for c, _ in findings_for(body)] == expected


def test_round_four_flow() -> None:
    source = (
        "import socket, copyreg, threading, selectors\nfrom torch import nn\n"
        "from sklearn.model_selection import KFold\nfrom sklearn.base import BaseEstimator\n"
        "def _bind():\n    s = socket.socket()\n    return s, 8080\n"
        "class M(nn.Module):\n    act = lambda x: x\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.sock, self.port = _bind()\n"
        "        self.raw = type(self).act\n        self.bound = self.act\n"
        "        self.backbone = nn.Sequential(nn.Linear(2, 2))\n"
        "        def hook_t(m, i, o):\n            return o\n"
        "        self.backbone[0].register_forward_hook(hook_t)\n"
        "        self.sel = selectors.DefaultSelector()\n"
        "class E(BaseEstimator):\n    def fit(self, X):\n        self.cv_ = KFold(3)\n"
        "        self.folds_ = self.cv_.split(X)\n        return self\n"
        "class Stats(nn.Module):\n    def __init__(self):\n        self._lock = threading.Lock()\n"
        "copyreg.pickle(Stats, lambda o: (Stats, ()))\n"
    )
    found = [(f.class_name, f.attribute) for f in analyze_text(source)]
    assert found == [
        ("M", "sock"),
        ("M", "raw"),
        ("M", "backbone"),
        ("M", "sel"),
        ("E", "folds_"),
    ]


def test_round_five_flow() -> None:
    source = (
        "import logging, threading, sqlite3\nfrom torch import nn\n"
        "def swish(x):\n    return x\n"
        "class M(nn.Module):\n    GUARD = threading.Lock()\n    act = staticmethod(swish)\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        h = {}\n        h['file'] = logging.FileHandler('x.log')\n        self.handlers = h\n"
        "        fns = []\n        fns.append(lambda x: x)\n        self.fns = fns\n"
        "        self.guard = self.GUARD\n        self.act_fn = self.act\n"
        "        self.conn = sqlite3.connect(':memory:')\n"
        "    @property\n    def conn(self):\n        return self._conn\n"
        "    @conn.setter\n    def conn(self, value):\n        self._conn = value\n"
    )
    found = sorted(f.attribute for f in analyze_text(source))
    assert found == ["_conn", "conn", "fns", "guard", "handlers"]


def test_a_partial_getstate_reports_only_what_it_keeps() -> None:
    """The oracle blames every attribute that fails on its own once the object fails, but
    an attribute the class's __getstate__ leaves out gets no finding (the issue's rule)."""
    source = (
        "from torch import nn\nclass M(nn.Module):\n    def __init__(self):\n"
        "        self.log_file = open('x', 'w')\n        self.gate = lambda x: x\n"
        "    def __getstate__(self):\n        s = self.__dict__.copy()\n"
        "        del s['log_file']\n        return s\n"
    )
    assert [f.attribute for f in analyze_text(source)] == ["gate"]


GENERATOR_SHAPES = {
    "def f():\n    yield 1\n": True,
    "def f():\n    x = yield\n    return x\n": True,
    "def f():\n    if a:\n        yield from b\n": True,
    "async def f():\n    yield 1\n": True,
    "def f():\n    return [x for x in y]\n": False,
    "def f():\n    def inner():\n        yield 1\n    return inner\n": False,
    "def f():\n    g = lambda: (yield)\n    return g\n": False,
    "def f():\n    class C:\n        def m(self):\n            yield 1\n    return C\n": False,
}


@pytest.mark.parametrize("source", sorted(GENERATOR_SHAPES))
def test_is_generator_sees_only_the_functions_own_yield_and_answers_the_same_twice(
    source: str,
) -> None:
    import ast

    from ckpt_lsp.analysis.assignments import is_generator

    func = ast.parse(source).body[0]
    assert isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
    assert is_generator(func) is GENERATOR_SHAPES[source]
    assert is_generator(func) is GENERATOR_SHAPES[source]  # kept on the node


GENERATOR_FN = "def make(n):\n    for i in range(n):\n        yield nn.Linear(2, 2)\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # consumed on the spot: only the items reach the instance
        (
            "self.layers = nn.ModuleList()\nself.layers.extend(nn.Linear(2, 2) for _ in range(3))",
            [],
        ),
        ("self.layers = []\nself.layers.extend(make(3))", []),
        ("self.layers = []\nself.layers += (nn.Linear(2, 2) for _ in range(3))", []),
        ("self.layers = []\nself.layers += list(make(3))", []),
        ("g = (i for i in range(3))\nself.xs = []\nself.xs.extend(g)", []),
        ("self.xs = []\nself.xs.extend(f for f in [module_fn])", []),
        ("self.blocks = nn.ModuleList(make(3))", []),
        ("self.xs = tuple(i for i in range(3))", []),
        ("self.total = sum(i for i in range(3))", []),
        ("self.d = dict((str(i), i) for i in range(3))", []),
        ("self.s = sorted(i for i in range(3))", []),
        ("self.u = set(i for i in range(3))", []),
        ("items = []\nitems.extend(nn.Linear(2, 2) for _ in range(3))\nself.items = items", []),
        # stored: the generator itself, or its items are hazards
        ("self.it = (i for i in range(3))", ["CKPT006"]),
        ("self.it = iter(i for i in range(3))", ["CKPT006"]),
        ("self.it = make(3)", ["CKPT006"]),
        ("self.xs = []\nself.xs.append(i for i in range(3))", ["CKPT006"]),
        ("self.fns = []\nself.fns.extend(lambda x: x for _ in range(3))", ["CKPT003"]),
        ("self.fns = []\nself.fns += (lambda x: x for _ in range(3))", ["CKPT003"]),
        ("fns = []\nfns.extend(lambda x: x for _ in range(3))\nself.fns = fns", ["CKPT003"]),
    ],
)
def test_generators_consumed_on_the_spot(body: str, expected: list[str]) -> None:
    source = HEADER.replace("\n\nclass Model", "\n\n" + GENERATOR_FN + "\n\nclass Model")
    source += textwrap.indent(textwrap.dedent(body), " " * 8)
    assert [f.code for f in analyze_text(source, "model.py")] == expected
