"""What local names hold at each statement of one function: simple flow, no execution.

A name assigned on the straight path takes the new value; one assigned in a branch or a loop
body may hold either (the loop may not run). A name is refused at a statement when every value
it may hold there is refused or a literal (`best = 0.0` then `best = np.mean(...)` in the loop:
a run that saves after improving saves the numpy value). Anything unknown makes it unknown.
A literal one `if` arm binds while the other binds a refused value is no starting value: the
literal arm may be the one that runs, so the name is unknown there.
Parameters start with their annotation.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Union

from ckpt_lsp.analysis.argparse_types import unset_by_default
from ckpt_lsp.analysis.config_containers import container_keys
from ckpt_lsp.analysis.constant_tests import FALSE_MARK, TRUE_MARK, decided
from ckpt_lsp.analysis.dataclass_dicts import dict_keys
from ckpt_lsp.analysis.dataclass_fields import agreed, forget_escaped
from ckpt_lsp.analysis.demand import Demand, of_returns
from ckpt_lsp.analysis.elements import (
    dict_mark,
    displayed_item,
    every_item_key,
    iterated_items,
    paired_items,
    shared_item,
)
from ckpt_lsp.analysis.facts import dotted_name
from ckpt_lsp.analysis.hparams import default_of
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.record_columns import (
    appended_columns,
    columns_key,
    display_numbers,
    is_mark,
)
from ckpt_lsp.analysis.record_keys import (
    appended_object,
    appended_records,
    field_items,
    record_of,
    shown_keys,
)
from ckpt_lsp.weights_only import Refused, WeightsOnlyCatalog

# env key marking a name bound only to number literals (no Python name holds "#")
NUMBER_MARK = "#number:"
# env key marking a parameter the call left at its `None` default
NONE_MARK = "#none:"
# env key marking a name that iterates a pandas frame's column labels (`for c in df.columns`)
COLUMN_MARK = "#column:"

if TYPE_CHECKING:
    from ckpt_lsp.analysis.load_safety import Env, LoadSafety
    from ckpt_lsp.analysis.object_effects import Effects

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
# (statement, names whose items are known, state) -> ids of the Name nodes that only read
KeptNames = Callable[[ast.stmt, "set[str]", "State"], "set[int]"]


class _Literal:
    """A literal value (a number, a string, None): loads, and overwritten later maybe."""


class _Number(_Literal):
    """A number literal: numpy arithmetic with it stays numpy (`losses.min() < best`)."""


class _Truth(_Literal):
    """`True` / `False` as written: its truth decides an `if` on the name holding it."""

    def __init__(self, truth: bool) -> None:
        self.truth = truth


class ModuleText(_Literal):
    """A module-level string constant a parameter holds (`def load_config(text=RUN_YAML)`
    called without `text`): `yaml.safe_load(text)` has the shape of that text."""

    def __init__(self, constant: str) -> None:
        self.constant = constant

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModuleText) and other.constant == self.constant

    def __hash__(self) -> int:
        return hash(("module-text", self.constant))

    def __repr__(self) -> str:
        return f"ModuleText({self.constant!r})"


class KeyText(_Literal):
    """A string literal a parameter holds: passed (`task_config("nowcast")`), or the key a
    registry call `REG[name](...)` picks the judged class by. `if name == "patch":` is
    decided, and `TASK_CONFIGS[task]` is that entry of a module-level table."""

    def __init__(self, key_text: str) -> None:
        self.key_text = key_text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyText) and other.key_text == self.key_text

    def __hash__(self) -> int:
        return hash(("key-text", self.key_text))


class _NoneLiteral(_Literal):
    """`None` as written: nothing can be read out of it, so where a branch leaves a name at
    `None` its items are what the other branches put there (`best = None`, then `best =
    metrics` in a loop's `if`: `best["ssim"]` after the loop is the metrics' one)."""


class _Unknown:
    """A value nothing is known about."""


class _NoneDefault(_Unknown):
    """A parameter the call left at its `None` default: unknown, but `p or Default()` is
    the default's value."""


# bound key: the parameters a call left at a `None` default (no parameter is named so)
UNPASSED_NONE = "#unpassed-none"
NONE_DEFAULT = _NoneDefault()
LITERAL = _Literal()
NONE_LITERAL = _NoneLiteral()
NUMBER = _Number()
TRUE, FALSE = _Truth(True), _Truth(False)
_TRUTHS = (frozenset({TRUE}), frozenset({FALSE}))
UNKNOWN = _Unknown()
Possible = Union[Refused, _Literal, _Unknown]
State = dict[str, frozenset[Possible]]


def collapse(possible: Iterable[Possible]) -> Refused | None:
    """What a name holds for the judge: refused when every possibility is refused or a
    literal (and one at least is refused); the fix stays only when all agree."""
    # a set's order follows string hashes, which change per process: sort so that the
    # refusal reported (and what `list(x)` of it gives) is the same in every run
    refused = sorted((p for p in possible if isinstance(p, Refused)), key=_order, reverse=True)
    if not refused or any(isinstance(p, _Unknown) for p in possible):
        return None
    first = refused[0]
    same = first if len(refused) == 1 else agreed(refused)
    if any(isinstance(p, _Literal) for p in possible) or same is None:
        holder = any(r.holder for r in refused)  # a filled container's items stay unknown
        return Refused(first.kind, first.what, first.loadable, "", first.stateful, holder=holder)
    return same


def _order(refused: Refused) -> tuple[str, str, str, str]:
    return (refused.kind, refused.what, refused.type_name, refused.fix)


def env_of(state: State) -> dict[str, Refused | None]:
    env = {name: collapse(possible) for name, possible in state.items()}
    for name, possible in state.items():
        if possible and all(isinstance(p, _Number) for p in possible):
            env[NUMBER_MARK + name] = None
        elif possible == frozenset({NONE_DEFAULT}):
            env[NONE_MARK + name] = None
        elif possible in _TRUTHS:
            env[(TRUE_MARK if TRUE in possible else FALSE_MARK) + name] = None
        elif len(possible) == 1 and isinstance(text := next(iter(possible)), ModuleText):
            env[text_key(name, text.constant)] = None
        elif len(possible) == 1 and isinstance(key := next(iter(possible)), KeyText):
            env[f"{KEY_MARK}{name}={key.key_text}"] = None
    return env


KEY_MARK = "#key:"  # env key `#key:param=patch`: the string literal the name holds


def key_text(name: str, env: Mapping[str, object]) -> str | None:
    """The string literal a local holds, as env_of marked it."""
    prefix = f"{KEY_MARK}{name}="
    return next((k[len(prefix) :] for k in env if k.startswith(prefix)), None)


TEXT_MARK = "#text:"  # env key `#text:param=CONSTANT`: the module string the name holds


def text_key(name: str, constant: str) -> str:
    return f"{TEXT_MARK}{name}={constant}"


def text_constant(name: str, env: Mapping[str, object]) -> str | None:
    """The module string constant a local holds, as env_of marked it."""
    prefix = f"{TEXT_MARK}{name}="
    return next((k[len(prefix) :] for k in env if k.startswith(prefix)), None)


def literal_of(value: ast.Constant) -> _Literal:
    """The possibility a literal gives: `True`/`False` keep their truth."""
    if isinstance(value.value, bool):
        return TRUE if value.value else FALSE
    return NONE_LITERAL if value.value is None else LITERAL


def past_unpassed(value: ast.expr, env: Mapping[str, object]) -> ast.expr:
    """`controller or Ctrl()` (or `controller if controller is not None else Ctrl()`) of a
    parameter the call left at None (`env` marks it): the `Ctrl()`; any other value as it is."""
    if isinstance(value, ast.IfExp):
        unpassed = _none_test(value.test, env)
        if unpassed is None:
            return value
        return value.body if unpassed else value.orelse
    if not isinstance(value, ast.BoolOp) or not isinstance(value.op, ast.Or):
        return value
    rest = list(value.values)
    while len(rest) > 1 and isinstance(rest[0], ast.Name) and NONE_MARK + rest[0].id in env:
        rest.pop(0)
    return rest[0] if len(rest) == 1 else value


def _none_test(test: ast.expr, env: Mapping[str, object]) -> bool | None:
    """Whether the test holds, when it asks if a parameter the call left at None (or gave
    a refused value, never None) is None: `m is None`, `m is not None`, `m`; None when the
    test asks nothing of the kind."""
    if isinstance(test, ast.Name):
        return False if NONE_MARK + test.id in env else None
    if not (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], (ast.Is, ast.IsNot))
        and isinstance(test.left, ast.Name)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    ):
        return None
    if NONE_MARK + test.left.id in env:
        is_none = True
    elif isinstance(env.get(test.left.id), Refused):  # `copy.deepcopy(model) if model is not None`
        is_none = False
    else:
        return None
    return is_none == isinstance(test.ops[0], ast.Is)


