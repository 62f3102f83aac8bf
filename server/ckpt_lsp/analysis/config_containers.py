"""What `OmegaConf.to_container(cfg)` and `OmegaConf.to_object(cfg)` of a config give.

`to_container` turns a config into dicts and lists, yet keeps what a structured config's typed
fields hold: Enum members (unless `enum_to_str=True`) and `Path`s, which the default
`torch.load` refuses. `to_object`, or `structured_config_mode=SCMode.INSTANTIATE`, builds the
dataclass itself, refused like any dataclass instance. Measured with omegaconf 2.4 and
torch 2.13: `to_container(OmegaConf.structured(Cfg))` of a `schedule: Schedule = ...` field
fails to load, with `enum_to_str=True` it loads, a `Path` field fails either way.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.config_shapes import RefusedLeaf, StructuredDict, refused_leaves
from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.names import qualify

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety
    from ckpt_lsp.weights_only import Refused

CONVERTERS = frozenset({"omegaconf.OmegaConf.to_container", "omegaconf.OmegaConf.to_object"})
_TO_OBJECT = "omegaconf.OmegaConf.to_object"
_MODES = ("DICT_CONFIG", "DICT", "INSTANTIATE")


def converted(judge: LoadSafety, call: ast.Call, env: Env) -> Refused | None:
    """The refusal of `OmegaConf.to_container(cfg, ...)` / `to_object(cfg)`."""
    if len(call.args) != 1 or judge.depth_left() <= 0:
        return None
    given = judge.kind_of(call.args[0], env)
    if given is None:
        return None
    return after(judge, call, qualify(dotted_name(call.func), judge.facts), given)


def after(judge: LoadSafety, call: ast.Call, qualified: str, given: Refused) -> Refused | None:
    """What converting `given` (a config) the way `call` does leaves refused: the dataclass
    a structured config instantiates, else the first typed field it keeps; None when it
    converts to plain data or the call's options are not known."""
    if given.kind != "omegaconf":
        return None
    options = _options(call)
    if options is None:
        return None
    mode, enum_to_str = options
    shape = given.shape
    if mode == "DICT_CONFIG":  # a structured config is handed back as it is
        return replace(given, fix="") if isinstance(shape, StructuredDict) else None
    builds = qualified == _TO_OBJECT or mode == "INSTANTIATE"
    if builds and isinstance(shape, StructuredDict):
        built = judge.of_type(shape.type_name)
        return replace(built, fix="") if built is not None else None
    leaves = refused_leaves(shape, enum_to_str)
    if not leaves:
        return None
    return _holding(*leaves[0])


def copied(judge: LoadSafety, call: ast.Call, env: Env) -> Refused | None:
    """`dict(cfg.data)` (or `list(cfg.stages)`) of a config whose shape is known: a dict of
    its top-level values, refused when one of them is a nested config (a list or mapping
    stays a ListConfig or DictConfig) or a typed field the default load refuses; None when
    they are plain.
    Measured: `dict(cfg.optim)` of scalars loads, of `{"betas": [0.9, 0.99]}` fails."""
    if len(call.args) != 1 or call.keywords:
        return None
    given = judge.kind_of(call.args[0], env)
    shape = given.shape if given is not None and given.kind == "omegaconf" else None
    if given is not None and isinstance(shape, (ast.List, ast.Tuple)):
        # `list(cfg.curriculum)`: measured, of `[{noise: 0.3}]` it holds DictConfigs and
        # fails, of `[1, 2]` plain ints that load
        return _first_held(given, [("", v) for v in shape.elts], "a list")
    if given is None or not isinstance(shape, ast.Dict):
        return None
    named = [
        (f" (`{key.value!s}`)" if isinstance(key, ast.Constant) else " (`?`)", value)
        for key, value in zip(shape.keys, shape.values)
    ]
    return _first_held(given, named, "a dict")


def _first_held(given: Refused, items: list[tuple[str, ast.expr]], copy: str) -> Refused | None:
    """The copy's refusal for its first item that is a typed field the load refuses or a
    nested config; None when every item is plain. `items`: (what names the item, its shape)."""
    for named, value in items:
        if isinstance(value, RefusedLeaf):
            return replace(value.refused, what=f"{copy} holding {value.refused.what}{named}")
        if isinstance(value, (ast.Dict, ast.List, ast.Tuple)):
            what = f"{copy} holding {given.what}{named}"
            return replace(given, what=what, fix="", holder=True, shape=None)
    return None


def container_keys(judge: LoadSafety, call: ast.Call, env: Env) -> dict[str, Refused] | None:
    """`plain = OmegaConf.to_container(cfg)`: what `plain[key]` holds for each top-level key
    holding a typed field it keeps (a nested dict holding one is refused as a container);
    None when the call is no such conversion."""
    dotted = dotted_name(call.func)
    if not dotted or qualify(dotted, judge.facts) != "omegaconf.OmegaConf.to_container":
        return None
    if len(call.args) != 1 or judge.depth_left() <= 0:
        return None
    options = _options(call)
    given = judge.kind_of(call.args[0], env)
    if options is None or given is None or given.kind != "omegaconf" or options[0] != "DICT":
        return None
    keys: dict[str, Refused] = {}
    for dotted_key, leaf in refused_leaves(given.shape, options[1]):
        top, _, inner = dotted_key.partition(".")
        if top not in keys:
            keys[top] = _holding(inner, leaf) if inner else replace(leaf, fix="")
    return keys


def _options(call: ast.Call) -> tuple[str, bool] | None:
    """The structured-config mode and `enum_to_str` a call asks for; None when a keyword's
    value is not written out."""
    mode, enum_to_str = "DICT", False
    for keyword in call.keywords:
        if keyword.arg == "enum_to_str":
            if not isinstance(keyword.value, ast.Constant):
                return None
            enum_to_str = bool(keyword.value.value)
        elif keyword.arg == "structured_config_mode":
            named = dotted_name(keyword.value).rsplit(".", 1)[-1]
            if named not in _MODES:
                return None
            mode = named
        elif keyword.arg is None:
            return None  # `**options`
    return mode, enum_to_str


def _holding(key: str, leaf: Refused) -> Refused:
    """A dict the conversion gives, holding `leaf` at the dotted `key`."""
    if leaf.kind == "enum-member":
        loadable = "plain values (`OmegaConf.to_container(cfg, enum_to_str=True)`)"
    else:
        loadable = "plain values (each `Path` field as `str(...)`)"
    what = f"a dict holding {leaf.what} (`{key}`)" if key else f"a list holding {leaf.what}"
    return replace(leaf, what=what, loadable=loadable, fix="", holder=True)
