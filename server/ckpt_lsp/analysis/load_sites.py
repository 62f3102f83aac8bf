"""What a module says about loading checkpoints: loads with `weights_only=False`, and types
registered with `torch.serialization.add_safe_globals` (or the `safe_globals` context).

A save is not reported when a matching load of the project opts out of weights-only loading,
or when the refused type is registered. Only modules whose text names `weights_only` or
`safe_globals` are parsed for this, once per text (the analyzer keeps the result).
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify

WORDS = ("weights_only", "safe_globals")
_REGISTER = frozenset(
    {
        "torch.serialization.add_safe_globals",
        "torch.serialization.safe_globals",
        "torch.serialization.add_safe_global",
    }
)
_PATH_KEYWORDS = ("f", "path", "ckpt_path", "checkpoint_path", "filename")


@dataclass(frozen=True)
class LoadSites:
    path: str
    unsafe_loads: tuple[frozenset[str], ...]  # per opted-out load: the file names it reads
    safe_types: frozenset[str]  # qualified names registered as safe globals


def load_sites(facts: ModuleFacts) -> LoadSites:
    """The loads and registrations of one module (its blocks that name the words)."""
    loads: list[frozenset[str]] = []
    safe: set[str] = set()
    for parsed in facts.blocks:
        text = parsed.block.text
        if not any(word in text for word in WORDS) or parsed.tree is None:
            continue
        for scope, call in _calls_in_scopes(parsed.tree):
            if _opts_out(call):
                target = _path_argument(call)
                loads.append(file_names(target, scope) if target is not None else frozenset())
            elif qualify(dotted_name(call.func), facts) in _REGISTER and call.args:
                safe.update(_registered(call.args[0], facts, scope))
    return LoadSites(facts.path, tuple(loads), frozenset(safe))


def matches(save_path: str, save_names: frozenset[str], sites: LoadSites) -> bool:
    """Whether a save (its file and the file names its path names) has an opted-out load:
    in its own module any load matches unless both name files and none is shared; in
    another module the load must name one of the save's files."""
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
    for name in sites.safe_types:
        for wanted in type_names:
            if name == wanted or name.endswith(f".{wanted}") or wanted.endswith(f".{name}"):
                return True
    return False


def file_names(expr: ast.expr, scope: list[ast.stmt] | None = None) -> frozenset[str]:
    """The file names (`last.pt`) a path expression spells out in string constants, through
    one local name when it is assigned in `scope`."""
    names: set[str] = set()
    for node in ast.walk(expr):
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


def _opts_out(call: ast.Call) -> bool:
    return any(
        kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is False
        for kw in call.keywords
    )


def _path_argument(call: ast.Call) -> ast.expr | None:
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    for kw in call.keywords:
        if kw.arg in _PATH_KEYWORDS:
            return kw.value
    return None


def _registered(arg: ast.expr, facts: ModuleFacts, scope: list[ast.stmt]) -> Iterator[str]:
    """The names a registration lists: a display, or a local list built up in the scope
    (`allowlist = [...]`, `allowlist += [...]`)."""
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
        if isinstance(item, ast.Tuple) and item.elts:  # (cls, "module.Name")
            item = item.elts[0]
        dotted = dotted_name(item)
        if dotted:
            yield qualify(dotted, facts)


def _calls_in_scopes(tree: ast.Module) -> Iterator[tuple[list[ast.stmt], ast.Call]]:
    """Every call with the statements of the function it is in (module level: the module's)."""
    seen: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = [s for s in ast.walk(node) if isinstance(s, ast.stmt)]
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                if id(call) not in seen:
                    seen.add(id(call))
                    yield body, call
    module_level = [s for s in ast.walk(tree) if isinstance(s, ast.stmt)]
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if id(call) not in seen:
            yield module_level, call