class LocalFlow:
    """Walks one function and records, for each simple statement, the names' state before it."""

    def __init__(
        self, safety: LoadSafety, self_env: dict[str, Refused | None] | None = None
    ) -> None:
        self.safety = safety
        self.before: dict[int, State] = {}  # id(stmt) -> state before it
        self.returns: list[Refused | None] = []
        # per `return a, b`: what each element gives (None: the return is no tuple display)
        self.return_items: list[list[Refused | None] | None] = []
        # per `return a, (b, c)`: what each element of an inner tuple display gives, by position
        self.return_nested: list[dict[int, list[Refused | None]]] = []
        # per `return a, evaluate(m)`: the calls among the elements and the names' values
        # there, by position (their own tuples are worked out only when asked)
        self.return_calls: list[dict[int, tuple[ast.Call, dict[str, Refused | None]]]] = []
        # per `return {"k": v}`: what each constant key gives (None: no such dict display)
        self.return_keys: list[dict[str, Refused | None] | None] = []
        # per `return`: its dict display and the names' values there (None: no display),
        # for `return_numbers`, asked only of a helper whose results are appended to a list
        self._return_displays: list[tuple[ast.Dict, dict[str, Refused | None]] | None] = []
        # per `return`: what the flow knows of each returned name's attributes, by position
        # (-1: the name is the whole result), as `.attr` -> possibilities
        self.return_objects: list[dict[int, State]] = []
        self._self_env = self_env or {}
        self._effect_keys: set[str] = set()  # `obj.x` keys a method call of obj set
        # whether a held dict's keys may be in the state (`d.cache['k']`, `self.stats['k']`)
        self._items = any("[" in k for k in self._self_env)
        self._func: FunctionNode | None = None
        # statements nothing asked of the flow depends on (see demand.py), and whether what
        # the returns give is asked
        self._idle: frozenset[int] = frozenset()
        self._returns = True
        # the loop names bound to the literals of a constant display, while its body is walked
        # (`for k in (1, 5, 10)`): a key written `f"R@{k}"` is each of them
        self._literals: dict[str, tuple[object, ...]] = {}

    def run(
        self,
        func: FunctionNode,
        bound: Mapping[str, object] | None = None,
        needs: Demand | None = None,
    ) -> LocalFlow:
        """`bound`: what a call passes to parameters (a Refused or NUMBER), when known.
        `needs`: what the only expressions that will be asked of the flow need (demand.py):
        the statements that cannot change them are not evaluated, they leave the state as
        it was; without it every statement is evaluated and the returns are recorded."""
        state: State = {}
        self._func = func
        if needs is not None:
            self._idle = needs.idle
            self._returns = needs.returns
        args = func.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.arg in self._self_env:  # `self`: the class says what it is
                continue
            given = (bound or {}).get(arg.arg)
            if isinstance(given, (Refused, _Literal)):
                state[arg.arg] = frozenset({given})
                continue
            judged = self.safety.of_annotation(arg.annotation)
            state[arg.arg] = frozenset({judged if judged is not None else UNKNOWN})
            if arg.arg in _unpassed(bound):
                state[arg.arg] = frozenset({NONE_DEFAULT})
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                state[extra.arg] = frozenset({UNKNOWN})
        for key, given in (bound or {}).items():  # `ds['obs']`: an item the caller knew
            if "[" in key and key.split("[", 1)[0] in state and isinstance(given, Refused):
                state[key] = frozenset({given})
        self._walk(func.body, state)
        return self

    def nested(self, at: int, count: int) -> list[list[Refused | None] | None]:
        """Per `return`: the elements of the tuple its element `at` is, a display (`return x,
        (a, b)`) or a helper's tuple (`return x, evaluate(m)`), judged where it returns."""
        found: list[list[Refused | None] | None] = []
        for shown, called in zip(self.return_nested, self.return_calls):
            if at in shown:
                found.append(shown[at])
            elif at in called:
                call, env = called[at]
                found.append(self.safety.items_of(call, count, env))
            else:
                found.append(None)
        return found

    @property
    def return_numbers(self) -> list[frozenset[str] | None]:
        """Per `return {...}`: its constant keys holding a number (None: no dict display)."""
        return [
            display_numbers(self.safety, *shown) if shown is not None else None
            for shown in self._return_displays
        ]

    def env_before(self, stmt: ast.stmt) -> dict[str, Refused | None]:
        state = self.before.get(id(stmt), {})
        return {**self._self_env, **env_of(state)}

    def judge(self, expr: ast.expr, stmt: ast.stmt) -> Refused | None:
        return self.safety.of_expression(expr, self.env_before(stmt))

    def _kept(self, stmt: ast.stmt, names: set[str], state: State) -> set[int]:
        """The mentions of `names` in `stmt` that leave their keys as they were."""
        from ckpt_lsp.analysis.read_only import read_only_names  # it needs the judge's types

        return read_only_names(stmt, names, self.safety, {**self._self_env, **env_of(state)})

    # -- the walk --------------------------------------------------------
    def _walk(self, body: list[ast.stmt], state: State) -> State:
        for stmt in body:
            state = self._statement(stmt, state)
        return state

    def _statement(self, stmt: ast.stmt, state: State) -> State:
        if id(stmt) in self._idle and not isinstance(stmt, _COMPOUND):
            self.before[id(stmt)] = state
            return state  # what it binds is read by nothing asked of the flow
        if isinstance(stmt, ast.Return) and self._returns:
            # before `_called` forgets what a returned name held
            self.return_objects.append(self._returned_objects(stmt, state))
        state = forget_escaped(stmt, self._called(stmt, state))
        self.before[id(stmt)] = state
        # what the statement may do to a held dict's keys counts after its own reads
        state = self._forget_attribute_keys(stmt, state)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return {**state, stmt.name: frozenset({UNKNOWN})}
        if isinstance(stmt, ast.If):
            taken = decided(stmt.test, self.safety, {**self._self_env, **state})
            if taken is not None:  # `if RESUME_EXACT:` always runs the same arm
                return self._walk(stmt.body if taken else stmt.orelse, state)
            taken = none_taken(stmt.test, state)  # `if cfg is None:` of a None left so
            arm = stmt.body if taken else stmt.orelse
            if taken is not None and not (arm and isinstance(arm[-1], _EXITS)):
                return self._walk(arm, state)
            arms = self._walk(stmt.body, state), self._walk(stmt.orelse, state)
            return _undecided(state, *arms, _merge(*arms))
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            targets = [] if isinstance(stmt, ast.While) else _names(stmt.target)
            marks = {COLUMN_MARK + n for n in targets}
            entered = {k: v for k, v in state.items() if k not in marks}
            if id(stmt) in self._idle:
                entered.update(_unknown(targets))
            elif not isinstance(stmt, ast.While):
                entered.update(self._loop_target(stmt.target, stmt.iter, state))
            literals = self._loop_literals(stmt)
            for name, values in literals.items():  # `for k in ks` of `ks=(1, 5, 10)`: ints
                numbers = all(isinstance(v, int) for v in values)
                entered[name] = frozenset({NUMBER if numbers else LITERAL})
            outer = {n: self._literals[n] for n in literals if n in self._literals}
            self._literals.update(literals)
            after_body = self._walk(stmt.body, entered)
            for name in literals:
                self._literals.pop(name, None)
            self._literals.update(outer)
            # a loop's body runs in the programs that save after it: names it binds first
            # keep what it gives them
            # (a key the body forgot, `model.pool.images` after `model.pool.push(x)`, is
            # unknown after the loop)
            ran = {k: after_body[k] for k in state if k in after_body}
            looped = {**after_body, **_merge(state, ran)}
            if not isinstance(stmt, ast.While):  # the loop may not run: its target is unbound
                looped.update(_unknown(_names(stmt.target)))
            return self._walk(stmt.orelse, looped)
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            bound = dict(state)
            for item in stmt.items:
                if item.optional_vars is not None:
                    bound.update(_unknown(_names(item.optional_vars)))
            return self._walk(stmt.body, bound)
        if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            return self._try(stmt, state)
        if isinstance(stmt, ast.Expr):
            kept = self._updated(stmt.value, _forget_keys(stmt, state, self._kept), state)
            return self._append(stmt.value, kept, state)
        if isinstance(stmt, ast.Return):
            if not self._returns:
                return state
            env = {**self._self_env, **env_of(state)}
            self.returns.append(
                self._logged_frame(stmt.value, self.safety.kind_of(stmt.value, env))
            )
            items = stmt.value.elts if isinstance(stmt.value, ast.Tuple) else None
            self.return_items.append(
                [self.safety.kind_of(e, env) for e in items]
                if items is not None and not any(isinstance(e, ast.Starred) for e in items)
                else self.safety.catalog_items(stmt.value, env)  # `return signal.butter(...)`
                if isinstance(stmt.value, ast.Call)
                else None
            )
            self.return_nested.append(
                {
                    at: [self.safety.kind_of(e, env) for e in item.elts]
                    for at, item in enumerate(items or [])
                    if isinstance(item, ast.Tuple)
                    and not any(isinstance(e, ast.Starred) for e in item.elts)
                }
            )
            self.return_calls.append(
                {
                    at: (item, env)
                    for at, item in enumerate(items or [])
                    if isinstance(item, ast.Call)
                }
            )
            shown = keyword_display(stmt.value)
            self._return_displays.append((shown, env) if isinstance(shown, ast.Dict) else None)
            keys = _constant_keys(shown) if isinstance(shown, ast.Dict) else None
            pairs = self.safety.dict_items(shown) if keys is None else None
            if keys is not None and isinstance(shown, ast.Dict):
                pairs = list(zip(keys, shown.values))
            if pairs is not None:  # `return dict(unet=unet, scaler=scaler)`
                returned = {k: self.safety.kind_of(v, env) for k, v in pairs}
                for key, given in pairs:  # `return dict(data=data)`: `run["data"]["x"]` too
                    if isinstance(given, ast.Name):
                        for sub, held in nested_keys(given.id, state).items():
                            returned.setdefault(key + NESTED_KEY + sub, held)
                self.return_keys.append(returned)
            elif isinstance(shown, ast.Name):  # `return metrics` built key by key
                self.return_keys.append(_known_keys(shown.id, state))
            elif isinstance(shown, ast.Call):  # `return self.evaluator.compute()`
                passed_on: dict[str, Refused | None] = dict(self.safety.keys_of(shown, env))
                self.return_keys.append(passed_on or None)
            else:
                self.return_keys.append(None)
            return state
        return self._assignment(stmt, state)

    def _returned_objects(self, stmt: ast.Return, state: State) -> dict[int, State]:
        """What each returned name's attributes hold, and the field keys of a dataclass the
        return builds (`return Trial(i, params), model`); after what a project function
        handed one of them did to it (`return env, agent, run(env, agent)`)."""
        value = stmt.value
        handed: set[str] = set()
        if value is not None and _mutating_call(value):
            instances = {n for n, held in state.items() if "." not in n and _instance(held)}
            handed = {arg.id for _, arg, _ in self._handed(stmt, instances, state)}
            state = self._called(stmt, state) if handed else state
        found = _returned_objects(value, state, handed)
        whole = not isinstance(value, ast.Tuple)
        shown = [value] if whole else value.elts if isinstance(value, ast.Tuple) else []
        for index, item in enumerate(shown):
            fields = (
                field_items(self.safety, "", item, state, self._value)
                if isinstance(item, ast.Call)
                else {}
            )
            if fields:
                found[-1 if whole else index] = fields
            elif isinstance(item, ast.Dict) and not whole:
                # `return negatives, {"margin": m.mean()}`: what each constant key holds
                found[index] = {
                    item_key("", key.value): frozenset({self._value(v, state)})
                    for key, v in zip(item.keys, item.values)
                    if isinstance(key, ast.Constant) and isinstance(key.value, str)
                }
            elif isinstance(item, ast.Call) and isinstance(item.func, ast.Attribute):
                # `return Trainer(cfg).fit(x), x`: what the fluent method stored
                chained = self._chained(_RETURNED, item, state, dict(state))
                prefix = _RETURNED + "."
                held = {k[len(_RETURNED) :]: v for k, v in chained.items() if k.startswith(prefix)}
                if held:
                    found[-1 if whole else index] = held
            if isinstance(item, ast.Call) and not whole and index not in found:
                # `return est, z, est.solve(z)` of a method returning dict displays: its keys
                env = {**self._self_env, **env_of(state)}
                keys = self.safety.keys_of(item, env)
                if keys:
                    found[index] = {item_key("", k): frozenset({v}) for k, v in keys.items()}
        return found

    def _called(self, stmt: ast.stmt, state: State) -> State:
        """`stopper.step(loss)`: what the project object's method stores in its attributes
        (object_effects) is what `stopper.best` holds after it; an object handed on as a
        value (`train(stopper)`) may have had anything stored, so its attributes are forgotten."""
        instances = {n for n, held in state.items() if "." not in n and _instance(held)}
        keyed = {k.split(".", 1)[0] for k in state if k in self._effect_keys}
        if not instances and not keyed:
            return state
        from ckpt_lsp.analysis import object_effects  # it runs flows of its own

        calls, bare = object_effects.statement_uses(stmt)
        handed = self._handed(stmt, instances & bare, state)
        escaped = keyed & bare
        if escaped:  # `asdict(best)`, `print(stopper)` only read the object
            kept = self._kept(stmt, escaped, state) | {id(arg) for _, arg, _ in handed}
            escaped = {n for n in escaped if object_effects.bare_uses(stmt, n) - kept}
        if escaped:  # only what a method stored: an attribute the function set itself stays
            state = {
                k: v
                for k, v in state.items()
                if k not in self._effect_keys or k.split(".", 1)[0] not in escaped
            }
        mine = [(call, name) for call, name in calls if name in instances]
        maybe = object_effects.conditional_nodes(stmt) if mine or handed else set()
        for call, name in mine:
            state = self._after_call(call, name, state, id(call) in maybe)
        for call, arg, effects in handed:
            state = self._after_call(call, arg.id, state, id(call) in maybe, effects=effects)
        return state

    def _handed(
        self, stmt: ast.stmt, names: set[str], state: State
    ) -> list[tuple[ast.Call, ast.Name, Effects]]:
        """`run_simulation(env, agent, 60)`: what the project function's calls of the
        object's methods may have stored in it (handed_objects), for each mention of a name
        of `names` a project function is handed and whose effects are known."""
        if not names:
            return []
        from ckpt_lsp.analysis.handed_objects import handed_arguments, handed_effects
        from ckpt_lsp.analysis.object_effects import own_nodes

        found: list[tuple[ast.Call, ast.Name, Effects]] = []
        env: dict[str, Refused | None] | None = None
        for node in own_nodes(stmt):
            if not isinstance(node, ast.Call):
                continue
            for arg, argument in handed_arguments(node, names):
                receiver = collapse(state[arg.id])
                if receiver is None:
                    continue
                env = env if env is not None else {**self._self_env, **env_of(state)}
                effects = handed_effects(self.safety, node, argument, receiver, env)
                if effects is not None:
                    found.append((node, arg, effects))
        return found

    def _forget_attribute_keys(self, stmt: ast.stmt, state: State) -> State:
        """`trainer.cache["k"] = v`, `trainer.cache.clear()`, `fill(trainer.cache)` here:
        what a method stored under the container's keys is no longer known."""
        if not self._items:
            return state
        held = [*state, *(k for k in self._self_env if "[" in k)]
        bases = {k.split("[", 1)[0] for k in held if "[" in k}
        bases = {b for b in bases if "." in b}
        if not bases:
            return state
        from ckpt_lsp.analysis import object_effects

        def named(node: ast.expr) -> str:
            dotted = dotted_name(node)
            return dotted if dotted in bases else ""

        touched = object_effects.keys_touched(stmt, named, assigned=False)
        for base in touched:
            state = _wipe(state, base + "[*]", replaces=True)
            prefix = base + "["
            shadowed = (k for k in self._self_env if k.startswith(prefix))  # the class's view
            state = {**state, **{k: frozenset({UNKNOWN}) for k in shadowed}}
        return state

    def _after_call(
        self,
        call: ast.Call,
        name: str,
        state: State,
        maybe: bool,
        held: Refused | None = None,
        effects: Effects | None = None,
    ) -> State:
        """`effects`: what a function the object was handed did to it (no method of its
        own is called)."""
        from ckpt_lsp.analysis import object_effects

        receiver = held if held is not None else collapse(state[name])
        if receiver is None:
            return state
        env = {**self._self_env, **env_of(state)}
        called = ""  # the method the call runs, whose own stores the call's effects are
        if effects is None:
            effects = object_effects.method_effects(self.safety, receiver, call, env)
            called = call.func.attr if isinstance(call.func, ast.Attribute) else ""
        if not effects:
            return state
        if "*" in effects:
            return {k: v for k, v in state.items() if not k.startswith(name + ".")}
        built = object_effects.initial(self.safety, receiver)
        new = dict(state)
        for attr, effect in effects.items():
            key = f"{name}.{attr}"
            self._items = self._items or "[" in attr
            if attr.endswith(object_effects.WIPED):  # `self.cache = {}`: its keys are gone
                new = _wipe(new, key, effect[1] and not maybe)
                self._effect_keys.add(key)
                continue
            first = built.get(attr)
            fallback = None
            path = attr.split("[", 1)[0]  # `cache` of `cache['0.weight']`
            if "[" in attr:
                fallback = _item_fallback(built, name, path, attr, state, self._effect_keys)
            elif first is not None and "*" not in built:
                fallback = first[0] if first[1] else first[0] | {UNKNOWN}
            elif "*" not in built and "." not in attr and key not in state and not effect[1]:
                # never set by `__init__`: a read after the call reads what a method stored
                others = object_effects.stored_anywhere(self.safety, receiver, attr, called)
                fallback = others | effect[0] if others is not None else None
            if "." in path:  # `stopper.best`: what the held object's __init__ set is in it
                head = f"{name}.{attr.split('.', 1)[0]}"
                if head in state and head not in self._effect_keys:
                    new.pop(key, None)  # the caller stored another object there
                    continue
                fallback = fallback if fallback is not None else frozenset()
            new[key] = object_effects.apply_to(state.get(key), fallback, effect)
            if maybe:  # `s.step(v) if ok else None`: the call may not run
                new[key] = new[key] | {UNKNOWN}
            self._effect_keys.add(key)
        return new

    def _aliased(self, name: str, value: ast.expr | None, state: State) -> State:
        """`best = search.best` (or `best = metrics`): the same object, so `best.score` holds
        what a method stored in `search.best.score`, `best["ssim"]` what `metrics["ssim"]` did."""
        dotted = dotted_name(value) if isinstance(value, (ast.Attribute, ast.Name)) else ""
        if not dotted or "." in name:
            return {}
        prefixes = (dotted + ".", dotted + "[")  # `metrics = trainer.last`: its keys too
        found = {name + k[len(dotted) :]: v for k, v in state.items() if k.startswith(prefixes)}
        if not found and isinstance(value, ast.Attribute):  # `stats = run.stats`
            found = {name + k: v for k, v in self._initial_items(value, state).items()}
        self._effect_keys.update(k for k in found)
        self._items = self._items or any("[" in k for k in found)
        return found

    def _initial_items(self, value: ast.Attribute, state: State) -> dict[str, frozenset[Possible]]:
        """The keys `__init__` stored in `obj.attr` (object_effects.initial_items)."""
        if self.safety.depth_left() < 1:
            return {}
        owner = self.safety.kind_of(value.value, {**self._self_env, **env_of(state)})
        if owner is None or not owner.type_name or owner.holder:
            return {}
        from ckpt_lsp.analysis import object_effects

        return object_effects.initial_items(self.safety, owner, value.attr)

    def _chained(self, name: str, value: ast.expr | None, state: State, new: State) -> State:
        """`trainer = Trainer(args).fit()` where `fit` returns `self`: the name holds the
        object after the method ran, its attributes what the method stored."""
        if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
            return new
        from ckpt_lsp.analysis import object_effects

        receiver = self.safety.kind_of(value.func.value, {**self._self_env, **env_of(state)})
        if receiver is None or not object_effects.returns_self(self.safety, receiver, value):
            return new
        # the object itself, as its construction made it (what it was passed)
        return self._after_call(value, name, {**new, name: frozenset({receiver})}, False, receiver)

    def _loop_literals(
        self, stmt: ast.For | ast.AsyncFor | ast.While
    ) -> dict[str, tuple[object, ...]]:
        """`for k in (1, 5, 10)` (or over a parameter whose default is such a display and that
        the function never rebinds): the literals the loop name takes."""
        if isinstance(stmt, ast.While) or not isinstance(stmt.target, ast.Name):
            return {}
        shown: ast.expr | None = stmt.iter
        if isinstance(shown, ast.Name) and self._func is not None:
            shown = _parameter_default(self._func, shown.id)
        if not isinstance(shown, (ast.Tuple, ast.List)) or not shown.elts:
            return {}
        values = [e.value for e in shown.elts if isinstance(e, ast.Constant)]
        if len(values) != len(shown.elts) or not all(isinstance(v, (int, str)) for v in values):
            return {}
        return {stmt.target.id: tuple(values)}

    def _formatted_keys(self, target: ast.expr) -> list[str]:
        """The keys of `name[f"R@{k}"]` with each loop literal of `k` in place; [] for any
        other target."""
        if not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)):
            return []
        key = target.slice
        if not isinstance(key, ast.JoinedStr) or not self._literals:
            return []
        keys = [""]
        for part in key.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                keys = [k + part.value for k in keys]
            elif (
                isinstance(part, ast.FormattedValue)
                and isinstance(part.value, ast.Name)
                and part.value.id in self._literals
                and part.conversion == -1
                and part.format_spec is None
            ):
                keys = [k + str(v) for k in keys for v in self._literals[part.value.id]]
            else:
                return []
        return keys

    def _loop_target(self, target: ast.expr, iterable: ast.expr, state: State) -> State:
        """`for v in arr`: v is a numpy scalar (a row) of a numpy array; else unknown."""
        # `for scale in [0.9, 1.0]`, `for i, lr in enumerate([1e-3, 3e-4])`; enumerate's count
        numbers: State = {
            n: frozenset({NUMBER}) for n in self._number_targets(target, iterable, state)
        }
        if not isinstance(target, ast.Name):
            # `KFold.split` folds, `zip(names, arr)`, `scores.items()` of numpy scalars
            env = {**self._self_env, **env_of(state)}
            taken = self.safety.iterated(target, iterable, env, self._func)
            paired = paired_items(target, iterable, state)  # `for k, enc in encs.items()`
            return {
                **_unknown(_names(target)),
                **paired,
                **{k: frozenset({v}) for k, v in taken.items()},
                **numbers,
            }
        if numbers:
            return numbers
        if self._builtin_range(iterable, state):  # `for b in range(bins)`: b is an int
            return {target.id: frozenset({NUMBER})}
        every = iterated_items(iterable, state)
        # `for s in log` of a list of dicts, `for t in trials` of objects with field keys
        records = record_of(target.id, iterable.id, state) if isinstance(iterable, ast.Name) else {}
        self._items = self._items or any("." in k for k in records)
        if every is not None:  # `for info in infos` of a list of TaskInfo
            return {target.id: every, **records}
        if records:
            return {target.id: frozenset({UNKNOWN}), **records}
        env = {**self._self_env, **env_of(state)}
        if self.safety.column_labels(iterable, env):  # `df[c]` is a column
            return {target.id: frozenset({UNKNOWN}), COLUMN_MARK + target.id: frozenset({LITERAL})}
        member = self.safety.enum_class(iterable, env)
        if member is not None:  # `for task in Task`: the Enum's members
            return {target.id: frozenset({member})}
        over = self.safety.kind_of(iterable, env)
        item = self.safety.catalog.kind("numpy-scalar")
        if over is None or over.kind != "numpy-array" or item is None:
            return _unknown([target.id])
        held = Refused(item.kind, item.what, item.loadable, "", item.stateful)
        return {target.id: frozenset({held})}

    def _number_targets(self, target: ast.expr, iterable: ast.expr, state: State) -> list[str]:
        """The loop names bound only to Python numbers: the items of a display of number
        literals, and the count and such items of `enumerate` over one."""
        if isinstance(target, ast.Name):
            return [target.id] if _number_display(iterable) else []
        counted = self._builtin_range(iterable, state, "enumerate") and isinstance(
            iterable, ast.Call
        )
        if not (counted and isinstance(target, ast.Tuple) and len(target.elts) == 2):
            return []
        count, item = target.elts
        over = iterable.args[0] if isinstance(iterable, ast.Call) and iterable.args else None
        names = [count.id] if isinstance(count, ast.Name) else []  # always a Python int
        if isinstance(item, ast.Name) and _number_display(over):
            names.append(item.id)
        return names

    def _builtin_range(self, iterable: ast.expr, state: State, builtin: str = "range") -> bool:
        """`range(...)` (or `builtin(...)`) of the builtin (no local, import or module function
        of that name)."""
        if not (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name)):
            return False
        facts = self.safety.facts
        named = iterable.func.id
        return (
            named == builtin
            and named not in state
            and named not in self._self_env
            and named not in facts.imports
            and named not in facts.functions
            and named not in facts.classes
        )

    def _try(self, stmt: ast.stmt, state: State) -> State:
        body = self._walk(getattr(stmt, "body", []), state)
        merged = _merge(state, body)
        for handler in getattr(stmt, "handlers", []):
            merged = _merge(merged, self._walk(handler.body, _merge(state, body)))
        merged = _merge(merged, self._walk(getattr(stmt, "orelse", []), body))
        return self._walk(getattr(stmt, "finalbody", []), merged)

    def _assignment(self, stmt: ast.stmt, state: State) -> State:
        kept = state  # `tr, va = masks` reads the items of `masks` that it then forgets
        state = _forget_keys(stmt, state, self._kept, self._formatted_keys)
        value: ast.expr | None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            targets, value = [stmt.target], stmt.value
        elif isinstance(stmt, ast.AugAssign):
            if not isinstance(stmt.target, ast.Name):  # `ck["n"] += 1` rebinds no name
                return state
            return {**state, stmt.target.id: frozenset({self._augmented(stmt, state)})}
        else:
            return state
        if isinstance(stmt, ast.AnnAssign) and value is None:
            judged = self.safety.of_annotation(stmt.annotation)
            return {**state, **{n: frozenset({judged or UNKNOWN}) for n in _names(stmt.target)}}
        # `df = pd.DataFrame(rows)` reads the records' columns the call may then change
        marks = (
            {k: v for k, v in kept.items() if is_mark(k) and k not in state}
            if isinstance(value, ast.Call)
            else {}
        )
        possible = self._value(value, {**state, **marks} if marks else state)
        new = dict(state)
        for target in targets:
            key = _key(target)
            unpacked = self._unpacked(target, value, state, kept)
            if unpacked is not None:
                new.update(unpacked)
                if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                    before = self.before.get(id(stmt), state)
                    for element, shown in zip(target.elts, value.elts):
                        if isinstance(element, ast.Name):  # `best_m, best = m["mae"], m`
                            new.update(self._aliased(element.id, shown, before))
            elif key:
                new = {k: v for k, v in new.items() if not k.startswith((key + ".", key + "["))}
                new.pop(COLUMN_MARK + key, None)
                new[key] = frozenset({possible})
                new.update(self._keyed(key, value, state, possible))
                fields = field_items(self.safety, key, value, kept, self._value)
                if fields:  # `trial.params['lr']`: a store into it forgets it
                    new.update(fields)
                    self._items = True
                new.update(self._object_of(key, value, state, -1))
                new = self._chained(key, value, state, new)
                # the keys as the statement read them, before the alias made them unknown
                new.update(self._aliased(key, value, self.before.get(id(stmt), state)))
            elif _stored_attribute(target):
                # `model.config = cfg.to_dict()`: what the class's __init__ set is gone
                rebound = dotted_name(target)
                new = {
                    k: v for k, v in new.items() if not k.startswith((rebound + "[", rebound + "."))
                }
                new[rebound] = frozenset({possible})
            elif _constant_item(target):
                # `metrics["loss"] = np.mean(x)`: that key holds it now, the others are kept
                assert isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                held = item_key(target.value.id, _constant_item(target))
                new.pop(held, None)
                new.pop(every_item_key(target.value.id), None)  # not every item now
                new.pop(dict_mark(target.value.id), None)
                framed = _frame(state.get(target.value.id))
                if isinstance(possible, Refused) and ("series" in possible.kind or not framed):
                    # a frame's column is a Series, whatever array it was set from
                    new[held] = frozenset({possible})
                if framed and isinstance(possible, Refused) and possible.kind == _NUMBER_SERIES:
                    # `df["w"] = df.x2 - df.x1`: the frame (as a helper returns it) has one
                    # more column of numbers
                    new[target.value.id] = _with_number_column(
                        new.get(target.value.id, frozenset()), str(_constant_item(target))
                    )
                elif not isinstance(possible, Refused) and not framed:
                    # kept as set: a helper returning the dict gives this key's value, not
                    # what the rest of the dict holds (`out["mrr"] = float(m)`)
                    new[held] = frozenset({possible})
            elif self._formatted_keys(target):
                # `out[f"R@{k}"] = x` for each `k` of a constant display: each key holds it
                assert isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                new.pop(every_item_key(target.value.id), None)
                new.pop(dict_mark(target.value.id), None)
                for formatted in self._formatted_keys(target):
                    held = item_key(target.value.id, formatted)
                    new.pop(held, None)
                    if isinstance(possible, Refused):
                        new[held] = frozenset({possible})
            elif _self_item(target):
                # `self.stats["mean"] = float(m)`: what the class's stores gave it is replaced
                new[_self_item(target)] = frozenset({possible})
                self._items = True
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Subscript):
                new = _forget_nested(target.value, new)  # `meta["nms"]["mode"] = m.name`
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                # `d[k] = x`: what the display put under any key is no longer known, except
                # under keys the written text rules out (`out[f"success@{k}"]` keeps "mrr")
                name, pattern = target.value.id, key_pattern(target.slice)
                new = {
                    k: v
                    for k, v in new.items()
                    if not k.startswith(name + "[") or _outside(k, name, pattern)
                }
                new.update(_stored_item(name, possible, state, self.safety.catalog))
            elif isinstance(target, (ast.Tuple, ast.List)):
                new = _forget_targets(target, new)  # `bins[0], bins[-1] = lo, hi`
            elif not isinstance(target, (ast.Subscript, ast.Attribute)):  # they bind no name
                new.update(_unknown(_names(target)))
        return new

    def _unpacked(
        self, target: ast.expr, value: ast.expr | None, state: State, kept: State
    ) -> State | None:
        """`losses, accs = run_validation(m)` / `a, b = x, y`: each name takes its element."""
        if not isinstance(target, (ast.Tuple, ast.List)) or value is None:
            return None
        starred = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)]
        # `trainer.negatives, stats = trainer.mine(index)`: an attribute takes its element too;
        # `cfg, trainer, (jf, j, f) = run()`: the inner names are unknown unless shown
        # `data["feats"], scaler = scale(...)`: the item is forgotten, the names still bound
        names = [
            _target_name(e) or _attribute_target(e) or _nested_mark(e) or _item_target(e)
            for e in target.elts
        ]
        if not all(names) or len(starred) > 1:
            return None
        env = {**self._self_env, **env_of(state)}
        if isinstance(value, (ast.Tuple, ast.List)):
            if starred or len(value.elts) != len(names):
                return None
            if any(isinstance(e, ast.Starred) for e in value.elts):
                return None
            items: list[Possible] = [self._value(e, state) for e in value.elts]
        elif _shape_of(value) and not starred:
            items = [NUMBER] * len(names)  # `h, w = images.shape[1:3]`: Python ints
        elif isinstance(value, (ast.GeneratorExp, ast.ListComp)) and not starred:
            # `tp, fp, fn = (np.zeros(k) for _ in range(3))`: each is what every element is
            element = self.safety.element_of(_as_list(value), env)
            items = [element if element is not None else UNKNOWN] * len(names)
        elif isinstance(value, ast.Name):
            # `masks = split(n)` then `tr, va = masks`: the items `_keyed` kept of the result
            held = _tuple_items(value.id, len(names), kept)
            if starred or held is None:
                return None
            items = held
        else:
            # `model, *_, y_true, y_pred = run(args)`: the starred name takes the middle
            judged = self.safety.items_of(value, -1 if starred else len(names), env)
            element = self._array_item(value, env) if judged is None and not starred else None
            if element is not None:
                judged = [element] * len(names)
            if judged is None or len(judged) < len(names) - len(starred):
                return None
            items = [j if j is not None else UNKNOWN for j in judged]
        middle: list[Possible] = []
        if starred:
            at, tail = starred[0], len(names) - starred[0] - 1
            middle = items[at : len(items) - tail]
            items = [*items[:at], UNKNOWN, *(items[len(items) - tail :] if tail else [])]
        unpacked: State = {
            name: frozenset({item if "[" not in name else UNKNOWN})
            for name, item in zip(names, items)
            if name != _NESTED
        }
        if starred and "[" not in names[starred[0]] and names[starred[0]] != _NESTED:
            # `args, *rest = run()` then `model = rest[3]`: the list holds the middle items
            rest = names[starred[0]]
            for index, item in enumerate(middle):
                if isinstance(item, Refused):
                    unpacked[item_key(rest, index)] = frozenset({item})
        for index, name in enumerate(names if not starred else []):
            if name != _NESTED and "[" not in name:
                unpacked.update(self._object_of(name, value, state, index))
        for index, part in enumerate(target.elts):
            if names[index] != _NESTED:
                continue
            shown = value.elts[index] if isinstance(value, (ast.Tuple, ast.List)) else None
            inner = self._unpacked(part, shown, state, kept) if shown is not None else None
            if inner is None and shown is None and not starred:
                inner = self._nested_result(part, value, index, env)
            unpacked.update(inner if inner is not None else _unknown(_names(part)))
        return unpacked

    def _unset_flag(self, operand: ast.expr, state: State) -> bool:
        """`args.pos_weight` of a parsed namespace whose argument is unset unless the command
        line gives it: `args.pos_weight or neg / pos` saves the fallback on a plain run."""
        if not (isinstance(operand, ast.Attribute) and isinstance(operand.value, ast.Name)):
            return False
        held = [
            p
            for p in state.get(operand.value.id, frozenset())
            if isinstance(p, Refused) and p.kind == "namespace"
        ]
        if not held or any(p.built is None or _flag_given(p.built, operand.attr) for p in held):
            return False  # `parse_args(["--pos-weight", "4"])`, or a namespace of unknown origin
        return unset_by_default(self.safety.facts, operand.attr)

    def _nested_result(self, part: ast.expr, value: ast.expr, index: int, env: Env) -> State | None:
        """`_, (mean, std), w = setup(args)`: the inner names take the elements of the tuple
        every `return` of the helper shows at `index`."""
        assert isinstance(part, (ast.Tuple, ast.List))
        names = [_target_name(e) for e in part.elts]
        if not all(names) or any(isinstance(e, ast.Starred) for e in part.elts):
            return None
        items = self.safety.items_of(value, len(names), env, at=index)
        if items is None:
            return None
        return {n: frozenset({i if i is not None else UNKNOWN}) for n, i in zip(names, items)}

    def _array_item(self, value: ast.expr, env: Env) -> Refused | None:
        """`tn, fp, fn, tp = cm.ravel()`: what each item of a numpy array is (a numpy value,
        as a loop over it takes them); None for anything else."""
        if self._levels(value):  # `lo, hi = np.percentile(x, [5, 95])`
            return self.safety.catalog.kind("numpy-scalar")
        if not self._surely_array(value, env):
            return None
        item = ast.copy_location(ast.Name(id="#item", ctx=ast.Load()), value)
        each = ast.copy_location(
            ast.ListComp(
                elt=item,
                generators=[
                    ast.comprehension(
                        target=ast.Name(id="#item", ctx=ast.Store()), iter=value, ifs=[], is_async=0
                    )
                ],
            ),
            value,
        )
        element = self.safety.element_of(each, env)
        if element is None or element.kind not in ("numpy-scalar", "numpy-array"):
            return None
        return element

    def _levels(self, value: ast.expr) -> bool:
        """A numpy reduction given a display of levels (`np.quantile(x, [0.1, 0.9])`): an
        array with one numpy scalar per level."""
        if not isinstance(value, ast.Call) or len(value.args) < 2:
            return False
        if not isinstance(value.args[1], (ast.List, ast.Tuple)):
            return False
        qualified = qualify(dotted_name(value.func), self.safety.facts)
        entry = self.safety.catalog.calls.get(qualified)
        return entry is not None and entry.kind == "numpy-scalar" and qualified in _LEVELLED

    def _surely_array(self, value: ast.expr, env: Env) -> bool:
        """A call the catalog says returns one numpy array (`np.percentile(x, [5, 95])`) or a
        ufunc of one (`np.exp(res.x)`), an array method of a numpy array (`cm.ravel()`), or
        an attribute the catalog says holds one (`res.x` of a scipy result); a project
        function's result may be a tuple the judge types by its first refused item, so it is
        none."""
        if isinstance(value, ast.Attribute):  # `beta, gamma = res.x` of a scipy result
            held = self.safety.kind_of(value.value, env)
            returns = (
                self.safety.catalog.method(held.kind, value.attr, attribute=True, has_args=False)
                if held is not None and not held.type_name
                else None
            )
            return returns == "numpy-array"
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        if isinstance(func, ast.Attribute) and func.attr in _ARRAY_METHODS:
            receiver = self.safety.kind_of(func.value, env)
            return receiver is not None and receiver.kind == "numpy-array"
        entry = self.safety.catalog.calls.get(qualify(dotted_name(func), self.safety.facts))
        if entry is not None and entry.elementwise and len(value.args) == 1:
            return self._surely_array(value.args[0], env)  # `np.exp(res.x)`
        return entry is not None and entry.kind == "numpy-array" and not entry.items

    def _object_of(self, name: str, value: ast.expr | None, state: State, at: int) -> State:
        """`trainer = build()` / `trainer, n = build()` where the helper made the object and
        ran its methods: `trainer.best` holds what the helper's flow knew it held at return."""
        if not isinstance(value, ast.Call) or "." in name:
            return {}
        env = {**self._self_env, **env_of(state)}
        found = {name + k: v for k, v in self.safety.objects_of(value, at, env).items()}
        self._effect_keys.update(found)
        self._items = self._items or any("[" in k for k in found)
        return found

    def _keyed(
        self, name: str, value: ast.expr | None, state: State, whole: Possible = UNKNOWN
    ) -> State:
        """`metrics = evaluate(m)` where every return of the helper is a dict display: the
        state keeps what `metrics["eval_loss"]` holds, under the key `metrics['eval_loss']`."""
        every = self._every_item(name, value, state, whole)
        if every:
            return every
        if isinstance(value, ast.ListComp) and "." not in name:
            # `log = [evaluate(b) for b in batches]`: every record holds the keys
            inner = {
                **state,
                **_unknown(
                    [
                        n.id
                        for g in value.generators
                        for n in walk(g.target)
                        if isinstance(n, ast.Name)
                    ]
                ),
            }
            env = {**self._self_env, **env_of(inner)}
            shown = shown_keys(self.safety, value.elt, inner, env, self._value)
            if shown:
                return appended_records(name, shown, state, True)
        if (
            isinstance(value, ast.Subscript)
            and isinstance(value.value, ast.Name)
            and "." not in name
        ):  # `last = log[-1]`: a record of a list of dicts
            records = record_of(name, value.value.id, state)
            self._items = self._items or any("." in k for k in records)
            return {**records, **_sub_dict(name, value, state)}
        if isinstance(value, ast.Dict) and "." not in name:
            return self._displayed(name, value, state)
        if isinstance(value, ast.Tuple) and "." not in name:
            # `best = (f1, per_type, model.state_dict())`, unpacked after the loop
            return self._tuple_display(name, value, state)
        pairs = self.safety.dict_items(value) if "." not in name else None
        if pairs is not None:  # `run = dict(scaler=scaler, gen=gen)`
            return self._shown(name, pairs, state)
        own = name.startswith("self.") and name.count(".") == 1  # `self.last = evaluate(m)`
        if value is None or not isinstance(value, ast.Call) or ("." in name and not own):
            return {}
        env = {**self._self_env, **env_of(state)}
        fields = dict_keys(self.safety, value, env)
        if fields is None:
            fields = container_keys(self.safety, value, env)
        if fields is not None:  # `d = asdict(cfg)`: its keys, each converted on its own
            return {
                name: frozenset({UNKNOWN}),
                **{item_key(name, k): frozenset({v}) for k, v in fields.items()},
            }
        keys = self.safety.keys_of(value, env)
        found: State = {item_key(name, k): frozenset({v}) for k, v in (keys or {}).items()}
        items = self.safety.items_of(value, -1, env) if not found else None
        for index, item in enumerate(items or []):
            # `out = run(x)` of a helper returning `loss, preds`: `out[1]` is the second one,
            # `out[0]` a loadable first one even when the tuple holds a refused value
            held: frozenset[Possible] = frozenset({item if item is not None else UNKNOWN})
            found[item_key(name, index)] = held
            found[item_key(name, index - len(items or []))] = held
        if items is None:  # the keys set to values not refused, beside refused ones
            plain = self.safety.plain_keys(value, env)
            found.update({item_key(name, k): frozenset({UNKNOWN}) for k in plain})
        return found

    def _tuple_display(self, name: str, value: ast.Tuple, state: State) -> State:
        """What each element of a tuple display is, by position from either end (`best[0]`,
        `best[-1]`), as a helper's tuple result keeps them."""
        if not value.elts or any(isinstance(e, ast.Starred) for e in value.elts):
            return {}
        found: State = {}
        for index, element in enumerate(value.elts):
            held = frozenset({self._value(element, state)})
            found[item_key(name, index)] = held
            found[item_key(name, index - len(value.elts))] = held
        return found

    def _every_item(
        self, name: str, value: ast.expr | None, state: State, whole: Possible
    ) -> State:
        """`infos = [TaskInfo(t) for t in ts]`: `infos[i]` (whichever i) is a TaskInfo.
        `whole`: what the value is; a list not refused holds no refused item."""
        if "." in name or not isinstance(value, _ITEMIZED):
            return {}
        shown: State = {}
        if isinstance(value, ast.Dict):  # its values judged once, for the constant keys too
            shown = self._displayed(name, value, state)
            if len(shown) != len(value.keys):
                return shown  # a value not refused (or a key not constant)
            every = shared_item(
                [p for held in shown.values() for p in held if isinstance(p, Refused)]
            )
        elif isinstance(value, ast.DictComp) or isinstance(whole, Refused):
            every = displayed_item(self.safety, value, {**self._self_env, **env_of(state)})
        else:
            return {}  # a list not refused holds no refused item
        if every is None:
            return shown
        found = {**shown, every_item_key(name): frozenset({every})}
        if isinstance(value, (ast.Dict, ast.DictComp)):  # it iterates as its keys
            found[dict_mark(name)] = frozenset({every})
        return found

    def _displayed(self, name: str, value: ast.Dict, state: State) -> State:
        """`encoders = {"region": LabelEncoder().fit(r)}`: `encoders["region"]` holds what the
        display put under that constant key, when the default load refuses it."""
        if any(k is None for k in value.keys):  # `{"epoch": e, **stats}`
            env = {**self._self_env, **env_of(state)}
            keys = shown_keys(self.safety, value, state, env, self._value) or {}
            return {item_key(name, k): frozenset({v}) for k, v in keys.items()}
        return self._shown(
            name,
            [
                (key.value, item)
                for key, item in zip(value.keys, value.values)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ],
            state,
        )

    def _shown(self, name: str, pairs: list[tuple[str, ast.expr]], state: State) -> State:
        """What each constant key of a dict built here holds, when refused; under a key given
        a local dict, what that dict's keys hold (`run = dict(data=data)`: `run["data"]["x"]`)."""
        found: State = {}
        for key, item in pairs:
            if isinstance(item, ast.Name) and NESTED_KEY not in key:
                for sub, held in nested_keys(item.id, state).items():
                    if held is not None:
                        found[item_key(name, key + NESTED_KEY + sub)] = frozenset({held})
            judged = self._value(item, state)
            # a literal is kept too: `best = {"miou": -1.0}` then `best = {"miou": m}` in a
            # loop's `if` holds either, as a name would
            if isinstance(judged, (Refused, _Literal)):
                found[item_key(name, key)] = frozenset({judged})
        return found

    def _updated(self, call: ast.expr, state: State, before: State) -> State:
        """`best.update(miou=m)` / `best.update({"miou": m})` of a dict whose keys are known:
        the keys it names hold what it gives them, the others keep what they held."""
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "update"
            and isinstance(call.func.value, ast.Name)
            and len(call.args) <= 1
            and all(k.arg for k in call.keywords)
        ):
            return state
        shown = call.args[0] if call.args else ast.Dict(keys=[], values=[])
        if isinstance(shown, ast.DictComp) and not call.keywords:
            return self._updated_prefixed(call.func.value.id, shown, state, before)
        if not isinstance(shown, ast.Dict):
            return state
        keys = [k.value if isinstance(k, ast.Constant) else None for k in shown.keys]
        if not all(isinstance(k, str) for k in keys):
            return state
        name = call.func.value.id
        prefix = name + "["
        items = {k: v for k, v in before.items() if k.startswith(prefix)}
        if not items:
            return state  # no dict whose keys are known (an object's own `update`)
        found = {**state, **items}
        given = [*zip(keys, shown.values), *((k.arg, k.value) for k in call.keywords)]
        if given:
            found.pop(every_item_key(name), None)  # not every item now
        for key, value in given:
            judged = self._value(value, before)
            found.pop(item_key(name, str(key)), None)
            if isinstance(judged, (Refused, _Literal)):
                found[item_key(name, str(key))] = frozenset({judged})
        return found

    def _updated_prefixed(
        self, name: str, shown: ast.DictComp, state: State, before: State
    ) -> State:
        """`metrics.update({f"torch_{k}": v for ...})`: keys all starting with a constant text
        change only the known keys that start with it."""
        head = shown.key.values[0] if isinstance(shown.key, ast.JoinedStr) else None
        if not (isinstance(head, ast.Constant) and isinstance(head.value, str) and head.value):
            return state
        changed = item_key(name, head.value)[:-2]  # `metrics['torch_`: the keys it may change
        items = {
            k: v
            for k, v in before.items()
            if k.startswith(name + "[") and not k.startswith(changed)
        }
        if not items:
            return state
        found = {**state, **items}
        found.pop(every_item_key(name), None)
        return found

    def _append(self, call: ast.expr, state: State, before: State | None = None) -> State:
        """`history.append(np.mean(x))`: the list now holds a refused value (so it is one);
        appended to an empty list (`before` the statement), every item of it is that value."""
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in _ADDERS
            and call.args
        ):
            return state
        name = _list_held(call.func.value, before or state)
        if not name or _instance(state.get(name, frozenset())):
            return state  # `index.add(vectors, labels)`: the project class's own method
        item = call.args[-1]
        env = {**self._self_env, **env_of(state)}
        if call.func.attr == "append":  # a list of records: a frame's number columns
            state = {**state, **self._records(name, item, env, before or {})}
            state = {**state, **self._keyed_record(name, item, env, before or {})}
        else:
            state = {k: v for k, v in state.items() if k != columns_key(name)}
        if isinstance(item, ast.Dict):  # `history.append({"acc": acc})`: a dict of what it holds
            shown = [v for k, v in zip(item.keys, item.values) if k is not None]
            added = self.safety.first_refused(shown, env)
        else:
            added = self.safety.of_expression(item, env)
        if call.func.attr == "extend" and added is not None and not isinstance(item, _DISPLAYS):
            # extending with a numpy array adds numpy scalars; with anything else, its items
            added = (
                self.safety.catalog.kind("numpy-scalar") if added.kind == "numpy-array" else None
            )
        if added is None:
            return state
        held = Refused(added.kind, added.what, added.loadable, "", added.stateful)
        prior = state.get(name, frozenset())
        if not (prior and all(isinstance(p, Refused) and p.kind == added.kind for p in prior)):
            prior = frozenset({held})  # else it keeps what it knew (a config's shape)
        found = {**state, name: prior}
        if call.func.attr == "append" and not isinstance(item, ast.Dict):
            found.update(_every_appended(name, replace(added, fix=""), before or {}))
            if isinstance(item, ast.Name):  # `trials.append(trial)`: its field keys
                prior = (before or {}).get(name, frozenset())
                empty = bool(prior) and all(isinstance(p, _Literal) for p in prior)
                objects = appended_object(name, item.id, before or {}, empty)
                found.update(objects)
                self._items = self._items or bool(objects)
        return found

    def _keyed_record(
        self, name: str, item: ast.expr, env: dict[str, Refused | None], before: State
    ) -> State:
        """`log.append({"epoch": e, **stats})`: what every record holds under a key."""
        keys = shown_keys(self.safety, item, before, env, self._value)
        if not keys:
            return {}
        prior = before.get(name, frozenset())
        empty = bool(prior) and all(isinstance(p, _Literal) for p in prior)
        return appended_records(name, keys, before, empty)

    def _records(
        self, name: str, item: ast.expr, env: dict[str, Refused | None], before: State
    ) -> State:
        """`history.append({"loss": loss.item()})`: the number columns of `pd.DataFrame(history)`
        (of every record so far; an empty list before had none to disagree)."""
        prior_items = before.get(name, frozenset())
        prior: Refused | bool | None = None
        if prior_items and all(isinstance(p, _Literal) for p in prior_items):
            prior = True
        elif columns_key(name) in before:  # records appended already: columns they share
            prior = collapse(before[columns_key(name)])
        found = appended_columns(self.safety, name, item, env, prior)
        return {k: frozenset({v}) for k, v in found.items()}

    def _augmented(self, stmt: ast.AugAssign, state: State) -> Possible:
        """`total += n` of a numpy scalar `n`: what `total + n` gives (numpy arithmetic
        stays numpy, `0 + np.int64(3)` is an np.int64); anything not refused is unknown."""
        assert isinstance(stmt.target, ast.Name)
        read = ast.Name(id=stmt.target.id, ctx=ast.Load())
        combined = ast.copy_location(ast.BinOp(left=read, op=stmt.op, right=stmt.value), stmt)
        judged = self._value(combined, state)
        return judged if isinstance(judged, Refused) else UNKNOWN

    def _value(self, value: ast.expr | None, state: State) -> Possible:
        if isinstance(value, ast.BoolOp) and isinstance(value.op, ast.Or):
            # `controller or Ctrl()` of a parameter the call left at None: the `Ctrl()`
            rest = list(value.values)
            flagged = False  # a command-line flag may still give its own value: no fix
            while len(rest) > 1:
                if self._unset_flag(rest[0], state):
                    flagged = True
                elif not _left_none(rest[0], state):
                    break
                rest.pop(0)
            if len(rest) == 1:
                taken = self._value(rest[0], state)
                return replace(taken, fix="") if flagged and isinstance(taken, Refused) else taken
            operands = [self._value(v, state) for v in rest]
            if all(isinstance(j, Refused) for j in operands):  # `cfg or Config()`: either one
                either = collapse(operands)
                return either if either is not None else UNKNOWN
        if isinstance(value, ast.IfExp) and none_taken(value.test, state) is not None:
            return self._value(value.body if none_taken(value.test, state) else value.orelse, state)
        if _number_literal(value):
            return NUMBER
        if isinstance(value, (ast.Call, ast.Attribute, ast.UnaryOp)) and self.safety.is_number(
            value, env_of(state)
        ):  # `n = len(x)`, `t0 = time.time()`, `best = math.inf`: Python numbers, as a literal is
            return NUMBER
        if isinstance(value, ast.Constant):
            return literal_of(value)
        if isinstance(value, ast.Name) and state.get(value.id) in _TRUTHS:
            return next(iter(state[value.id]))  # `self.use_ema = use_ema` keeps its truth
        if empty_display(value):
            return LITERAL
        judged = self.safety.kind_of(value, {**self._self_env, **env_of(state)})
        judged = self._logged_frame(value, judged)
        return judged if judged is not None else UNKNOWN

    def _logged_frame(self, value: ast.expr | None, judged: Refused | None) -> Refused | None:
        """`pd.DataFrame(history)` of a log this function starts and fills: the columns it
        logs only numbers under (their cells are numpy scalars)."""
        if judged is None or judged.kind != "pandas-frame" or judged.number_columns:
            return judged
        if not isinstance(value, ast.Call) or len(value.args) != 1:
            return judged
        source = value.args[0]
        if not isinstance(source, ast.Name):
            return judged
        from ckpt_lsp.analysis.logged_columns import local_number_columns  # it asks the judge

        numbers = local_number_columns(self.safety, self._func, source.id)
        return replace(judged, number_columns=numbers) if numbers else judged


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)
_EXITS = (ast.Return, ast.Raise, ast.Continue, ast.Break)  # an arm the code after never follows
_ITEMIZED = (ast.List, ast.Tuple, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp)
_ADDERS = frozenset({"append", "extend", "insert", "add"})


