"""Module facts: the calls of one module that pickle or deep-copy an object of a class.

`torch.save(model, f)` after `model = Net()` is recorded as a torch.save of what `Net`
names in this module; the project index resolves it to a class later (bites.py). Only the
blocks whose text holds a trigger word are parsed (a def block is otherwise never read), so
a module without such a call costs a few substring tests.

What an argument stands for is read flow-insensitively inside its function (or the module's
top level): a name bound to one constructor call, to `self.attr`, or annotated with a class;
a name bound to two different things stands for nothing. A dict, list, tuple or set literal
(or `dict(k=v)`) holds its elements: the whole container is pickled with them.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from ckpt_lsp.analysis.facts import FunctionNode, ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATA_FILE = Path(__file__).parent.parent / "data" / "save_calls.toml"

# A module holding none of these holds no call this module records (`start_processes`
# comes with start_method="spawn"; `from pickle import dump` is not seen). Six substring
# tests per module text: the one cost every module of the project pays.
TRIGGERS = (".save(", ".dump", "deepcopy(", "DataLoader(", "spawn", "Process(")

Target = tuple[str, ...]  # ("name", dotted as written) or ("self", class name, attribute)


@dataclass(frozen=True)
class SaveCall:
    """One call that pickles (or deep-copies) what `target` stands for."""

    path: str  # the save path it takes (a key of rules.SAVE_PATHS)
    row: int  # 1-based, in the module
    column: int  # 1-based, in code points
    label: str  # the call as messages show it: "torch.save(model)"
    verb: str  # "pickles" | "copies"
    target: Target
    note: str = ""  # when it only fails under a start method: which, and where it is default


@dataclass(frozen=True)
class _Plain:
    path: str
    label: str
    verb: str
    args: tuple[int, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class SaveCallData:
    plain: dict[str, _Plain]  # qualified callee -> what it does
    data_loaders: frozenset[str]
    processes: frozenset[str]
    spawners: frozenset[str]
    contexts: frozenset[str]
    start_methods: frozenset[str]
    pickling_methods: frozenset[str]
    trainers: frozenset[str]
    trainer_methods: frozenset[str]
    spawn_strategies: frozenset[str]
    default_note: str
    returning_self: frozenset[str] = frozenset()

    @cached_property
    def last_names(self) -> frozenset[str]:
        """The last part of every callee recorded: a call named otherwise is skipped
        before its name is qualified."""
        names = [*self.plain, *self.data_loaders, *self.processes, *self.spawners]
        return frozenset({n.rpartition(".")[2] for n in names} | self.trainer_methods)


@lru_cache(maxsize=1)
def save_call_data() -> SaveCallData:
    """data/save_calls.toml, checked: a bad entry is an error at load, not a silent miss."""
    with DATA_FILE.open("rb") as fh:
        raw = tomllib.load(fh)
    plain: dict[str, _Plain] = {}
    for entry in raw["call"]:
        if entry["path"] not in ("torch.save", "pickle", "deepcopy", "spawn"):
            raise ValueError(f"{DATA_FILE.name}: unknown save path {entry['path']!r}")
        call = _Plain(
            entry["path"],
            entry["label"],
            entry["verb"],
            tuple(entry["args"]),
            tuple(entry["keywords"]),
        )
        for name in entry["names"]:
            plain[name] = call
    spawn = raw["spawn"]
    names = {key: frozenset(spawn[key]) for key in _SPAWN_KEYS}
    returning = frozenset(raw["methods"]["returning_self"])
    return SaveCallData(
        plain=plain, default_note=spawn["default_note"], returning_self=returning, **names
    )


_SPAWN_KEYS = (
    "data_loaders",
    "processes",
    "spawners",
    "contexts",
    "start_methods",
    "pickling_methods",
    "trainers",
    "trainer_methods",
    "spawn_strategies",
)


def has_trigger(text: str) -> bool:
    """Whether a text may hold a recorded call (substring tests: no regex, no parse)."""
    return any(word in text for word in TRIGGERS)


def module_save_calls(facts: ModuleFacts, names: tuple[str, ...] = ()) -> list[SaveCall]:
    """The recorded calls of a module, in order; its blocks without a trigger are not read,
    nor, when `names` are given, a function or class whose text names none of them (a call
    there cannot be given an object of those classes by name)."""
    if not has_trigger(facts.text):
        return []
    reader = _Reader(facts)
    top: list[tuple[list[ast.stmt], int]] = []
    named = False  # whether the top level names one of `names`
    calls: list[SaveCall] = []
    for parsed in facts.blocks:
        kind, text = parsed.block.kind, parsed.block.text
        if kind in ("def", "class") and not _mentions(text, names):
            continue
        if kind == "def" and not has_trigger(text):
            continue
        if kind == "class":
            calls.extend(_class_calls(reader, facts, parsed.block.name, names))
            continue
        tree = parsed.tree
        if tree is None:
            continue
        if kind != "def":
            top.append((tree.body, parsed.row_offset))
            named = named or _mentions(text, names)
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                calls.extend(reader.scope([(node.body, parsed.row_offset)], node, ""))
    if top and named:  # the module's top level is one scope, over its blocks
        calls.extend(reader.scope(top, None, ""))
    calls.sort(key=lambda c: (c.row, c.column))
    return calls


def _mentions(text: str, names: tuple[str, ...]) -> bool:
    return not names or any(name in text for name in names)


def _class_calls(
    reader: _Reader, facts: ModuleFacts, name: str, names: tuple[str, ...]
) -> list[SaveCall]:
    """The calls in the methods of a class that hold a trigger word and, when `names` are
    given, one of them or a call on an attribute of self (`deepcopy(self.model)`)."""
    cls = facts.classes.get(name)
    if cls is None or not has_trigger(cls.parsed.block.text):
        return []

    def wanted(text: str) -> bool:
        if not has_trigger(text):
            return False
        return _mentions(text, names) or _SELF_ARGUMENT.search(text) is not None

    out: list[SaveCall] = []
    for method in cls.methods_where(wanted):
        out.extend(reader.scope([(method.body, cls.parsed.row_offset)], method, name))
    return out


# a recorded call whose first argument is an attribute of self
_SELF_ARGUMENT = re.compile(
    r"(?:save|dumps?|deepcopy|DataLoader|Process|spawn|fit)\(\s*(?:\w+\s*=\s*)?self\."
)


class _Reader:
    """Reads one scope at a time: its bindings, then its calls."""

    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.data = save_call_data()
        self.module_method = _module_start_method(facts, self.data)

    def qualified(self, expr: ast.expr) -> str:
        return qualify(dotted_name(expr), self.facts)

    def scope(
        self,
        parts: list[tuple[list[ast.stmt], int]],  # statements and their blocks' row offsets
        func: FunctionNode | None,
        class_name: str,
    ) -> Iterator[SaveCall]:
        last = self.data.last_names
        calls = [
            (node, rows)
            for body, rows in parts
            for node in _walk(body)
            if isinstance(node, ast.Call) and _last_name(node.func) in last
        ]
        if not calls:  # most scopes: the bindings are not worth reading
            return
        env = _bindings([s for body, _ in parts for s in body], func, class_name, self)
        for node, rows in calls:
            yield from self.call(node, env, rows, class_name)

    def call(
        self, node: ast.Call, env: dict[str, Target | None], rows: int, class_name: str
    ) -> Iterator[SaveCall]:
        callee = self.qualified(node.func)
        data = self.data
        row, column = node.lineno + rows, node.col_offset + 1
        plain = data.plain.get(callee)
        if plain is not None:
            arg = _argument(node, plain.args, plain.keywords)
            label = dotted_name(node.func) or plain.label
            shown = f"{label}({_short(arg)})" if arg is not None else label
            for target in _targets(arg, env, class_name):
                yield SaveCall(plain.path, row, column, shown, plain.verb, target)
            return
        found = self.spawn_call(node, callee, env)
        if found is not None:
            label, note, args = found
            for arg in args:
                for target in _targets(arg, env, class_name):
                    yield SaveCall("spawn", row, column, label, "pickles", target, note)

    def spawn_call(
        self, node: ast.Call, callee: str, env: dict[str, Target | None]
    ) -> tuple[str, str, list[ast.expr]] | None:
        """(label, note, pickled arguments) of a call that starts processes, or None."""
        data = self.data
        if callee in data.data_loaders:
            return self.data_loader(node, env)
        if callee in data.spawners:
            return "mp.spawn", "", _tuple_items(_keyword(node, "args", 1))
        method = self.process_method(node, callee, env)
        if method is not None:
            note = "" if method else self.default_note()
            if note is None:
                return None
            args = _tuple_items(_keyword(node, "args", -1))
            kwargs = _keyword(node, "kwargs", -1)
            if isinstance(kwargs, ast.Dict):
                args.extend(v for v in kwargs.values if v is not None)
            return "Process args", note, args
        return self.trainer_call(node, env)

    def data_loader(
        self, node: ast.Call, env: dict[str, Target | None]
    ) -> tuple[str, str, list[ast.expr]] | None:
        workers = _keyword(node, "num_workers", -1)
        if workers is None or (isinstance(workers, ast.Constant) and not workers.value):
            return None  # no worker processes: nothing is pickled
        context = _keyword(node, "multiprocessing_context", -1)
        dataset = _keyword(node, "dataset", 0)
        if dataset is None:
            return None
        if context is None:
            note = self.default_note()
            if note is None:
                return None
            return "DataLoader with workers", note, [dataset]
        method = self.context_method(context, env)
        if method is None or method not in self.data.pickling_methods:
            return None
        return f"{method} DataLoader", "", [dataset]

    def default_note(self) -> str | None:
        """The note for a call that follows the default start method; None when this module
        sets it to fork (nothing is pickled then)."""
        method = self.module_method
        if method is None:
            return " " + self.data.default_note
        return "" if method in self.data.pickling_methods else None

    def process_method(
        self, node: ast.Call, callee: str, env: dict[str, Target | None]
    ) -> str | None:
        """ "" for a Process of the default start method, the method's name for one of a
        pickling context, None when it is no Process (or a fork one)."""
        if callee in self.data.processes:
            return ""
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "Process":
            method = self.context_method(func.value, env)
            if method in self.data.pickling_methods:
                return method
        return None

    def context_method(self, expr: ast.expr, env: dict[str, Target | None]) -> str | None:
        """The start method a context expression names: "spawn" for "spawn", for
        `mp.get_context("spawn")`, or for a name bound to either."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.Name):
            bound = env.get(expr.id)
            return bound[1] if bound is not None and bound[0] == "context" else None
        if isinstance(expr, ast.Call) and self.qualified(expr.func) in self.data.contexts:
            first = expr.args[0] if expr.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return first.value
        return None

    def trainer_call(
        self, node: ast.Call, env: dict[str, Target | None]
    ) -> tuple[str, str, list[ast.expr]] | None:
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in self.data.trainer_methods:
            return None
        owner = func.value
        spawning = False
        if isinstance(owner, ast.Name):
            bound = env.get(owner.id)
            spawning = bound == ("trainer", "spawn")
        elif isinstance(owner, ast.Call):
            spawning = self.spawn_trainer(owner)
        if not spawning:
            return None
        args = [a for a in (_keyword(node, "model", 0), _keyword(node, "datamodule", -1)) if a]
        return f'Trainer(strategy="ddp_spawn").{func.attr}', "", args

    def spawn_trainer(self, node: ast.Call) -> bool:
        if self.qualified(node.func) not in self.data.trainers:
            return False
        strategy = _keyword(node, "strategy", -1)
        return (
            isinstance(strategy, ast.Constant)
            and isinstance(strategy.value, str)
            and strategy.value in self.data.spawn_strategies
        )


