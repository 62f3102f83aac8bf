"""Whether a frame's key names one column (`df[TARGET]`, `df[self.target]`), so that the
item is a Series (its `mean()` a numpy scalar) and not a frame or rows.

A key written as a string is read where it is written (load_safety); this module follows a
key held in a name: a module-level string constant, or an attribute that `__init__` sets once
from a string or from a parameter whose default is one and that no other method sets. A
caller may still pass a list for that parameter (a frame, refused all the same).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.constant_tests import module_string
from ckpt_lsp.analysis.facts import self_attribute
from ckpt_lsp.analysis.hparams import default_of
from ckpt_lsp.analysis.nodes import assigned_targets, walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.class_text import FunctionNode
    from ckpt_lsp.analysis.facts import ClassFacts
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety


def names_one_column(safety: LoadSafety, key: ast.expr, env: Env) -> bool:
    """`TARGET` bound once at module level to a string, `self.target` set from one, or a
    configuration's field (`cfg.data.target`)."""
    if isinstance(key, ast.Name):
        return key.id not in env and module_string(key.id, safety) is not None
    attr = self_attribute(key)
    if isinstance(key, ast.Attribute) and not attr:
        return _config_field(key)
    owner = env.get("self") if attr else None
    located = safety.project_class(owner.type_name) if owner and owner.type_name else None
    if located is None:
        return False
    key_text = f"self.{attr}"
    if key_text in env:
        return False  # the flow knows what it holds there (no string)
    return _string_attribute(safety, located[1], attr)


def _config_field(key: ast.Attribute) -> bool:
    """`df[cfg.data.target]`, `df[args.label]`: a field of a configuration read as the key.
    Taken for one column: were it a list of columns, the frame's reductions and items would be
    Series, refused all the same."""
    root: ast.expr = key
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id != "self"


def _string_attribute(safety: LoadSafety, cls: ClassFacts, attr: str) -> bool:
    methods = cls.assigning_methods()
    init = next((m for m in methods if m.name == "__init__"), None)
    stores = [
        node
        for method in methods
        for node in walk(method)
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
        and any(self_attribute(t) == attr for t in assigned_targets(node))
    ]
    if init is None or len(stores) != 1 or not any(s is stores[0] for s in init.body):
        return False
    value = stores[0].value
    if isinstance(value, ast.Name) and value.id in _parameters(init):
        value = default_of(init, value.id)  # `self.target = target`, `target="price"`
    if isinstance(value, ast.Constant):
        return isinstance(value.value, str)
    return isinstance(value, ast.Name) and module_string(value.id, safety) is not None


def _parameters(func: FunctionNode) -> set[str]:
    args = func.args
    return {p.arg for p in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
