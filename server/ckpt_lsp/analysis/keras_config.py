"""CKPT013: the `__init__` arguments a Keras class's configuration does not give back.

`load_model` rebuilds a class as `cls.from_config(config)`, which is `cls(**config)`
unless the class says otherwise. Measured with keras 3.15.1 (scripts/keras_truth_table.py):

- the base config holds `name`, `trainable`, `dtype`: an `__init__` without `**kwargs`
  fails to load when the config includes it (no get_config, or one calling super's);
- a Layer without get_config records the plain (str, int, float, bool, None, lists of
  those) arguments it was built with; any other value makes `save` raise;
- a Model without get_config records its defaults only;
- an argument a get_config leaves out fails to load, or loads with other outputs, unless
  it was left at its default; a layer, array or function in the config fails to load.

A class with its own `from_config` rebuilds itself: it gets no finding here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.keras_classes import KerasClass, keras_data, keras_member
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.parsing import ParsedBlock

_BASE_KEYS = frozenset({"name", "trainable", "dtype"})
_BASIC_CALLS = frozenset({"int", "float", "str", "bool", "len", "min", "max", "round", "abs"})
# Lower-case module members that are plain numbers, not functions.
_CONSTANTS = frozenset({"pi", "e", "inf", "nan", "tau", "maxsize", "newaxis", "epsilon"})
# Arguments that change neither the weights nor what a built model computes at inference
# (`dropout=0.3` reloads as the default): `load_model` gives back the same outputs.
_INFERENCE_NEUTRAL = re.compile(r".*dropout.*|seed")


@dataclass(frozen=True)
class ConfigIssue:
    param: str  # the __init__ parameter ("**kwargs" when it is missing)
    node: ast.AST  # where to report: the parameter, or the `def` for a missing **kwargs
    message: str
    fix: str  # "kwargs" | "config" | "rebuild" | "serialize" | "str" | "none"


@dataclass
class _Config:
    """What a get_config gives back, as far as its text says."""

    keys: set[str] = field(default_factory=set)
    values: dict[str, ast.expr] = field(default_factory=dict)
    calls_super: bool = False
    dynamic: bool = False  # merges something unreadable: it may give back anything


def read_config(fn: FunctionNode) -> _Config:
    config = _Config()
    for node in walk(fn):
        if isinstance(node, ast.Call) and _is_super_call(node, "get_config"):
            config.calls_super = True
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if key is None:
                    config.dynamic |= not _plain_merge(value)
                elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                    config.keys.add(key.value)
                    config.values[key.value] = value
                else:
                    config.dynamic = True
        elif isinstance(node, ast.Call) and _is_update_or_dict(node):
            for kw in node.keywords:
                if kw.arg is None:
                    config.dynamic |= not _plain_merge(kw.value)
                else:
                    config.keys.add(kw.arg)
                    config.values[kw.arg] = kw.value
            if any(not isinstance(a, ast.Dict) and not _plain_merge(a) for a in node.args):
                config.dynamic = True
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            _read_store(node, config)
    return config


def _read_store(node: ast.Assign | ast.AnnAssign, config: _Config) -> None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
        if not isinstance(target, ast.Subscript) or node.value is None:
            continue
        key = target.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            config.keys.add(key.value)
            config.values[key.value] = node.value
        else:
            config.dynamic = True


def _plain_merge(value: ast.expr) -> bool:
    """`**super().get_config()` or `**base` (a local dict), also the older
    `dict(list(base.items()) + list(config.items()))`: nothing unknown merged in."""
    if isinstance(value, ast.Name):
        return True
    if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.BitOr)):
        return _plain_merge(value.left) and _plain_merge(value.right)
    if not isinstance(value, ast.Call):
        return False
    if _is_super_call(value, "get_config"):
        return True
    func = value.func
    if isinstance(func, ast.Name) and func.id in ("list", "dict", "tuple"):
        return all(_plain_merge(a) for a in value.args) and not value.keywords
    if isinstance(func, ast.Attribute) and func.attr in ("items", "copy") and not value.args:
        return _plain_merge(func.value)
    return False


def _is_update_or_dict(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == "dict"
    return isinstance(func, ast.Attribute) and func.attr == "update"


def _is_super_call(node: ast.Call, method: str) -> bool:
    func = node.func
    if not isinstance(func, ast.Attribute) or func.attr != method:
        return False
    owner = func.value
    if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name):
        return owner.func.id == "super"
    first = node.args[0] if node.args else None  # Base.get_config(self)
    is_self = isinstance(first, ast.Name) and first.id == "self"
    return isinstance(owner, (ast.Name, ast.Attribute)) and is_self


@dataclass(frozen=True)
class _Chain:
    """The get_config a class uses and what the configs up to Keras' base give back."""

    owner: ClassFacts | None  # the class whose get_config is used; None: the library's
    keys: frozenset[str]
    values: dict[str, ast.expr]
    includes_base: bool  # the config holds Keras' base keys (name, trainable, dtype)
    dynamic: bool