def _module_start_method(facts: ModuleFacts, data: SaveCallData) -> str | None:
    """What `set_start_method("...")` at this module's top level or `__main__` sets."""
    if "set_start_method" not in facts.text:
        return None
    for parsed in facts.blocks:
        tree = parsed.tree if parsed.block.kind not in ("def", "class") else None
        for node in walk(tree) if tree is not None else ():
            if isinstance(node, ast.Call) and node.args:
                first = node.args[0]
                callee = qualify(dotted_name(node.func), facts)
                if callee in data.start_methods and isinstance(first, ast.Constant):
                    return str(first.value)
    return None


def _last_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _walk(body: Iterable[ast.stmt]) -> Iterator[ast.AST]:
    for stmt in body:
        yield from walk(stmt)


def _bindings(
    body: list[ast.stmt], func: FunctionNode | None, class_name: str, reader: _Reader
) -> dict[str, Target | None]:
    """What each local name stands for; None for a name bound to different things."""
    env: dict[str, Target | None] = {}

    def bind(name: str, target: Target | None) -> None:
        if name in env and env[name] != target:
            env[name] = None
        else:
            env[name] = target

    if func is not None:
        for arg in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs):
            if arg.annotation is not None:
                bind(arg.arg, _annotation(arg.annotation))
    for node in _walk(body):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                bind(target.id, _bound(node.value, env, class_name, reader))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bind(node.target.id, _annotation(node.annotation))
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For)):
            for name in _names_bound(node):
                bind(name, None)
    return env


