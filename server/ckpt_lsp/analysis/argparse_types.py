"""The classes argparse arguments convert to: `add_argument("--data-root", type=Path)`.

argparse runs a string default through `type` too, so `args.data_root` holds a `Path`
whenever the argument has a default that is not None or is required. Read only from the
blocks of the module whose text mentions `add_argument` (their trees are parsed anyway).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk


def argument_types(facts: ModuleFacts, dest: str) -> list[str]:
    """The qualified `type=` of every `add_argument` in the module that stores to `dest`
    and always gives it a value; "" for one without a `type=`, or that may leave None."""
    return [
        converted_type(call, facts) for call in _add_argument_calls(facts) if _dest(call) == dest
    ]


def converted_type(call: ast.Call, facts: ModuleFacts) -> str:
    """The qualified `type=` one `add_argument` call always gives its value; "" when it has
    none, or may leave None or a list."""
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    given = keywords.get("type")
    kind = qualify(dotted_name(given), facts) if given is not None else ""
    if not kind or "nargs" in keywords or "action" in keywords or not _valued(call, kind, facts):
        return ""
    return kind


def dest_of(call: ast.Call) -> str:
    """Where argparse stores one `add_argument` call's value ("" when not literal)."""
    if any(k.arg is None for k in call.keywords):
        return ""  # `**options` may name the dest
    return _dest(call)


def _add_argument_calls(facts: ModuleFacts) -> Iterator[ast.Call]:
    for parsed in facts.blocks:
        if "add_argument" not in parsed.block.text:
            continue
        tree = parsed.tree
        for node in walk(tree) if tree is not None else ():
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"
            ):
                yield node


def _dest(call: ast.Call) -> str:
    """Where argparse stores the argument: `dest=`, the first long option, else the first."""
    for keyword in call.keywords:
        if keyword.arg == "dest" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if not names or len(names) != len(call.args):
        return ""
    longs = [n for n in names if n.startswith("--")]
    chosen = longs[0] if longs else names[0]
    return chosen.lstrip("-").replace("-", "_")


def _valued(call: ast.Call, kind: str, facts: ModuleFacts) -> bool:
    """Whether the argument always holds a `kind`: required (a positional, or
    `required=True`), or a string default (argparse runs it through `type`; other defaults
    are kept as they are), a default built by `kind` itself, or one of its members (an
    Enum's)."""
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    positional = bool(call.args) and all(
        isinstance(a, ast.Constant) and not str(a.value).startswith("-") for a in call.args
    )
    required = keywords.get("required")
    if positional or (isinstance(required, ast.Constant) and required.value is True):
        return True
    default = keywords.get("default")
    if isinstance(default, ast.Constant):
        return isinstance(default.value, str)
    if isinstance(default, ast.Attribute):  # `type=Mode, default=Mode.TRAIN`: a member
        return qualify(dotted_name(default.value), facts) == kind
    if kind == _PATH and default is not None:
        return _built_path(default, facts, 0)
    return isinstance(default, ast.Call) and qualify(dotted_name(default.func), facts) == kind


_PATH = "pathlib.Path"


def _built_path(value: ast.expr, facts: ModuleFacts, hops: int) -> bool:
    """A default that is a `Path` however written: `Path("data") / "noise"`,
    `Path(__file__).parent / "runs"`, `Path.home()`, or a module-level name bound to one."""
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Div):
        return _built_path(value.left, facts, hops)
    if isinstance(value, ast.Name) and hops < 2 and value.id in facts.assigns:
        bound = facts.assigns[value.id]
        return isinstance(bound, ast.expr) and _built_path(bound, facts, hops + 1)
    while isinstance(value, (ast.Attribute, ast.Call)):
        if isinstance(value, ast.Call) and qualify(dotted_name(value.func), facts) == _PATH:
            return True
        if isinstance(value, ast.Attribute) and value.attr not in _PATH_TO_PATH:
            return False  # `.name`, `.read_text()`: a string
        value = value.func if isinstance(value, ast.Call) else value.value
    return isinstance(value, ast.Name) and qualify(value.id, facts) == _PATH


# what a `Path` gives that is a `Path` again (and the class's own constructors)
_PATH_TO_PATH = frozenset(
    {"parent", "resolve", "absolute", "expanduser", "with_suffix", "with_name", "joinpath"}
    | {"home", "cwd"}
)


_NUMBER_TYPES = frozenset({"builtins.int", "builtins.float"})


def number_argument(facts: ModuleFacts, dest: str) -> bool:
    """Whether every `add_argument` storing to `dest` gives it a Python int or float:
    `type=float` with a number or string default (or required), no `nargs` or `action`."""
    calls = [call for call in _add_argument_calls(facts) if _dest(call) == dest]
    return bool(calls) and all(_number_valued(call, facts) for call in calls)


def _number_valued(call: ast.Call, facts: ModuleFacts) -> bool:
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    given = keywords.get("type")
    kind = qualify(dotted_name(given), facts) if given is not None else ""
    if kind not in _NUMBER_TYPES or "nargs" in keywords or "action" in keywords:
        return False
    default = keywords.get("default")
    if isinstance(default, ast.UnaryOp) and isinstance(default.op, ast.USub):
        default = default.operand
    number = (
        isinstance(default, ast.Constant)
        and isinstance(default.value, (int, float))
        and not isinstance(default.value, bool)
    )
    return number or _valued(call, kind, facts)


def unset_by_default(facts: ModuleFacts, dest: str) -> bool:
    """Whether every `add_argument` storing to `dest` leaves a falsy value when the flag is
    not given (no default, `default=None`/`0`/`""`, `store_true`), so `args.w or fallback`
    is the fallback on a run that does not pass it; no `set_defaults` anywhere to change it."""
    calls = [call for call in _add_argument_calls(facts) if _dest(call) == dest]
    return bool(calls) and not _set_defaults(facts) and all(_falsy_default(c) for c in calls)


def _falsy_default(call: ast.Call) -> bool:
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    if any(k.arg is None for k in call.keywords) or "required" in keywords:
        return False
    if call.args and not all(
        isinstance(a, ast.Constant) and str(a.value).startswith("-") for a in call.args
    ):
        return False  # a positional always holds what the command line gave
    action = keywords.get("action")
    if action is not None and not (
        isinstance(action, ast.Constant) and action.value in ("store", "store_true", "count")
    ):
        return False
    default = keywords.get("default")
    return default is None or (isinstance(default, ast.Constant) and not default.value)


def _set_defaults(facts: ModuleFacts) -> bool:
    return any("set_defaults" in parsed.block.text for parsed in facts.blocks)