def _wipe(state: State, marker: str, replaces: bool) -> State:
    """A method rebound `obj.cache` or changed keys not known: what the state knew of its
    keys is gone (unknown, when the change may not have run); the marker stays."""
    prefix = marker[: -len("[*]")] + "["
    new: State = {}
    for held, possible in state.items():
        if held.startswith(prefix) and held != marker:
            if replaces:
                continue
            possible = possible | {UNKNOWN}
        new[held] = possible
    new[marker] = frozenset({UNKNOWN})
    return new


def _as_list(value: ast.GeneratorExp | ast.ListComp) -> ast.ListComp:
    """A generator's elements as those of the list display it would make."""
    if isinstance(value, ast.ListComp):
        return value
    return ast.copy_location(ast.ListComp(elt=value.elt, generators=value.generators), value)


def _item_fallback(
    built: Mapping[str, tuple[frozenset[Possible], bool]],
    name: str,
    path: str,
    attr: str,
    state: State,
    effect_keys: set[str],
) -> frozenset[Possible] | None:
    """What `obj.cache['k']` held before a method that may store it ran: what `__init__` put
    there, or nothing (a read after the call reads the stored value) when `__init__` made
    the container empty on its straight path and nothing since rebound it or changed keys
    not known; None (unknown) otherwise."""
    if f"{name}.{path}[*]" in state:
        return None
    stored = f"{name}.{path}"
    if stored in state and stored not in effect_keys:
        return None  # the caller stored another container there
    if "*" in built or built.get(path + "[*]", (None, False))[1] is not True:
        return None
    first = built.get(attr)
    if first is not None:
        return first[0] if first[1] else first[0] | {UNKNOWN}
    container = built.get(path)
    empty = container is not None and container[1] and container[0] == frozenset({LITERAL})
    return frozenset() if empty else None


