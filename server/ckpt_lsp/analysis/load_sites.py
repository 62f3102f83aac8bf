"""What a module says about loading checkpoints: loads with `weights_only=False`, and types
registered with `torch.serialization.add_safe_globals` (or the `safe_globals` context).

A save is not reported when a matching load of the project opts out of weights-only loading,
or when the refused type is registered; the registrations include what a project function
wrapping one registers from its parameter, given a class's listing method's result
(`project_globals(extra=cls.checkpoint_safe_globals())`). Only modules whose text names
`weights_only` or `safe_globals` are parsed for this, once per text (the analyzer keeps it).
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, ParsedBlock, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk

# torch reads it at each load that does not pass `weights_only`: a project that sets it loads
# every checkpoint with weights_only=False
FORCE_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_TRUE_VALUES = frozenset({"1", "y", "yes", "true"})  # torch.serialization's spelling
WORDS = (
    "weights_only=False",
    "weights_only = False",
    '"weights_only": False',  # `torch.load(p, **{"weights_only": False})` and a local of it
    "'weights_only': False",
    "safe_globals",
    "pickle_module",  # `torch.load(f, pickle_module=pickle)` loads with weights_only=False
    FORCE_NO_WEIGHTS_ONLY,
)
# modules that load checkpoints: one of them may opt out tomorrow, so a save's findings
# depend on each of them (the CLI cache re-checks the save when one changes)
LOADS = (
    "torch.load",
    "load_from_checkpoint",
    "weights_only",
    "safe_globals",
    FORCE_NO_WEIGHTS_ONLY,
)
_REGISTER = frozenset(
    {
        "torch.serialization.add_safe_globals",
        "torch.serialization.safe_globals",
        "torch.serialization.add_safe_global",
    }
)
_PATH_KEYWORDS = ("f", "path", "ckpt_path", "checkpoint_path", "filename")


@dataclass(frozen=True)
class Wrapper:
    """A project function that registers what one of its parameters holds
    (`def project_globals(extra=None): ... safe_globals([*SAFE, *(extra or ())])`)."""

    name: str  # qualified
    parameter: str
    position: int


@dataclass(frozen=True)
class Request:
    """A call that hands a registration (or a wrapper of one) what a method returns:
    `project_globals(extra=cls.checkpoint_safe_globals())`."""

    callee: str  # qualified
    position: int  # -1 for a keyword
    keyword: str | None
    method: str


@dataclass(frozen=True)
class LoadSites:
    path: str
    unsafe_loads: tuple[frozenset[str], ...]  # per opted-out load: the file names it reads
    safe_types: frozenset[str]  # qualified names registered as safe globals
    forces_unsafe: bool = False  # sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD for every load
    wrappers: tuple[Wrapper, ...] = ()
    requests: tuple[Request, ...] = ()


def load_sites(facts: ModuleFacts) -> LoadSites:
    """The loads and registrations of one module (its blocks that name the words)."""
    loads: list[frozenset[str]] = []
    safe: set[str] = set()
    forces = False
    wrappers: list[Wrapper] = []
    requests: list[Request] = []
    for parsed in facts.blocks:
        text = parsed.block.text
        if not any(word in text for word in WORDS):
            continue
        if FORCE_NO_WEIGHTS_ONLY in text and parsed.tree is not None:
            forces = forces or _forces_unsafe(parsed.tree)
        for scope, call in _block_calls(facts, parsed):
            callee = qualify(dotted_name(call.func), facts)
            if _opts_out(call, scope):
                target = _path_argument(call)
                loads.append(file_names(target, scope) if target is not None else frozenset())
                continue
            if callee in _REGISTER and call.args:
                safe.update(_registered(call.args[0], facts, scope))
                wrappers += _wrapper(call.args[0], facts, parsed, scope)
            requests += _requests(callee, call)
    return LoadSites(
        facts.path, tuple(loads), frozenset(safe), forces, tuple(wrappers), tuple(requests)
    )


def listing_methods(sites: list[LoadSites]) -> frozenset[str]:
    """The names of the methods whose results the project registers: handed to a
    registration itself, or to a project function that registers that parameter."""
    wrappers = [w for site in sites for w in site.wrappers]
    found: set[str] = set()
    for request in (r for site in sites for r in site.requests):
        if request.callee in _REGISTER and request.position == 0:
            found.add(request.method)
            continue
        for wrapper in wrappers:
            by_position = request.keyword is None and request.position == wrapper.position
            if _same_name(wrapper.name, request.callee) and (
                request.keyword == wrapper.parameter or (by_position and request.position >= 0)
            ):
                found.add(request.method)
    return frozenset(found)


def listed_types(
    classes: list[tuple[ModuleFacts, ClassFacts]], methods: frozenset[str]
) -> frozenset[str]:
    """The types a class lists for the project to register: what the nearest definition of
    each listing method returns (`return (ModelName,)`), the class first, then its bases."""
    found: set[str] = set()
    for name in methods:
        for facts, cls in classes:
            method = cls.method(name)
            if method is None:
                continue
            for node in walk(method):
                if isinstance(node, ast.Return) and node.value is not None:
                    found.update(_registered(node.value, facts, []))
            break
    return frozenset(found)


def _same_name(a: str, b: str) -> bool:
    """Qualified names of one object as modules are named from different roots."""
    return a == b or a.endswith(f".{b}") or b.endswith(f".{a}")


def _requests(callee: str, call: ast.Call) -> list[Request]:
    """What a call that may register hands over as a method's result (`X.m()`)."""
    found = []
    arguments: list[tuple[int, str | None, ast.expr]] = [
        (i, None, a) for i, a in enumerate(call.args)
    ]
    arguments += [(-1, kw.arg, kw.value) for kw in call.keywords if kw.arg is not None]
    for position, keyword, value in arguments:
        method = _method_result(value)
        if method:
            found.append(Request(callee, position, keyword, method))
    return found


