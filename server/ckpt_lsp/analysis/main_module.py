"""CKPT014: a model class defined in `__main__` and saved whole by the same program.

Pickle stores a class by reference (`module.Name`). Run as a notebook or as
`python train.py`, the module is `__main__`, so `torch.save(model)` writes
`__main__.Net`, and loading the file from any other program fails with
`Can't get attribute 'Net' on <module '__main__'>`; its state_dict() loads anywhere.

Precision first, the program must be `__main__` for sure: a notebook, or the code
under `if __name__ == "__main__":` and the module's functions it calls. A module run
as a script without that guard is not recognised (telling it from an imported module
would need the whole project's imports). The saved object must be an instance the
same scope made from a model class of this module: `model = Net(...)` (or
`Net(...).to(device)` and the like, which return the model), every assignment of the
name such an instance; it is saved as it is or inside a dict, list or tuple literal.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CODE = "CKPT014"
# methods that return the model they are called on (nn.Module's and sklearn's fit)
_RETURNS_SELF = frozenset({"to", "cuda", "cpu", "eval", "train", "float", "double", "half", "fit"})


@dataclass(frozen=True)
class WholeSave:
    call: str  # qualified name of the function
    argument: int  # position of the saved object
    keyword: str  # its keyword
    path: str  # the save path it is (rules.SAVE_PATHS key)


@lru_cache(maxsize=1)
def whole_saves() -> dict[str, WholeSave]:
    """data/whole_saves.toml, checked: a bad entry fails loudly when loaded (in the tests)."""
    with (Path(__file__).parent.parent / "data" / "whole_saves.toml").open("rb") as fh:
        raw = tomllib.load(fh)
    out: dict[str, WholeSave] = {}
    for entry in raw["save"]:
        save = WholeSave(
            str(entry["call"]), int(entry["argument"]), str(entry["keyword"]), str(entry["path"])
        )
        if save.path not in ("torch.save", "pickle"):
            raise ValueError(f"whole_saves.toml: unknown save path {save.path!r}")
        out[save.call] = save
    return out


@dataclass(frozen=True)
class MainSave:
    """One whole save of an instance of a `__main__` model class."""

    call: ast.Call  # rows relative to `row_offset`
    row_offset: int
    statement: ast.stmt
    class_name: str
    save: WholeSave


def is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either side)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


def _top_statements(facts: ModuleFacts) -> Iterator[tuple[ast.stmt, int]]:
    """Module-level statements outside classes and functions, with their block's row offset."""
    for parsed in facts.blocks:
        if parsed.block.kind in ("class", "def") or parsed.tree is None:
            continue
        for stmt in parsed.tree.body:
            yield stmt, parsed.row_offset


Placed = list[tuple[ast.stmt, int]]  # statements and the row offset of their block


def _run_as_main(top: Placed, notebook: bool) -> Placed:
    """What runs as `__main__`: a notebook's statements, a script's main guard."""
    if notebook:
        return [(s, off) for s, off in top if not isinstance(s, (ast.Import, ast.ImportFrom))]
    return [(s, off) for stmt, off in top if is_main_guard(stmt) for s in stmt.body]  # type: ignore[attr-defined]


def _called_functions(run: Placed, facts: ModuleFacts) -> list[Placed]:
    """The bodies of the module's functions the code run calls by name, transitively."""
    seen: set[str] = set()
    out: list[Placed] = []
    todo = [run]
    while todo:
        body = todo.pop()
        for node in (n for stmt, _ in body for n in walk(stmt)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            name = node.func.id
            if name in seen or name not in facts.functions:
                continue
            seen.add(name)
            function = facts.functions.get(name)
            offset = _block_of(facts, name)
            if function is None or offset is None:
                continue
            placed = [(stmt, offset) for stmt in function.body]
            out.append(placed)
            todo.append(placed)
    return out


def _block_of(facts: ModuleFacts, name: str) -> int | None:
    for parsed in facts.blocks:
        if parsed.block.kind == "def" and parsed.block.name == name and parsed.tree is not None:
            return parsed.row_offset
    return None


def _instance_class(value: ast.expr, classes: dict[str, ClassFacts]) -> str | None:
    """`Net(...)`, `Net(...).to(device)`: the main-module class it makes, else None."""
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in _RETURNS_SELF
    ):
        value = value.func.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id if value.func.id in classes else None
    return None