def config_chain(cls: ClassFacts, kc: KerasClass) -> _Chain:
    classes = [cls, *(c for _, c in kc.project_bases)]
    keys: set[str] = set()
    owner: ClassFacts | None = None
    values: dict[str, ast.expr] = {}
    dynamic = False
    for current in classes:
        fn = current.method("get_config")
        if fn is None:
            continue
        config = read_config(fn)
        if owner is None:
            owner, values = current, config.values
        keys |= config.keys
        dynamic |= config.dynamic
        if not config.calls_super:
            return _Chain(owner, frozenset(keys), values, False, dynamic)
    return _Chain(owner, frozenset(keys), values, True, dynamic)


def has_from_config(cls: ClassFacts, kc: KerasClass) -> bool:
    return any(
        c.method("from_config") is not None for c in (cls, *(c for _, c in kc.project_bases))
    )


def _params(init: FunctionNode) -> list[tuple[ast.arg, ast.expr | None]]:
    """(parameter, default) of every named parameter after `self`."""
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    pairs = list(zip(positional, defaults))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults))
    return pairs


def own_params(init: FunctionNode) -> list[str]:
    """The named parameters a get_config of the class must give back (the base's `name`,
    `trainable`, `dtype` come from `super().get_config()`)."""
    return [p.arg for p, _ in _params(init) if p.arg not in _BASE_KEYS]


def _kept(init: FunctionNode, param: str) -> bool:
    """`self.<param> = <param>`: the argument is kept as it came."""
    return any(isinstance(v, ast.Name) and v.id == param for v in _stored(init, param))


def super_passed(init: FunctionNode) -> set[str]:
    """The parameters `__init__` hands to its parent's `__init__` under their own name."""
    passed: set[str] = set()
    for node in walk(init):
        if isinstance(node, ast.Call) and _is_super_call(node, "__init__"):
            passed.update(a.id for a in node.args if isinstance(a, ast.Name))
            passed.update(
                kw.arg for kw in node.keywords if kw.arg and isinstance(kw.value, ast.Name)
            )
    return passed


@dataclass(frozen=True)
class CallSites:
    """How the module builds the class: the arguments of each `Cls(...)` call."""

    calls: tuple[ast.Call, ...]
    places: tuple[tuple[int, int], ...] = ()  # (row, 1-based column) of each call, in the file

    def passed(self, init: FunctionNode, name: str) -> list[ast.expr | None]:
        """The value each call gives `name` (None: the call leaves it at its default)."""
        positional = [a.arg for a in [*init.args.posonlyargs, *init.args.args][1:]]
        out: list[ast.expr | None] = []
        for call in self.calls:
            value: ast.expr | None = None
            for i, arg in enumerate(call.args):
                if isinstance(arg, ast.Starred):
                    value = arg  # unknown: count it as passed
                    break
                if i < len(positional) and positional[i] == name:
                    value = arg
            for kw in call.keywords:
                if kw.arg == name or kw.arg is None:
                    value = kw.value
            out.append(value)
        return out


def call_sites(facts: ModuleFacts, name: str) -> CallSites:
    """How the module builds the class `name`: its calls `name(...)` and `mod.name(...)`."""
    found: list[ast.Call] = []
    places: list[tuple[int, int]] = []
    for parsed in facts.blocks:
        if f"{name}(" not in parsed.block.text:
            continue
        for root in _roots(facts, parsed, name):
            for node in walk(root):
                if isinstance(node, ast.Call) and _callee(node.func) == name:
                    found.append(node)
                    places.append((node.lineno + parsed.row_offset, node.col_offset + 1))
    return CallSites(tuple(found), tuple(sorted(places)))


def _roots(facts: ModuleFacts, parsed: ParsedBlock, name: str) -> list[ast.AST]:
    """What of a block to walk for calls of `name`: of a class cut at its methods, the
    header and the methods whose text names it (a class of a few hundred lines builds one
    layer in its `__init__`; the whole block was parsed and walked once per layer); else
    the whole block. A call of `name` spells it in the text, in ASCII text the one way."""
    cls = facts.classes.get(parsed.block.name) if parsed.block.kind == "class" else None
    if cls is not None and cls.parsed is parsed and parsed.block.text.isascii():
        parts = cls.parts_where(lambda text: name in text)
        if parts is not None:
            return parts
    tree = parsed.tree
    return [tree] if tree is not None else []