def _wrapper(
    arg: ast.expr, facts: ModuleFacts, parsed: ParsedBlock, scope: list[ast.stmt]
) -> list[Wrapper]:
    """The module-level function holding a registration that lists one of its parameters'
    items (`[*SAFE, *(extra or ())]`, through a local list)."""
    tree = parsed.tree
    if parsed.block.kind == "class" or tree is None:
        return []
    func = next(
        (
            n
            for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n in scope
        ),
        None,
    )
    if func is None:
        return []
    params = [*func.args.posonlyargs, *func.args.args]
    positions = {p.arg: i for i, p in enumerate(params)}
    positions.update({p.arg: -1 for p in func.args.kwonlyargs})
    found = []
    for name in _spread_names(arg, scope):
        if name in positions:
            found.append(Wrapper(f"{facts.module}.{func.name}", name, positions[name]))
    return found


def _spread_names(arg: ast.expr, scope: list[ast.stmt]) -> Iterator[str]:
    """The names a registered list takes items from: `extra` of `extra`, `[*extra]`,
    `[*(extra or ())]`, through one local list."""
    if isinstance(arg, ast.Name):
        yield arg.id
        for stmt in scope:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == arg.id for t in stmt.targets
            ):
                yield from _spread_names(stmt.value, [])
        return
    if isinstance(arg, (ast.List, ast.Tuple, ast.Set)):
        for item in arg.elts:
            if not isinstance(item, ast.Starred):
                continue
            value = item.value
            if isinstance(value, ast.BoolOp) and value.values:
                value = value.values[0]
            if isinstance(value, ast.Name):
                yield value.id


def matches(save_path: str, save_names: frozenset[str], sites: LoadSites) -> bool:
    """Whether a save (its file and the file names its path names) has an opted-out load:
    in its own module any load matches unless both name files and none is shared; in
    another module the load must name one of the save's files. A project that sets
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD matches every save."""
    if sites.forces_unsafe:
        return True
    for names in sites.unsafe_loads:
        if sites.path == save_path:
            if not save_names or not names or save_names & names:
                return True
        elif save_names & names:
            return True
    return False