_DISPLAYS = (ast.List, ast.Tuple, ast.Set, ast.ListComp)


def _list_held(receiver: ast.expr, state: State) -> str:
    """The state key of a list items are added to: a local (`history`), or a list a local
    dict display holds under a constant key (`history["ap50"]` of `{"ap50": []}`)."""
    if isinstance(receiver, ast.Name):
        return receiver.id
    if (
        isinstance(receiver, ast.Subscript)
        and isinstance(receiver.value, ast.Name)
        and isinstance(receiver.slice, ast.Constant)
        and isinstance(receiver.slice.value, str)
    ):
        key = item_key(receiver.value.id, receiver.slice.value)
        return key if key in state else ""
    return ""


def _every_appended(name: str, added: Refused, before: State) -> State:
    """`infos.append(TaskInfo(t))` to a list that was empty, or whose every item was the same:
    `infos[i]` is that value."""
    prior = before.get(name, frozenset())
    every = before.get(every_item_key(name))
    empty = bool(prior) and all(isinstance(p, _Literal) for p in prior)
    if empty or every == frozenset({added}):
        return {every_item_key(name): frozenset({added})}
    return {}


def _unpassed(bound: Mapping[str, object] | None) -> frozenset[str]:
    names = (bound or {}).get(UNPASSED_NONE)
    return names if isinstance(names, frozenset) else frozenset()