def _callee(func: ast.expr) -> str:
    """The name a call is matched by: `Cls` of `Cls(...)` and of `mod.Cls(...)`."""
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def config_issues(
    facts: ModuleFacts, cls: ClassFacts, kc: KerasClass, sites: CallSites
) -> list[ConfigIssue]:
    init = cls.method("__init__")
    if init is None or has_from_config(cls, kc):
        return []
    chain = config_chain(cls, kc)
    issues: list[ConfigIssue] = []
    named = {a.arg for a in (*init.args.args, *init.args.kwonlyargs)}
    if init.args.kwarg is None and chain.includes_base and not named >= _BASE_KEYS:
        issues.append(_no_kwargs(init, chain))
    if chain.dynamic:
        return issues
    passed = super_passed(init)
    for param, default in _params(init):
        if param.arg in _BASE_KEYS or param.arg.startswith("_"):
            continue
        issue = _param_issue(facts, cls, kc, chain, init, param, default, passed, sites)
        if issue is not None:
            issues.append(issue)
    return issues


def _no_kwargs(init: FunctionNode, chain: _Chain) -> ConfigIssue:
    where = "the automatic config" if chain.owner is None else "`super().get_config()`"
    return ConfigIssue(
        "**kwargs",
        init,
        f"`__init__` takes no `**kwargs`, but {where} holds `name`, `trainable` and `dtype`, "
        "which `from_config` passes back in: `load_model` and deepcopy fail with a TypeError",
        "kwargs",
    )


def _param_issue(
    facts: ModuleFacts,
    cls: ClassFacts,
    kc: KerasClass,
    chain: _Chain,
    init: FunctionNode,
    param: ast.arg,
    default: ast.expr | None,
    passed: set[str],
    sites: CallSites,
) -> ConfigIssue | None:
    name = param.arg
    values = sites.passed(init, name)
    if chain.owner is cls and name in chain.values:
        return _non_json(facts, cls, init, param, default, chain.values[name], values)
    if name in chain.keys or (name in passed and chain.includes_base):
        return None  # handed to the parent: its config gives it back (or its finding says)
    if chain.owner is not None and _folded_into_config(init, name, chain.values):
        return None  # normalized into a value the config does give back (shape -> batch_shape)
    if chain.owner is None and kc.automatic and kc.kind == "layer":
        return _auto_layer(facts, init, param, default, values)
    # the module must build the class: a base class that only its subclasses build (they
    # fix the argument) is judged through them, and the runtime never builds it alone
    changed = any(v is not None and not _same(v, default) for v in values)
    if chain.owner is None and kc.automatic and default is not None and not _basic(default, facts):
        changed = True  # the Model's automatic config cannot hold its own default: save fails
    if not changed or _INFERENCE_NEUTRAL.fullmatch(name):
        return None
    return ConfigIssue(name, param, _missing_message(name, cls, kc, chain, default), "config")


def _folded_into_config(init: FunctionNode, param: str, values: dict[str, ast.expr]) -> bool:
    """Whether `__init__` computes an attribute the config returns from the parameter:
    `batch_shape = (batch_size, *shape); self._batch_shape = batch_shape` with
    `"batch_shape": self.batch_shape` in the config gives `shape` back in another form."""
    returned = {
        n.attr.lstrip("_")
        for value in values.values()
        for n in walk(value)
        if isinstance(n, ast.Attribute) and _is_self(n.value)
    }
    derived = {param}
    assigns = [n for n in walk(init) if isinstance(n, ast.Assign)]
    for _ in range(4):  # locals computed from locals: a few steps reach a fixpoint
        for node in assigns:
            used = {n.id for n in walk(node.value) if isinstance(n, ast.Name)}
            if not used & derived:
                continue
            for target in node.targets:
                if isinstance(target, ast.Name):
                    derived.add(target.id)
                elif _is_self_attr(target) and _returns(target, returned, param):
                    return True
    return False