def registered(type_names: frozenset[str], sites: LoadSites) -> bool:
    """Whether one of the qualified names is registered (suffix match: `models.Cfg` and
    `proj.models.Cfg` name the same class as modules are named from different roots)."""
    return any(_same_name(name, wanted) for name in sites.safe_types for wanted in type_names)


def file_names(expr: ast.expr, scope: list[ast.stmt] | None = None) -> frozenset[str]:
    """The file names (`last.pt`) a path expression spells out in string constants, through
    one local name when it is assigned in `scope`."""
    names: set[str] = set()
    for node in walk(expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            base = posixpath.basename(node.value.replace("\\", "/"))
            if "." in base.strip(".") and not base.startswith("."):
                names.add(base)
        elif isinstance(node, ast.Name) and scope is not None:
            for stmt in scope:
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets
                ):
                    names |= file_names(stmt.value)
    return frozenset(names)


def _opts_out(call: ast.Call, scope: list[ast.stmt]) -> bool:
    """`weights_only=False`, spelled out or spread from a dict (`**{"weights_only": False}`,
    `**dict(weights_only=False)`, a local bound to one, maybe only on a branch: fastai's
    `{"weights_only": False} if ismin_torch("2.6") else {}` opts out where it matters)."""
    for kw in call.keywords:
        if _is_opt_out(kw) or (kw.arg is None and _spreads_opt_out(kw.value, scope)):
            return True
    return _custom_pickle_module(call)


def _custom_pickle_module(call: ast.Call) -> bool:
    """`torch.load(f, pickle_module=pickle)` without `weights_only`: torch then defaults to
    weights_only=False (measured on torch 2.13); `torch.save(..., pickle_module=)` is no load."""
    if not dotted_name(call.func).endswith("load"):
        return False
    names = {kw.arg for kw in call.keywords}
    if "weights_only" in names or None in names:
        return False
    return any(
        kw.arg == "pickle_module"
        and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
        for kw in call.keywords
    )


def _forces_unsafe(tree: ast.AST) -> bool:
    """`os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"` or `os.environ.setdefault(...)`
    with a value torch reads as true."""
    for node in walk(tree):
        if isinstance(node, ast.Assign) and _is_true_text(node.value):
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and dotted_name(target.value).endswith("environ")
                    and _is_force_name(target.slice)
                ):
                    return True
        elif (
            isinstance(node, ast.Call)
            and dotted_name(node.func).split(".")[-1] in ("setdefault", "putenv")
            and len(node.args) == 2
            and _is_force_name(node.args[0])
            and _is_true_text(node.args[1])
        ):
            return True
    return False


def _is_force_name(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) and expr.value == FORCE_NO_WEIGHTS_ONLY


def _is_true_text(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Constant)
        and isinstance(expr.value, str)
        and expr.value.lower() in _TRUE_VALUES
    )


def _is_opt_out(kw: ast.keyword) -> bool:
    return (
        kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is False
    )


def _spreads_opt_out(value: ast.expr, scope: list[ast.stmt], hops: int = 0) -> bool:
    if isinstance(value, ast.IfExp):
        return any(_spreads_opt_out(v, scope, hops) for v in (value.body, value.orelse))
    if isinstance(value, ast.Dict):
        return any(
            isinstance(k, ast.Constant)
            and k.value == "weights_only"
            and isinstance(v, ast.Constant)
            and v.value is False
            for k, v in zip(value.keys, value.values)
        )
    if isinstance(value, ast.Call) and dotted_name(value.func) == "dict":
        return any(
            kw.arg == "weights_only"
            and isinstance(kw.value, ast.Constant)
            and kw.value.value is False
            for kw in value.keywords
        )
    if isinstance(value, ast.Name) and hops < 2:
        return any(
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == value.id for t in stmt.targets)
            and _spreads_opt_out(stmt.value, scope, hops + 1)
            for stmt in scope
        )
    return False