def _flag_given(call: ast.Call, dest: str) -> bool:
    """Whether the call that parsed the namespace is given the option of `dest` as text
    (`parse_args(["--pos-weight", "4.0"])`)."""
    for text in walk(call):
        if isinstance(text, ast.Constant) and isinstance(text.value, str):
            option = text.value.split("=", 1)[0]
            if option.startswith("-") and option.lstrip("-").replace("-", "_") == dest:
                return True
    return False


def _left_none(operand: ast.expr, state: State) -> bool:
    return isinstance(operand, ast.Name) and state.get(operand.id) == frozenset({NONE_DEFAULT})


def none_taken(test: ast.expr, state: State) -> bool | None:
    """Whether a test of a parameter left at its `None` default (`cfg is None`, `not cfg`,
    `cfg is not None`, `cfg`) is true; None when it tests anything else."""
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    operand = test.operand if isinstance(test, ast.UnaryOp) and negated else test
    if (
        isinstance(operand, ast.Compare)
        and len(operand.ops) == 1
        and isinstance(operand.ops[0], (ast.Is, ast.IsNot))
        and isinstance(operand.comparators[0], ast.Constant)
        and operand.comparators[0].value is None
    ):
        negated ^= isinstance(operand.ops[0], ast.Is)
        operand = operand.left
    if not _left_none(operand, state):
        return None
    return negated