def _is_self_attr(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and _is_self(node.value)


def _returns(target: ast.expr, returned: set[str], param: str) -> bool:
    name = target.attr.lstrip("_") if isinstance(target, ast.Attribute) else ""
    return name in returned and name != param


def _missing_message(
    name: str, cls: ClassFacts, kc: KerasClass, chain: _Chain, default: ast.expr | None
) -> str:
    if chain.owner is None and kc.automatic:
        why = "a Model without `get_config` records only its defaults"
    elif chain.owner is None:
        why = f"`{kc.library_base.rsplit('.', 1)[-1]}.get_config()` knows only its own arguments"
    elif chain.owner is not cls:
        why = f"`{chain.owner.name}.get_config()` does not know this subclass's argument"
    else:
        why = "`get_config` leaves it out"
    effect = (
        "`load_model` cannot pass it back (TypeError)"
        if default is None
        else "`load_model` rebuilds the class with the default: it fails, or computes "
        "something else"
    )
    return f"`{name}` is not in the config ({why}): {effect}"


def _auto_layer(
    facts: ModuleFacts,
    init: FunctionNode,
    param: ast.arg,
    default: ast.expr | None,
    values: list[ast.expr | None],
) -> ConfigIssue | None:
    """A Layer without get_config records plain arguments; any other value makes save raise.

    The fix writes a get_config that serializes the argument and a from_config that
    deserializes it: only when `__init__` keeps the argument as it came (`self.fn = fn`), so
    the config gives back what was passed, and only for values Keras can rebuild."""
    used = [v if v is not None else default for v in values] if values else [default]
    bad = [v for v in used if v is not None and _not_plain(v, facts)]
    if not bad:
        return None
    # the new get_config replaces the automatic one, so it must give back every argument
    kept = all(_kept(init, name) for name in own_params(init))
    fix = "serialize" if kept and all(_rebuildable(v, facts) for v in bad) else "none"
    return ConfigIssue(
        param.arg,
        param,
        f"`{param.arg}` is built with a value the automatic config cannot hold (only str, "
        "int, float, bool, None and lists of them): `model.save(...)` raises "
        "NotImplementedError; write a get_config",
        fix,
    )


def _not_plain(node: ast.expr, facts: ModuleFacts) -> bool:
    """Surely not str/int/float/bool/None/lists: the automatic config refuses it (an
    instance of any class, a function)."""
    if _surely_not_basic(node, facts):
        return True
    if isinstance(node, ast.Call):
        last = dotted_name(node.func).rsplit(".", 1)[-1]
        return last[:1].isupper()
    return False


def _non_json(
    facts: ModuleFacts,
    cls: ClassFacts,
    init: FunctionNode,
    param: ast.arg,
    default: ast.expr | None,
    value: ast.expr,
    passed: list[ast.expr | None],
) -> ConfigIssue | None:
    """A get_config entry that JSON cannot hold: a layer, an array, a function, a path."""
    if _serialized(value):
        return None
    sources: list[ast.expr] = [value]
    if isinstance(value, ast.Attribute) and _is_self(value.value):
        sources = _stored(init, value.attr)
    makes = [s for s in sources if _makes_non_json(s, facts, param.arg, default, passed)]
    if not makes:
        return None
    fix = "none"
    # what the callers hand in must come back too (a Path they pass cannot be serialized)
    handed = [v if v is not None else default for v in passed] or [default]
    uses_param = any(isinstance(n, ast.Name) and n.id == param.arg for m in makes for n in walk(m))
    inputs = [v for v in handed if v is not None] if uses_param else []
    if all(_rebuildable(s, facts) for s in [*makes, *inputs]):
        fix = "rebuild"
    elif all(_path_of(s, facts, param.arg) for s in makes):
        fix = "str"
    return ConfigIssue(
        param.arg,
        param,
        f"`get_config` returns `{param.arg}` as an object JSON cannot hold (a layer, an "
        "array, a function or a path): `model.save(...)` works, `load_model` fails; "
        "serialize it and rebuild it in `from_config`",
        fix,
    )


def _rebuildable(expr: ast.expr, facts: ModuleFacts) -> bool:
    """Whether keras.saving.serialize_keras_object/deserialize_keras_object bring the value
    back: arrays, layers and Keras' functions do; paths, lambdas and this module's
    functions (unregistered) do not."""
    for node in walk(expr):
        if isinstance(node, ast.Lambda):
            return False
        if isinstance(node, ast.Name) and facts.functions.get(node.id) is not None:
            return False
        if isinstance(node, ast.Call):
            qualified = qualify(dotted_name(node.func), facts)
            if qualified.startswith(("pathlib.", "os.path.")):
                return False
    return True


def _path_of(expr: ast.expr, facts: ModuleFacts, param: str) -> bool:
    """`Path(param)` (maybe under a condition): `__init__` makes the path from what it is
    given, so a config holding `str(path)` builds the same object back."""
    calls = [n for n in walk(expr) if isinstance(n, ast.Call)]
    if len(calls) != 1:
        return False
    call = calls[0]
    qualified = qualify(dotted_name(call.func), facts)
    if qualified not in _PATH_TYPES or call.keywords or len(call.args) != 1:
        return False
    arg = call.args[0]
    return isinstance(arg, ast.Name) and arg.id == param


_PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath"})


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _stored(init: FunctionNode, attr: str) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in walk(init):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == attr
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    found.append(node.value)
    return found


def _makes_non_json(
    expr: ast.expr,
    facts: ModuleFacts,
    param: str,
    default: ast.expr | None,
    passed: list[ast.expr | None],
) -> bool:
    """Whether the value stored (and returned by get_config) is a layer, array, function
    or path: built so here, or handed in so by the calls that build the class."""
    if isinstance(expr, ast.Name) and expr.id == param:
        values = [v if v is not None else default for v in passed] or [default]
        return any(v is not None and _surely_not_basic(v, facts) for v in values)
    if isinstance(expr, ast.BoolOp):
        return any(_makes_non_json(v, facts, param, default, passed) for v in expr.values)
    if isinstance(expr, ast.IfExp):
        return any(
            _makes_non_json(v, facts, param, default, passed) for v in (expr.body, expr.orelse)
        )
    return _surely_not_basic(expr, facts)


def _serialized(value: ast.expr) -> bool:
    if isinstance(value, ast.Call):
        func = value.func
        last = func.attr if isinstance(func, ast.Attribute) else dotted_name(func)
        return last in keras_data().serializers
    return isinstance(value, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.JoinedStr))


