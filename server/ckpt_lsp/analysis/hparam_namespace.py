"""What an argparse Namespace given whole to `save_hyperparameters(args)` puts in the checkpoint.

Lightning stores a Namespace by its entries (`vars(args)`), so the Namespace itself loads; an
entry does not when its argument converts to a refused class (`add_argument("--data-dir",
type=Path, default="data")`: argparse runs a string default through `type` too). The
Namespace is followed to the one function that parses it (the call site's own, or a project
helper returning `parser.parse_args(...)`), whose `add_argument` calls say what each entry
is. Certain only when nothing may change an entry afterwards: an entry assigned anywhere in
either function, `set_defaults`, `parse_known_args`, or the Namespace handed to another call
first, leave it unjudged.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

from ckpt_lsp.analysis.argparse_types import converted_type, dest_of
from ckpt_lsp.analysis.call_sites import CallSite
from ckpt_lsp.analysis.facts import ModuleFacts, dotted_name
from ckpt_lsp.analysis.load_safety import LoadSafety
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.weights_only import Refused

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)
_CHANGES = frozenset({"set_defaults", "parse_known_args", "parse_intermixed_args"})
_HOPS = 3


def refused_entry(expr: ast.expr, site: CallSite, safety: LoadSafety) -> str:
    """ "an `argparse.Namespace` whose `x` is <what>" for the Namespace `expr` the site passes,
    when one entry certainly holds a value the default load refuses; "" otherwise."""
    for dest, refused in refused_entries(expr, site, safety).items():
        return f"an `argparse.Namespace` whose `{dest}` is {refused.what}"
    return ""


def vars_entry(expr: ast.expr, site: CallSite, safety: LoadSafety) -> str:
    """ "a dict (`vars(args)`) whose `x` is <what>" for `Model(hparams=vars(args))` of a
    parsed Namespace one entry of which certainly holds a refused value; "" otherwise."""
    if not (
        isinstance(expr, ast.Call)
        and qualify(dotted_name(expr.func), site.facts) == "builtins.vars"
        and len(expr.args) == 1
        and not expr.keywords
    ):
        return ""
    for dest, refused in refused_entries(expr.args[0], site, safety).items():
        return f"a dict (`vars(...)`) whose `{dest}` is {refused.what}"
    return ""


def spread_entry(name: str, site: CallSite, safety: LoadSafety) -> Refused | None:
    """What `Model(**vars(args))` passes for parameter `name` from a parsed Namespace, when
    the default load certainly refuses it."""
    for kw in site.call.keywords:
        value = kw.value
        if (
            kw.arg is None
            and isinstance(value, ast.Call)
            and dotted_name(value.func) == "vars"
            and len(value.args) == 1
        ):
            found = refused_entries(value.args[0], site, safety).get(name)
            if found is not None:
                return found
    return None


def refused_entries(expr: ast.expr, site: CallSite, safety: LoadSafety) -> dict[str, Refused]:
    """The entries of the Namespace `expr` the site passes that certainly hold a value the
    default load refuses, by name."""
    func = site.func
    on_the_way: set[str] = set()  # entries the site's function assigns before the call
    if func is None:  # `lambda: Model(parse_args([...]))`: only a helper's fresh Namespace
        made = expr if isinstance(expr, ast.Call) else None
        parsing = None
        if made is not None and _parses(made) and isinstance(made.func, ast.Attribute):
            helper = made.func.value  # `build_parser().parse_args([...])`
            parsing = _parser_helper(helper, site, safety) if isinstance(helper, ast.Call) else None
        elif made is not None:
            parsing = _parsing_helper(made, site, safety)
    else:
        made, names = _made(expr, func, site.call)
        reaching = _reaching(func, site.call)
        if made is None or _handed_on(reaching, names, site, safety):
            return {}
        parsing = _parsing_function(made, func, site, safety)
        on_the_way = _assigned_attributes(reaching)
    if parsing is None:
        return {}
    facts, parser_func = parsing
    assigned = _assigned_attributes(_walk(parser_func)) | on_the_way
    found: dict[str, Refused] = {}
    for call in _calls(parser_func):
        if not isinstance(call.func, ast.Attribute) or call.func.attr != "add_argument":
            continue
        dest = dest_of(call)
        kind = converted_type(call, facts) if dest and dest not in assigned else ""
        refused = safety.catalog.for_type(kind) if kind else None
        if refused is not None and _only_adder(parser_func, dest, facts):
            found.setdefault(dest, refused)
    return found


def _made(
    expr: ast.expr, func: ast.FunctionDef | ast.AsyncFunctionDef, site: ast.Call
) -> tuple[ast.Call | None, set[str]]:
    """The call that made the value, through local names each bound once, plainly, before
    the site (`args = parse_args(argv)`); and the names it went by."""
    names: set[str] = set()
    params = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
    for _ in range(_HOPS):
        if not isinstance(expr, ast.Name) or expr.id in names or expr.id in params:
            break
        names.add(expr.id)
        bound = _bound_once(func, expr.id)
        if bound is None or (bound.lineno, bound.col_offset) >= (site.lineno, site.col_offset):
            return None, names
        expr = bound.value
    return (expr if isinstance(expr, ast.Call) else None), names


def _bound_once(func: ast.AST, name: str) -> ast.Assign | None:
    """The one statement binding `name` in the function, when it is `name = value`."""
    stores = [
        n
        for n in _walk(func)
        if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)
    ]
    plain = [
        n
        for n in _walk(func)
        if isinstance(n, ast.Assign)
        and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name)
        and n.targets[0].id == name
    ]
    return plain[0] if len(stores) == 1 and len(plain) == 1 else None


def _parsing_function(
    made: ast.Call, func: ast.FunctionDef | ast.AsyncFunctionDef, site: CallSite, safety: LoadSafety
) -> tuple[ModuleFacts, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """The function whose parser made the Namespace: `parser.parse_args()` in the site's own
    function, or a project helper every `return` of which is a `parse_args` call."""
    if _parses(made):
        assert isinstance(made.func, ast.Attribute)
        if isinstance(made.func.value, ast.Call):  # `build_parser().parse_args(argv)`
            return _parser_helper(made.func.value, site, safety)
        return (site.facts, func) if _one_parser(func) else None
    return _parsing_helper(made, site, safety)


def _parser_helper(
    made: ast.Call, site: CallSite, safety: LoadSafety
) -> tuple[ModuleFacts, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """A project helper that builds one parser and returns it, that `made` calls."""
    return _helper(made, site.facts, site.env.bindings, safety, _named)


def _parsing_helper(
    made: ast.Call, site: CallSite, safety: LoadSafety
) -> tuple[ModuleFacts, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """A project helper every `return` of which is a `parse_args` call, that `made` calls;
    or, for one whose one `return` is `build_parser().parse_args(argv)`, the helper building
    the parser."""
    found = _helper(made, site.facts, site.env.bindings, safety, _parsed)
    if found is not None:
        return found
    helper = _called(made, site.facts, site.env.bindings, safety)
    returns = _returns(helper[1]) if helper is not None else []
    if helper is None or len(returns) != 1 or not _parsed(returns[0]):
        return None
    assert isinstance(returns[0], ast.Call) and isinstance(returns[0].func, ast.Attribute)
    builder = returns[0].func.value
    if not isinstance(builder, ast.Call):
        return None
    return _helper(builder, helper[0], {}, safety, _named)


def _helper(
    made: ast.Call,
    facts: ModuleFacts,
    bindings: Mapping[str, object],
    safety: LoadSafety,
    returns_ok: Callable[[ast.expr | None], bool],
) -> tuple[ModuleFacts, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """The project function `made` calls (in `facts`, where `bindings` are locals), when it
    builds one parser and every `return` passes `returns_ok`."""
    found = _called(made, facts, bindings, safety)
    returns = _returns(found[1]) if found is not None else []
    if found is None or not returns or not all(returns_ok(r) for r in returns):
        return None
    return found if _one_parser(found[1]) else None


def _called(
    made: ast.Call, facts: ModuleFacts, bindings: Mapping[str, object], safety: LoadSafety
) -> tuple[ModuleFacts, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """The project function `made` calls by a name that is not a local."""
    dotted = dotted_name(made.func)
    if not dotted or dotted.split(".")[0] in bindings:
        return None
    return safety.project_function(qualify(dotted, facts))


def _returns(func: ast.AST) -> list[ast.expr | None]:
    return [n.value for n in _walk(func) if isinstance(n, ast.Return)]


def _named(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Name)


def _parsed(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Call) and _parses(value)


def _parses(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr == "parse_args"


def _one_parser(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """One `ArgumentParser(...)` built in the function and nothing that changes its results."""
    built = [c for c in _calls(func) if dotted_name(c.func).endswith("ArgumentParser")]
    changes = [
        c for c in _calls(func) if isinstance(c.func, ast.Attribute) and c.func.attr in _CHANGES
    ]
    return len(built) == 1 and not changes


def _only_adder(
    func: ast.FunctionDef | ast.AsyncFunctionDef, dest: str, facts: ModuleFacts
) -> bool:
    """Every `add_argument` storing to `dest` converts to the same class."""
    kinds = {
        converted_type(c, facts)
        for c in _calls(func)
        if isinstance(c.func, ast.Attribute)
        and c.func.attr == "add_argument"
        and dest_of(c) == dest
    }
    return len(kinds) == 1


def _assigned_attributes(nodes: list[ast.AST]) -> set[str]:
    """Attributes assigned or deleted among `nodes` (`args.data_dir = str(args.data_dir)`)."""
    return {
        n.attr
        for n in nodes
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, (ast.Store, ast.Del))
    }


def _reaching(func: ast.AST, site: ast.Call | None) -> list[ast.AST]:
    """The nodes of a function on a path that may reach `site`: a branch that ends in
    `return` or `raise` without holding the site does not (nested functions left out)."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (*FunctionNode, ast.ClassDef, ast.Lambda)):
            continue
        if site is not None and isinstance(node, ast.If):
            stack.extend([*_branch(node.body, site), *_branch(node.orelse, site), node.test])
            continue
        found.append(node)
        stack.extend(child_nodes(node))
    return found