def _instance(held: frozenset[Possible]) -> bool:
    """A name holding an instance of a project class (and nothing else)."""
    return len(held) == 1 and all(isinstance(p, Refused) and p.type_name for p in held)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shape_of(value: ast.expr) -> bool:
    """`x.shape` or a slice of it (`x.shape[1:3]`, `x.shape[-2:]`): ints, whatever `x` is
    (numpy, torch, pandas)."""
    if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice):
        value = value.value
    return isinstance(value, ast.Attribute) and value.attr == "shape"


def number_literal(value: ast.expr | None) -> bool:
    """`0.5`, `-1.0`: a number as written."""
    return _number_literal(value)


def _number_literal(value: ast.expr | None) -> bool:
    """`0.5`, `-1.0`, `+3`: a number as written (a negative number is a unary minus)."""
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
        value = value.operand
    return isinstance(value, ast.Constant) and _is_number(value.value)


def _number_display(value: ast.expr | None) -> bool:
    """`[0.9, 1.0]`, `(1, 2, 3)`: a list, tuple or set display of number literals only."""
    return (
        isinstance(value, (ast.List, ast.Tuple, ast.Set))
        and bool(value.elts)
        and all(_number_literal(e) for e in value.elts)
    )


def empty_display(value: ast.expr | None) -> bool:
    """`[]`, `{}`, `()`, `list()`, `dict()`: empty containers that loads, filled later maybe."""
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return not value.elts
    if isinstance(value, ast.Dict):
        return not value.keys
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in ("list", "dict", "set", "tuple")
        and not value.args
        and not value.keywords
    )