def _surely_not_basic(node: ast.AST, facts: ModuleFacts) -> bool:
    """A value Keras' JSON config cannot hold: a Keras layer, an array, a path, a
    function (a lambda, a Keras op or activation, a function of this module)."""
    if isinstance(node, ast.Lambda):
        return True
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id in facts.classes:
            return True  # an instance of a class of this module: the config gets a dict back
        return _non_json_call(qualify(dotted_name(node.func), facts))
    if isinstance(node, (ast.Attribute, ast.Name)):
        return _is_function(node, facts)
    if isinstance(node, ast.BoolOp):
        return any(_surely_not_basic(v, facts) for v in node.values)
    if isinstance(node, ast.IfExp):
        return _surely_not_basic(node.body, facts) or _surely_not_basic(node.orelse, facts)
    return False


def _non_json_call(qualified: str) -> bool:
    if not qualified:
        return False
    data = keras_data()
    if any(
        qualified == c or (c.endswith(".") and qualified.startswith(c)) for c in data.non_json_calls
    ):
        return True
    member = keras_member(qualified)
    if member is None:
        return False
    if member in data.non_json_keras_calls:
        return True
    last = member.rsplit(".", 1)[-1]
    return member.startswith(("layers.", "models.")) and last[:1].isupper()


def _is_function(node: ast.expr, facts: ModuleFacts) -> bool:
    dotted = dotted_name(node)
    if not dotted:
        return False
    if isinstance(node, ast.Name) and facts.functions.get(node.id) is not None:
        return True
    member = keras_member(qualify(dotted, facts))
    if member is None:
        # `np.tanh`, `torch.relu`, `math.sqrt`: a lower-case member of an imported module
        head, _, rest = dotted.partition(".")
        last = dotted.rsplit(".", 1)[-1]
        return (
            bool(rest) and head in facts.module_names and last[:1].islower()
        ) and last not in _CONSTANTS
    last = member.rsplit(".", 1)[-1]
    modules = keras_data().function_modules
    return any(member.startswith(m) for m in modules) and last[:1].islower()


def _basic(node: ast.expr, facts: ModuleFacts) -> bool:
    """A literal the automatic config can hold (str, int, float, bool, None, lists)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, int, float, bool, type(None)))
    if isinstance(node, ast.UnaryOp):
        return _basic(node.operand, facts)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_basic(e, facts) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _basic(k, facts) for k in node.keys) and all(
            _basic(v, facts) for v in node.values
        )
    if isinstance(node, ast.Call):
        return dotted_name(node.func) in _BASIC_CALLS
    if isinstance(node, ast.Name):
        value = facts.assigns.get(node.id)
        return value is None or _basic(value, facts)  # unknown names: assume plain
    return not _surely_not_basic(node, facts)


def _same(a: ast.expr, b: ast.expr | None) -> bool:
    return b is not None and ast.dump(a) == ast.dump(b)


def issue_params(issues: Iterable[ConfigIssue]) -> tuple[str, ...]:
    return tuple(i.param for i in issues)