def _instances(body: list[ast.stmt], classes: dict[str, ClassFacts]) -> dict[str, str]:
    """Names every assignment of which (in this scope) is an instance of one main class."""
    made: dict[str, str | None] = {}
    for node in (n for stmt in body for n in walk(stmt)):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, (ast.AugAssign, ast.For, ast.With, ast.NamedExpr)):
            targets = _bound_names(node)
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            cls = _instance_class(value, classes) if value is not None else None
            old = made.get(target.id, cls)
            made[target.id] = cls if cls is not None and old == cls else None
    return {name: cls for name, cls in made.items() if cls is not None}


def _bound_names(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, (ast.AugAssign, ast.NamedExpr)):
        return [node.target]
    if isinstance(node, ast.For):
        return [n for n in walk(node.target) if isinstance(n, ast.Name)]
    if isinstance(node, ast.With):
        return [
            n
            for item in node.items
            if item.optional_vars is not None
            for n in walk(item.optional_vars)
            if isinstance(n, ast.Name)
        ]
    return []


def _saved_object(call: ast.Call, save: WholeSave) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == save.keyword:
            return keyword.value
    if len(call.args) > save.argument and not any(
        isinstance(a, ast.Starred) for a in call.args[: save.argument + 1]
    ):
        return call.args[save.argument]
    return None


def _saved_class(
    value: ast.expr, instances: dict[str, str], classes: dict[str, ClassFacts]
) -> str | None:
    """The main class of the saved object, itself or an item of a literal container."""
    if isinstance(value, ast.Name):
        return instances.get(value.id)
    made = _instance_class(value, classes)
    if made is not None:
        return made
    items: Iterable[ast.expr | None] = ()
    if isinstance(value, ast.Dict):
        items = value.values
    elif isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        items = value.elts
    for item in items:
        found = _saved_class(item, instances, classes) if item is not None else None
        if found is not None:
            return found
    return None


def _calls(body: Placed) -> Iterator[tuple[ast.stmt, ast.Call, int]]:
    """Every call with the simple statement holding it (suppression comments go there)."""
    for top, offset in body:
        for node in walk(top):
            if isinstance(node, ast.stmt) and not hasattr(node, "body"):
                for inner in walk(node):
                    if isinstance(inner, ast.Call):
                        yield node, inner, offset


def main_module_saves(
    facts: ModuleFacts, notebook: bool, is_model: Callable[[ClassFacts], bool]
) -> list[MainSave]:
    """Whole saves of instances of this module's model classes, made by code run as
    `__main__` (a notebook's cells; a script's main guard and the functions it calls)."""
    text = facts.text
    # the rare word first: most modules are not scripts, and each test reads the whole text
    if (not notebook and "__main__" not in text) or ("save" not in text and "dump" not in text):
        return []
    classes = {
        name: cls
        for name, cls in facts.classes.items()
        if name not in facts.imports and is_model(cls)
    }
    if not classes:
        return []
    top = list(_top_statements(facts))
    run = _run_as_main(top, notebook)
    if not run:
        return []
    # the module's namespace: a name made at the top (or in another cell) is saved later
    scopes = [(run, _instances([s for s, _ in top], classes))]
    for body in _called_functions(run, facts):
        scopes.append((body, _instances([s for s, _ in body], classes)))
    saves = whole_saves()
    found: list[MainSave] = []
    for body, instances in scopes:
        for stmt, call, offset in _calls(body):
            save = saves.get(qualify(dotted_name(call.func), facts))
            value = _saved_object(call, save) if save is not None else None
            cls = _saved_class(value, instances, classes) if value is not None else None
            if save is not None and cls is not None:
                found.append(MainSave(call, offset, stmt, cls, save))
    return found