def returns_of(
    func: FunctionNode, safety: LoadSafety, bound: Mapping[str, object] | None = None
) -> list[Refused | None]:
    """What each `return` of a function gives (locals followed, parameters as `bound`)."""
    return LocalFlow(safety).run(func, bound, needs=of_returns(func)).returns


def return_keys_of(
    func: FunctionNode, safety: LoadSafety, bound: Mapping[str, object] | None = None
) -> list[dict[str, Refused | None] | None]:
    """What each constant key of each `return {...}` of a function gives (locals followed,
    parameters as `bound`)."""
    return LocalFlow(safety).run(func, bound, needs=of_returns(func)).return_keys


NESTED_KEY = "\0"  # joins the keys of a nested item (`run["data"]["mean"]`: "data\0mean")


def item_key(name: str, key: str | int) -> str:
    """The state key of `name[key]` (no Python name holds "["); a nested key's parts in turn."""
    if isinstance(key, str) and NESTED_KEY in key:
        return name + "".join(f"[{part!r}]" for part in key.split(NESTED_KEY))
    return f"{name}[{key!r}]"


def _sub_dict(name: str, value: ast.Subscript, state: State) -> State:
    """`metrics = run["best"]` of a dict whose state knows `run["best"]["acc"]`: what
    `metrics["acc"]` holds (a value subscripted again is no `None` a branch left)."""
    key = value.slice
    if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
        return {}
    assert isinstance(value.value, ast.Name)
    prefix = key.value + NESTED_KEY
    return {
        item_key(name, sub[len(prefix) :]): frozenset({held})
        for sub, held in nested_keys(value.value.id, state).items()
        if sub.startswith(prefix) and held is not None
    }


def nested_keys(name: str, state: State) -> dict[str, Refused | None]:
    """What the state knows under the keys of a dict a local holds, nested keys joined
    (`data["stats"]["mean"]` as "stats\0mean"): a dict put under a key of another keeps them."""
    prefix = name + "["
    found: dict[str, Refused | None] = {}
    for held, possible in state.items():
        if not held.startswith(prefix) or is_mark(held):
            continue
        parts = _string_keys(held[len(name) :])
        if parts:
            found[NESTED_KEY.join(parts)] = collapse(possible)
    return found


def _string_keys(text: str) -> list[str]:
    """`['a']['b']` as ["a", "b"]; empty unless every part is a string key."""
    parts: list[str] = []
    while text.startswith("['") and "']" in text:
        end = text.index("']")
        part = text[2:end]
        if "'" in part or "\\" in part:
            return []
        parts.append(part)
        text = text[end + 2 :]
    return parts if not text else []


def keyword_display(value: ast.expr | None) -> ast.expr | None:
    """`dict(mean=m, std=s)` as the display `{"mean": m, "std": s}`; any other value as is."""
    if (
        isinstance(value, ast.Call)
        and dotted_name(value.func) == "dict"
        and not value.args
        and value.keywords
        and all(kw.arg is not None for kw in value.keywords)
    ):
        keys: list[ast.expr | None] = [ast.Constant(kw.arg) for kw in value.keywords]
        return ast.copy_location(
            ast.Dict(keys=keys, values=[kw.value for kw in value.keywords]), value
        )
    return value


def _constant_keys(display: ast.Dict) -> list[str] | None:
    keys = [k.value if isinstance(k, ast.Constant) else None for k in display.keys]
    return (
        [k for k in keys if isinstance(k, str)] if all(isinstance(k, str) for k in keys) else None
    )


def _forget_keys(
    stmt: ast.stmt,
    state: State,
    kept: KeptNames | None = None,
    formatted: Callable[[ast.expr], list[str]] | None = None,
) -> State:
    """A statement that rebinds, mutates or mentions `name` (other than reading `name[k]`,
    or handing it to a call that only reads it: `kept`) drops what the state knows of its
    items: `metrics = ...`, `metrics["k"] = 1`, `metrics.update(...)`, `fill(metrics)`."""
    itemed = {k.split("[", 1)[0] for k in state if "[" in k}
    if not itemed:
        return state
    touched = set()
    reads = {
        id(n.value)
        for n in walk(stmt)
        if isinstance(n, ast.Subscript)
        and isinstance(n.value, ast.Name)
        and isinstance(n.ctx, ast.Load)
    }
    if isinstance(stmt, ast.Assign):  # `d["k"] = v` sets one key: the assignment says which
        reads.update(
            id(t.value)
            for t in stmt.targets
            if isinstance(t, ast.Subscript)
            and (
                _constant_item(t)
                or (formatted is not None and formatted(t))
                or (isinstance(t.value, ast.Name) and key_pattern(t.slice) is not None)
            )
        )
    for node in walk(stmt):
        if isinstance(node, ast.Name) and node.id in itemed and id(node) not in reads:
            touched.add(node.id)
    if touched and kept is not None:  # asked only of the statements that mention one
        reads |= kept(stmt, touched, state)
        touched = {
            n.id
            for n in walk(stmt)
            if isinstance(n, ast.Name) and n.id in touched and id(n) not in reads
        }
    return {k: v for k, v in state.items() if "[" not in k or k.split("[", 1)[0] not in touched}


def _forget_nested(item: ast.Subscript, state: State) -> State:
    """A store into `name[k]` (`name[k][j] = v`): what the state knew `name[k]` held (every
    key of `name`, when `k` is no constant) is gone."""
    root: ast.expr = item
    while isinstance(root, ast.Subscript):
        root = root.value
    if not isinstance(root, ast.Name):
        return state
    key = _constant_index_of(item) if item.value is root else None
    prefix = item_key(root.id, key) if key is not None else root.id + "["
    return {k: v for k, v in state.items() if not k.startswith(prefix) or is_mark(k)}


def key_pattern(key: ast.expr) -> tuple[str, str] | None:
    """The constant text an f-string key starts and ends with (`f"success@{k}"`: "success@",
    ""); None for any other key or one with neither."""
    if not isinstance(key, ast.JoinedStr) or not key.values:
        return None
    first, last = key.values[0], key.values[-1]
    head = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
    tail = last.value if isinstance(last, ast.Constant) and isinstance(last.value, str) else ""
    if len(key.values) == 1 or not (head or tail):
        return None  # a constant f-string is read as a constant key elsewhere
    return head, tail


def _outside(held: str, name: str, pattern: tuple[str, str] | None) -> bool:
    """Whether the state key `held` (`name['mrr']`) is a constant string key that a key of
    `pattern` can never equal."""
    if pattern is None or held == every_item_key(name) or held == dict_mark(name):
        return False
    text = held[len(name) + 1 :]
    if not text.endswith("]") or "][" in text:
        return False  # a nested item: kept only when its outer key is
    try:
        key = ast.literal_eval(text[:-1])
    except (ValueError, SyntaxError):
        return False
    head, tail = pattern
    return isinstance(key, str) and not (
        key.startswith(head) and key.endswith(tail) and len(key) >= len(head) + len(tail)
    )