def _names_bound(node: ast.With | ast.AsyncWith | ast.For) -> list[str]:
    targets = [item.optional_vars for item in node.items] if not isinstance(node, ast.For) else []
    if isinstance(node, ast.For):
        targets = [node.target]
    return [n.id for t in targets if t is not None for n in walk(t) if isinstance(n, ast.Name)]


def _bound(
    value: ast.expr, env: dict[str, Target | None], class_name: str, reader: _Reader
) -> Target | None:
    if isinstance(value, ast.Call):
        callee = reader.qualified(value.func)
        if callee in reader.data.contexts:
            method = reader.context_method(value, env)
            return ("context", method) if method else None
        if callee in reader.data.trainers:
            return ("trainer", "spawn") if reader.spawn_trainer(value) else None
    return _target(value, env, class_name)


def _target(expr: ast.expr, env: dict[str, Target | None], class_name: str) -> Target | None:
    """What one expression stands for: a constructor call, a bound name, `self.attr`."""
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Attribute) and func.attr in save_call_data().returning_self:
            return _target(func.value, env, class_name)  # `Net().to(device)` is a Net
        return _class_name(dotted_name(func))
    if isinstance(expr, ast.Name):
        bound = env.get(expr.id)
        return bound if bound is not None and bound[0] in ("name", "self") else None
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
        and class_name
    ):
        return ("self", class_name, expr.attr)
    return None