def _path_argument(call: ast.Call) -> ast.expr | None:
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    for kw in call.keywords:
        if kw.arg in _PATH_KEYWORDS:
            return kw.value
    return None


def _registered(arg: ast.expr, facts: ModuleFacts, scope: list[ast.stmt]) -> Iterator[str]:
    """The names a registration lists: a display, or a local list built up in the scope
    (`allowlist = [...]`, `allowlist += [...]`), with module-level lists spread into it
    (`[*ANOMALIB_SAFE_GLOBALS, *extra]`)."""
    if isinstance(arg, ast.Name):
        for stmt in scope:
            if (
                isinstance(stmt, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == arg.id for t in stmt.targets)
                or (
                    isinstance(stmt, ast.AugAssign)
                    and isinstance(stmt.target, ast.Name)
                    and stmt.target.id == arg.id
                )
            ):
                yield from _registered(stmt.value, facts, [])
        return
    if not isinstance(arg, (ast.List, ast.Tuple, ast.Set)):
        return
    for item in arg.elts:
        if isinstance(item, ast.Starred):  # `[*SHARED_SAFE_GLOBALS, *extra]`
            spread = item.value
            shared = facts.assigns.get(spread.id) if isinstance(spread, ast.Name) else None
            if isinstance(shared, (ast.List, ast.Tuple, ast.Set)):  # a module-level list
                yield from _registered(shared, facts, [])
            continue
        if isinstance(item, ast.Tuple) and item.elts:  # (cls, "module.Name")
            item = item.elts[0]
        dotted = dotted_name(item)
        if dotted:
            yield qualify(dotted, facts)


def _block_calls(
    facts: ModuleFacts, parsed: ParsedBlock
) -> Iterator[tuple[list[ast.stmt], ast.Call]]:
    """The calls of a block with their scopes; of a class, only the methods that name the
    words are parsed (a trainer class is thousands of lines)."""
    block = parsed.block
    cls = facts.classes.get(block.name) if block.kind == "class" else None
    if cls is not None and cls.parsed is parsed:
        methods = {id(m): m for word in WORDS for m in cls.methods_mentioning(word)}
        module = ast.Module(body=list(methods.values()), type_ignores=[])
        yield from _calls_in_scopes(module)
        return
    if parsed.tree is not None:
        yield from _calls_in_scopes(parsed.tree)


def _calls_in_scopes(tree: ast.Module) -> Iterator[tuple[list[ast.stmt], ast.Call]]:
    """The calls that may opt out or register (a `weights_only=` keyword, or a callee named
    like a registration), with the statements of the function they are in."""
    parents: dict[int, ast.AST] = {}
    for node in walk(tree):
        for child in child_nodes(node):
            parents[id(child)] = node
    for node in walk(tree):
        if isinstance(node, ast.Call) and _interesting(node):
            yield _scope_of(node, parents, tree), node


def _interesting(call: ast.Call) -> bool:
    if any(kw.arg in ("weights_only", "pickle_module", None) for kw in call.keywords):
        return True  # a `**kwargs` spread may carry the opt-out
    # a method's result handed to a project function may be a list it registers
    return "safe_global" in dotted_name(call.func) or any(
        _method_result(v) for v in [*call.args, *(kw.value for kw in call.keywords)]
    )


def _method_result(value: ast.expr) -> str:
    """The method name of `X.m()` called without arguments, else ""."""
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and not value.args
        and not value.keywords
    ):
        return value.func.attr
    return ""


def _scope_of(node: ast.AST, parents: dict[int, ast.AST], tree: ast.Module) -> list[ast.stmt]:
    """The statements of the innermost function holding `node` (else the whole tree's)."""
    current: ast.AST | None = parents.get(id(node))
    while current is not None and not isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
        current = parents.get(id(current))
    root = current if current is not None else tree
    return [s for s in walk(root) if isinstance(s, ast.stmt)]