def _constant_index_of(item: ast.Subscript) -> str | int | None:
    index = item.slice
    value = index.value if isinstance(index, ast.Constant) else None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _self_item(target: ast.expr) -> str:
    """The state key of a `self.x["k"]` target; "" for any other target."""
    if not isinstance(target, ast.Subscript):
        return ""
    key, held = target.slice, dotted_name(target.value)
    if not (held.startswith("self.") and held.count(".") == 1):
        return ""
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return item_key(held, key.value)
    return ""


def _constant_item(target: ast.expr) -> str:
    """The constant key of a `name["k"]` target; "" for any other target."""
    if not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)):
        return ""
    key = target.slice
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else ""


def _known_keys(name: str, state: State) -> dict[str, Refused | None]:
    """What the state knows under each constant key of a local (`name['k']`), nested ones
    joined (nested_keys)."""
    return nested_keys(name, state)


def agreed_columns(
    returned: Sequence[Sequence[Refused | None] | None], count: int
) -> list[list[Refused | None]] | None:
    """The `count` columns of the tuples every `return` gives (-1: as many as the first
    gives); None when some return gives no tuple of that length."""
    if count < 0 and returned and returned[0] is not None:
        count = len(returned[0])
    if not returned or any(r is None or len(r) != count for r in returned):
        return None
    return [list(column) for column in zip(*[r for r in returned if r is not None])]


def return_items_of(
    func: FunctionNode, safety: LoadSafety, bound: Mapping[str, object] | None = None
) -> list[list[Refused | None] | None]:
    """What each element of each `return a, b` of a function gives (locals followed,
    parameters as `bound`)."""
    return LocalFlow(safety).run(func, bound, needs=of_returns(func)).return_items


def _parameter_default(func: FunctionNode, name: str) -> ast.expr | None:
    """The default of the function's parameter `name`, when the body never rebinds it."""
    found = default_of(func, name)
    if found is None:
        return None
    rebound = any(
        isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)
        for stmt in func.body
        for n in walk(stmt)
    )
    return None if rebound else found


_NUMBER_SERIES = "pandas-number-series"  # load_safety's column of numbers


def _with_number_column(held: frozenset[Possible], column: str) -> frozenset[Possible]:
    """The frames a name may hold, each with `column` among its columns of numbers."""
    return frozenset(
        replace(p, number_columns=p.number_columns | {column})
        if isinstance(p, Refused) and p.kind.endswith("frame")
        else p
        for p in held
    )


def _frame(held: frozenset[Possible] | None) -> bool:
    """A name holding a pandas frame (`table["activity"] = labels` stores a column)."""
    return any(isinstance(p, Refused) and p.kind.endswith("frame") for p in held or ())


def _stored_item(name: str, possible: Possible, state: State, catalog: WeightsOnlyCatalog) -> State:
    """`scores[k] = np.mean(x)` (a key not constant) into a local bound only to literals: an
    empty dict (`{}`, `dict()`: a list display that empty takes no index) now holds numpy
    values, so it is a dict of them (its keys iterate as what they are: `max(scores)`);
    anything else (a tensor, an array, a parameter, other kinds) keeps what it was."""
    held = state.get(name)
    if not isinstance(possible, Refused) or possible.kind not in ("numpy-scalar", "numpy-array"):
        return {}
    if not held or not all(isinstance(p, _Literal) for p in held):
        return {}
    stored = catalog.kind(possible.kind + "-dict")
    return {name: frozenset({stored})} if stored is not None else {}


def _tuple_items(name: str, count: int, state: State) -> list[Possible] | None:
    """What each of the `count` items of a helper's tuple result held in `name` is, when
    the state kept exactly `count` of them."""
    if item_key(name, count) in state or item_key(name, count - 1) not in state:
        return None
    if any(item_key(name, i) not in state for i in range(count)):
        return None
    return [collapse(state[item_key(name, i)]) or UNKNOWN for i in range(count)]


def _key(target: ast.expr) -> str:
    """The state key of a simple target: a local name, or `self.x`."""
    if isinstance(target, ast.Name):
        return target.id
    dotted = dotted_name(target) if isinstance(target, ast.Attribute) else ""
    return dotted if dotted.startswith("self.") and dotted.count(".") == 1 else ""


def _stored_attribute(target: ast.expr) -> bool:
    """`model.config` as a target: an attribute of a local name other than self."""
    return (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id != "self"
    )


def _target_name(target: ast.expr) -> str:
    """The name a tuple target's element binds (`a`, `*rest`); "" for anything else."""
    if isinstance(target, ast.Starred):
        target = target.value
    return target.id if isinstance(target, ast.Name) else ""


# methods of a numpy array that return one numpy array
_ARRAY_METHODS = frozenset(
    {"ravel", "flatten", "reshape", "squeeze", "astype", "copy", "round", "clip", "cumsum"}
)
_LEVELLED = frozenset(
    {"numpy.percentile", "numpy.quantile", "numpy.nanpercentile", "numpy.nanquantile"}
)
_NESTED = "#nested"  # a tuple target's element that is a tuple of names itself


def _nested_mark(target: ast.expr) -> str:
    """`_NESTED` for a tuple of names (`(jf, *rest)`) among a tuple target's elements; ""
    for anything else."""
    if not isinstance(target, (ast.Tuple, ast.List)):
        return ""
    if all(_target_name(e) or _nested_mark(e) for e in target.elts):
        return _NESTED
    return ""


def _item_target(target: ast.expr) -> str:
    """`data["feats"]` as a tuple target's element: its state key; "" for anything else."""
    if not isinstance(target, ast.Subscript) or not isinstance(target.value, ast.Name):
        return ""
    key = target.slice
    if not isinstance(key, ast.Constant) or not isinstance(key.value, (str, int)):
        return ""
    return item_key(target.value.id, key.value)


def _attribute_target(target: ast.expr) -> str:
    """`trainer.negatives` as a tuple target's element: the dotted key the flow keeps it
    under; "" for anything else."""
    return dotted_name(target) if isinstance(target, ast.Attribute) else ""


def _forget_targets(target: ast.Tuple | ast.List, state: State) -> State:
    """A tuple target whose elements were not given known values: a name bound by it is
    unknown; an item stored into (`bins[0]`) leaves its holder what it was (an array stays
    an array), only what was known of its items is gone, as for `d[k] = v`."""
    for element in target.elts:
        if isinstance(element, ast.Starred):
            element = element.value
        key = _key(element) or (dotted_name(element) if _stored_attribute(element) else "")
        if key:
            state = {k: v for k, v in state.items() if not k.startswith((key + ".", key + "["))}
            state[key] = frozenset({UNKNOWN})
        elif isinstance(element, (ast.Tuple, ast.List)):
            state = _forget_targets(element, state)
        elif isinstance(element, ast.Subscript) and isinstance(element.value, ast.Subscript):
            state = _forget_nested(element.value, state)
        elif isinstance(element, ast.Subscript) and isinstance(element.value, ast.Name):
            held = element.value.id + "["
            state = {k: v for k, v in state.items() if not k.startswith(held)}
        elif not isinstance(element, (ast.Subscript, ast.Attribute)):
            state = {**state, **_unknown(_names(element))}
    return state


def _names(target: ast.expr) -> list[str]:
    return [n.id for n in walk(target) if isinstance(n, ast.Name)]


def _unknown(names: list[str]) -> State:
    return {name: frozenset({UNKNOWN}) for name in names}


_RETURNED = "#returned"  # the name a returned fluent call's object is followed under


def _returned_objects(
    value: ast.expr | None, state: State, handed: set[str] | frozenset[str] = frozenset()
) -> dict[int, State]:
    """`return trainer` / `return trainer, lengths`: the attribute (and item) keys each
    returned name has (`handed`: names whose calls in the return are followed already)."""
    if value is not None and _mutating_call(value, handed):
        return {}  # a call in the return handed a returned object may store anything in it
    whole = not isinstance(value, ast.Tuple)
    shown = [value] if whole else value.elts if isinstance(value, ast.Tuple) else []
    if any(isinstance(e, ast.Starred) for e in shown):
        return {}
    found: dict[int, State] = {}
    for index, item in enumerate(shown):
        if isinstance(item, ast.Name):
            # `.best` of what a method stored, `['region']` of a dict display's keys
            prefixes = (item.id + ".", item.id + "[")
            held = {k[len(item.id) :]: v for k, v in state.items() if k.startswith(prefixes)}
            found[-1 if whole else index] = held
    return found


def _mutating_call(value: ast.expr, handed: set[str] | frozenset[str] = frozenset()) -> bool:
    """A call in a `return` that mentions a name the return gives back (`return m.fit(x)`,
    `return f(t), t`): `np.stack(snapshots), dx, ctrl` hands `ctrl` to no call."""
    shown = value.elts if isinstance(value, ast.Tuple) else [value]
    names = {e.id for e in shown if isinstance(e, ast.Name)} - handed
    return any(
        isinstance(n, ast.Call) and any(isinstance(m, ast.Name) and m.id in names for m in walk(n))
        for n in walk(value)
    )


def _fresh_literal(before: State, arm: State, name: str) -> bool:
    """The arm bound `name` to literals only (not a value it held before the `if`)."""
    possible = arm.get(name, frozenset())
    return (
        bool(possible)
        and possible != before.get(name)
        and all(isinstance(p, _Literal) for p in possible)
    )


def _undecided(before: State, a: State, b: State, merged: State) -> State:
    """`if fp16: scale = 1.0 else: scale = np.float32(...)`: which arm runs is the
    condition's call, and the one giving a literal may be the only one that runs. The
    literal is no starting value a later assignment overwrites (`best = 0.0` then `best =
    np.mean(...)` in a loop), so the name is not known to be refused."""
    return {
        name: possible | {UNKNOWN}
        if any(isinstance(p, Refused) for p in possible)
        and (_fresh_literal(before, a, name) or _fresh_literal(before, b, name))
        else possible
        for name, possible in merged.items()
    }


def _merge(a: State, b: State) -> State:
    if a is b:
        return a
    merged = dict(a)
    for name, possible in b.items():
        if name not in a and _none_holder(name, a):
            merged[name] = possible
            continue
        merged[name] = merged.get(name, frozenset({UNKNOWN})) | possible
    for name in a:
        if name not in b and not _none_holder(name, b):
            merged[name] = merged[name] | {UNKNOWN}
    return merged


def _none_holder(key: str, state: State) -> bool:
    """Whether `key` is an item or attribute (`best['ssim']`, `best.score`) of a name the
    state holds only `None` in: read, it is what another branch put there."""
    cut = min((i for i in (key.find("["), key.find(".")) if i > 0), default=-1)
    return cut > 0 and state.get(key[:cut]) == frozenset({NONE_LITERAL})