def _annotation(expr: ast.expr) -> Target | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        try:
            expr = ast.parse(expr.value, mode="eval").body
        except SyntaxError:
            return None
    return _class_name(dotted_name(expr))


def _class_name(dotted: str) -> Target | None:
    """A name that may be a class: capitalized, as classes are (`Net`, `models.Net`). A
    lowercase callee is a function or a method (`model.state_dict`, `build_model`): not
    resolving those keeps a project's worth of lookups out of every keystroke."""
    last = dotted.rpartition(".")[2].lstrip("_")
    return ("name", dotted) if last[:1].isupper() else None


def _targets(arg: ast.expr | None, env: dict[str, Target | None], class_name: str) -> list[Target]:
    """What an argument pickles: itself, or the elements of a container literal (one level
    of nesting more: `{"model": {"net": net}}`)."""
    if arg is None:
        return []
    out: list[Target] = []
    for item in _held(arg, 2):
        target = _target(item, env, class_name)
        if target is not None and target not in out:
            out.append(target)
    return out


def _held(expr: ast.expr, depth: int) -> list[ast.expr]:
    items: list[ast.expr] = []
    if isinstance(expr, ast.Dict):
        items = [v for v in expr.values if v is not None]
    elif isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
        items = [e for e in expr.elts if not isinstance(e, ast.Starred)]
    elif isinstance(expr, ast.Call) and dotted_name(expr.func) == "dict" and not expr.args:
        items = [k.value for k in expr.keywords if k.arg is not None]
    else:
        return [expr]
    if depth <= 0:
        return []
    return [inner for item in items for inner in _held(item, depth - 1)]


def _argument(
    node: ast.Call, positions: tuple[int, ...], keywords: tuple[str, ...]
) -> ast.expr | None:
    for pos in positions:
        if pos < len(node.args) and not isinstance(node.args[pos], ast.Starred):
            return node.args[pos]
    for kw in node.keywords:
        if kw.arg in keywords:
            return kw.value
    return None


def _keyword(node: ast.Call, name: str, position: int) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    if 0 <= position < len(node.args) and not isinstance(node.args[position], ast.Starred):
        return node.args[position]
    return None


def _tuple_items(expr: ast.expr | None) -> list[ast.expr]:
    if isinstance(expr, (ast.Tuple, ast.List)):
        return [e for e in expr.elts if not isinstance(e, ast.Starred)]
    return [expr] if expr is not None else []


def _short(expr: ast.expr, limit: int = 24) -> str:
    """The argument as the message shows it: short, one line."""
    if isinstance(expr, ast.Dict):
        return "{...}"
    if isinstance(expr, (ast.List, ast.Tuple)):
        return "[...]" if isinstance(expr, ast.List) else "(...)"
    text = ast.unparse(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