def _branch(body: list[ast.stmt], site: ast.Call) -> list[ast.stmt]:
    exits = bool(body) and isinstance(body[-1], (ast.Return, ast.Raise))
    holds = any(n is site for stmt in body for n in walk(stmt))
    return [] if exits and not holds else list(body)


def _handed_on(nodes: list[ast.AST], names: set[str], site: CallSite, safety: LoadSafety) -> bool:
    """The Namespace passed to another call on the way (which may change its entries; not a
    project function that only reads its entries), or its entries reached through
    `__dict__`."""
    in_site = {id(n) for n in walk(site.call)}  # `Model(**vars(args))` reads, not changes
    for call in nodes:
        if not isinstance(call, ast.Call) or id(call) in in_site:
            continue
        for at, arg in enumerate(call.args):
            if (
                isinstance(arg, ast.Name)
                and arg.id in names
                and not _reads_at(call, at, site, safety)
            ):
                return True
        if any(isinstance(k.value, ast.Name) and k.value.id in names for k in call.keywords):
            return True
    return any(
        isinstance(n, ast.Attribute) and n.attr == "__dict__" and dotted_name(n.value) in names
        for n in nodes
    )


def _reads_at(call: ast.Call, at: int, site: CallSite, safety: LoadSafety) -> bool:
    """Whether the project function `call` names only reads entries (`args.lr`) of what it
    is given at position `at` (`make_config(args, yaml_cfg)`)."""
    dotted = dotted_name(call.func) if isinstance(call.func, ast.Name) else ""
    if (
        not dotted
        or dotted in site.env.bindings
        or any(isinstance(a, ast.Starred) for a in call.args)
    ):
        return False
    found = safety.project_function(qualify(dotted, site.facts))
    params = found[1].args.posonlyargs + found[1].args.args if found is not None else []
    if found is None or at >= len(params):
        return False
    name = params[at].arg
    uses = [n for n in _walk(found[1]) if isinstance(n, ast.Name) and n.id == name]
    attributes = {
        id(n.value): n
        for n in _walk(found[1])
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }
    return all(
        isinstance(n.ctx, ast.Load)
        and id(n) in attributes
        and isinstance(attributes[id(n)].ctx, ast.Load)
        and attributes[id(n)].attr != "__dict__"
        for n in uses
    )


def _calls(func: ast.AST) -> list[ast.Call]:
    return [n for n in _walk(func) if isinstance(n, ast.Call)]


def _walk(func: ast.AST) -> list[ast.AST]:
    """The nodes of a function, nested functions and classes left out."""
    found: list[ast.AST] = []
    stack = list(child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (*FunctionNode, ast.ClassDef, ast.Lambda)):
            continue
        found.append(node)
        stack.extend(child_nodes(node))
    return found
