"""What a value is, as far as the default `torch.load` cares: refused (what loads instead) or not.

Types come from what the code says, never from running it: calls the weights-only catalog knows
(data/weights_only.toml), annotations, constructors of project classes (an Enum, a dataclass, an
`nn.Module` subclass, any other class), helper functions of the project (their return
annotation, else what every `return` gives). Unknown is not refused: precision first.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import replace

from ckpt_lsp.analysis.argparse_types import argument_types
from ckpt_lsp.analysis.call_sites import decorator_registries
from ckpt_lsp.analysis.class_text import FunctionNode
from ckpt_lsp.analysis.column_keys import names_one_column
from ckpt_lsp.analysis.config_containers import CONVERTERS as CONFIG_CONVERTERS
from ckpt_lsp.analysis.config_containers import converted as config_container
from ckpt_lsp.analysis.config_containers import copied as config_copy
from ckpt_lsp.analysis.config_shapes import (
    YAML_LOADERS,
    RefusedLeaf,
    config_shape,
    dated,
    fields_shape,
    partly_known,
    refused_leaves,
)
from ckpt_lsp.analysis.constant_tests import (
    decided,
    module_number,
    module_number_table,
    module_string,
    module_string_item,
)
from ckpt_lsp.analysis.constructor_args import passed_arguments, passed_value
from ckpt_lsp.analysis.dataclass_dicts import CONVERTERS, converted
from ckpt_lsp.analysis.dataclass_fields import agreed, judged_fields, passed_field
from ckpt_lsp.analysis.demand import of_returns
from ckpt_lsp.analysis.draws import drawn_item, draws_a_number
from ckpt_lsp.analysis.elements import dict_mark, every_item_key
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.frame_members import reads_column
from ckpt_lsp.analysis.grouped import KEYED_FRAME, keyed_by_numbers, keyed_column
from ckpt_lsp.analysis.hparam_reads import hparam_fields, hparam_read, read_key
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.local_flow import (
    COLUMN_MARK,
    NUMBER,
    NUMBER_MARK,
    UNPASSED_NONE,
    KeyText,
    LocalFlow,
    ModuleText,
    State,
    agreed_columns,
    key_text,
    number_literal,
    text_constant,
)
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import assigned_targets, walk
from ckpt_lsp.analysis.number_fields import number_attribute
from ckpt_lsp.analysis.record_columns import named_columns, record_frame
from ckpt_lsp.analysis.record_keys import record_item
from ckpt_lsp.analysis.registry_calls import changed, registry_instance, registry_object_instance
from ckpt_lsp.analysis.splits import fold_list, fold_targets, pair_items
from ckpt_lsp.weights_only import (
    SLICED,
    SPREAD_KEYWORDS,
    UNSIZED,
    UNSIZED_SEQUENCE,
    WITH_NUMBERS,
    Refused,
    WeightsOnlyCatalog,
    weights_only_catalog,
)

# A local name -> what it holds (None: not refused, or not known).
Env = Mapping[str, "Refused | None"]
_NO_ENV: dict[str, Refused | None] = {}
_ENUM_BASES = frozenset(
    {"enum.Enum", "enum.IntEnum", "enum.StrEnum", "enum.Flag", "enum.IntFlag", "enum.ReprEnum"}
)
# classes whose instances are plain containers at runtime, or that say how they pickle
_PLAIN_BASES = frozenset({"typing.TypedDict", "typing_extensions.TypedDict", "builtins.type"})
_OWN_PICKLING = ("__reduce__", "__reduce_ex__", "__new__", "__class_getitem__")
_DATACLASS = frozenset({"dataclasses.dataclass", "attr.s", "attrs.define", "attr.define"})
_OPTIONAL = frozenset({"typing.Optional", "typing_extensions.Optional"})
_UNION = frozenset({"typing.Union", "typing_extensions.Union"})
# Builtins whose result is a Python number whatever they are given: arithmetic of one with a
# numpy value stays numpy (`len(counts) * counts` is an array, measured).
_NUMBER_BUILTINS = frozenset({"max", "min", "abs", "sum"})
_PYTHON_NUMBERS = frozenset(
    {
        "builtins.len",
        "builtins.int",
        "builtins.float",
        "time.time",
        "time.perf_counter",
        "time.monotonic",
        "time.process_time",
    }
)
_MAX_DEPTH = 3
_NUMPY = frozenset({"numpy-scalar", "numpy-array"})
_PLAIN_CONTAINERS = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "typing.Dict",
        "typing.List",
        "typing.Tuple",
        "typing.Mapping",
        "typing.Any",
    }
)
_SEQUENCES = frozenset({"builtins.list", "builtins.tuple", "builtins.sorted"})
_ORDERING = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_SHAPES = (ast.Dict, ast.List, ast.Tuple)
_SPARSE = "scipy-sparse"
# what a structured config's typed field holds that the default load refuses
_TYPED_LEAVES = frozenset({"enum-member", "path"})
# a frame's string subscript is a column; a frame built with a DatetimeIndex is indexed by time
# (data/weights_only.toml has the kinds)
_FRAME, _SERIES, _TIME_FRAME = "pandas-frame", "pandas-series", "pandas-time-frame"
_NUMBER_SERIES = "pandas-number-series"
_VALUES = "pandas-array"  # a column's values (`col.to_numpy()`): numpy, or pandas strings
# builtins over numpy values that raise on strings: given a column's values, it held numbers
_NUMERIC_ONLY = frozenset(
    {"statistics.mean", "statistics.variance", "statistics.pvariance", "builtins.sum"}
)
# arithmetic on a column keeps a column: plain, of numbers, keyed by numpy numbers, counts
_COLUMNS = frozenset(
    {_SERIES, _NUMBER_SERIES, "pandas-number-keyed-series", "pandas-number-counts"}
)
_NUMBER_FRAME = "pandas-number-frame"  # `df[["w", "h"]]` of number columns
_FRAMES = frozenset({_FRAME, _TIME_FRAME, _NUMBER_FRAME})
_DATETIME_SERIES = "pandas-datetime-series"
_DATES = frozenset({"pandas-datetime-index", _DATETIME_SERIES})
_TO_DATETIME = frozenset({"pandas.to_datetime"})
_STAMPS = frozenset({"pandas-timestamp", "datetime"})
# instances of project classes (a namedtuple's, a dataclass's, an Enum's members)
_RECORDS = frozenset({"object", "dataclass", "enum-member"})
_LISTING = _SEQUENCES | {"builtins.set"}  # calls that build a list (or set) of their items
# modules whose every public attribute is a function (math's constants aside)
_FUNCTION_NAMESPACES = ("torch.nn.functional.", "torch.nn.init.", "math.", "operator.")
_MATH_CONSTANTS = frozenset({"math.pi", "math.e", "math.tau", "math.inf", "math.nan"})
# numpy's constants are Python floats (measured: `type(np.inf) is float`)
_FLOAT_CONSTANTS = _MATH_CONSTANTS | {"numpy.inf", "numpy.nan", "numpy.pi", "numpy.e"}
_ROWS = frozenset({"iloc", "loc", "iat"})
_DICT_CALLS = frozenset({"builtins.dict", "collections.OrderedDict"})
# kinds whose instances hand back what they were given by keyword, as attributes
_KEYWORD_HOLDERS = frozenset({"namespace", "object"})
_SAME_TYPE = frozenset({"copy.deepcopy", "copy.copy"})  # a copy is what it copies
# kinds whose `type(value)` is no class the default load refuses: a Counter loads, and a
# function's or method's type cannot be saved at all (measured in test_weights_only_truth)
TYPE_LOADS_OR_FAILS = frozenset(
    {"numpy-keyed-counter", "callable", "bound-method", "state-dict-method"}
)
_PICKS_ONE = frozenset({"builtins.max", "builtins.min"})  # given several values: one of them
# (key, numpy scalar) pairs of `d.items()`, and one of them (data/weights_only.toml)
_PAIRS, _PAIR = "numpy-scalar-items", "numpy-scalar-pair"
# builtins over such pairs: the pairs again, or one pair
_PAIRS_KEPT = {
    "builtins.sorted": _PAIRS,
    "builtins.list": _PAIRS,
    "builtins.tuple": _PAIRS,
    "builtins.max": _PAIR,
    "builtins.min": _PAIR,
}


def _plain_dataclass(facts: ModuleFacts, cls: ClassFacts) -> bool:
    """Decorated by `dataclasses.dataclass` itself (attrs and pydantic may convert fields)."""
    return any(
        qualify(dotted_name(d.func if isinstance(d, ast.Call) else d), facts)
        == "dataclasses.dataclass"
        for d in cls.node.decorator_list
    )


def library_function(qualified: str) -> bool:
    """`torch.nn.functional.l1_loss`, `math.sqrt`: a function of a module of functions."""
    for namespace in _FUNCTION_NAMESPACES:
        if qualified.startswith(namespace):
            name = qualified[len(namespace) :]
            return "." not in name and not name.startswith("_") and qualified not in _MATH_CONSTANTS
    return False


def _keyed_sort(call: ast.Call) -> bool:
    """`sorted(xs, key=...)` (and `reverse=`): objects sorted by one of their fields."""
    names = {k.arg for k in call.keywords}
    return "key" in names and names <= {"key", "reverse"}


def _stores_into(func: ast.FunctionDef | ast.AsyncFunctionDef | None, name: str) -> int:
    """How many `name[k] = v` statements the function holds."""
    if func is None:
        return 0
    return sum(
        1
        for node in walk(func)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Name)
        and target.value.id == name
    )


def _no_fix(refused: Refused | None) -> Refused | None:
    return replace(refused, fix="") if refused is not None and refused.fix else refused


def _plain_passed(value: ast.expr) -> bool:
    """A value written to be plain data: a literal, an f-string, a member's `.value`/`.name`."""
    if isinstance(value, (ast.Constant, ast.JoinedStr)):
        return True
    return isinstance(value, ast.Attribute) and value.attr in ("value", "name")


def _typed_leaf(refused: Refused | None) -> Refused | None:
    """A structured config field's value, of the types OmegaConf keeps: Enum members, paths."""
    return refused if refused is not None and refused.kind in _TYPED_LEAVES else None


class LoadSafety:
    """Judges expressions and annotations of one module (and, through the index, its project)."""

    def __init__(
        self,
        facts: ModuleFacts,
        index: ProjectIndex | None = None,
        catalog: WeightsOnlyCatalog | None = None,
        _depth: int = 0,
        _judges: dict[tuple[int, int], LoadSafety] | None = None,
    ) -> None:
        self.facts = facts
        self.index = index
        self.catalog = catalog or weights_only_catalog()
        self._depth = _depth
        self._classes: dict[str, Refused | None] = {}
        # what callers learn once per function while judging a module (helpers' shapes)
        self.memo: dict[object, object] = {}
        # the judges of helpers' modules, one per module and depth, shared by every judge
        # made from the same first one: a helper's flow, memoized in its judge, then runs
        # once for all the callers at that depth, not once per caller
        self._judges: dict[tuple[int, int], LoadSafety] = _judges if _judges is not None else {}

    # -- public ----------------------------------------------------------
    def of_expression(self, expr: ast.expr | None, env: Env = _NO_ENV) -> Refused | None:
        """The refusal of what `expr` evaluates to; None when it loads or is not known.
        `env` holds what local names (and `self.x` as "self.x") are known to hold. The
        refusal's `fix` is kept only when the fix is certain for this very expression."""
        found = self.kind_of(expr, env)
        if found is not None and found.kind in self.catalog.receiver_only:
            # a plain container known by its shape: refused where the shape holds a value
            # the load refuses (`yaml.safe_load(text)` of a text with a date)
            leaves = refused_leaves(found.shape) if found.shape is not None else []
            return _holding(leaves[0][1]) if leaves else None
        return found

    def kind_of(self, expr: ast.expr | None, env: Env = _NO_ENV) -> Refused | None:
        """Like of_expression, receiver-only kinds included (an ArgumentParser): for flow."""
        if expr is None:
            return None
        if isinstance(expr, ast.Name):
            return env.get(expr.id) if expr.id in env else self._module_value(expr.id)
        read = read_key(expr)  # `module.hparams.stage`: what the module was built with
        if read is not None and self._depth < _MAX_DEPTH:
            found = hparam_read(self, *read, env)
            if found is not None:
                return found
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr, env)
        if isinstance(expr, ast.Call):
            judged = self._logged(self._keyword_fields(self._call(expr, env), expr, env), expr, env)
            drawn = _drawing(expr) or _drawn_from_strings(expr)
            if judged is not None and judged.kind == "numpy-array" and drawn:
                return replace(judged, built=expr)  # what it draws from (or strings) decides
            if judged is not None and judged.kind == "namespace" and not judged.type_name:
                return replace(judged, built=expr)  # the command line it was given, if any
            return judged
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            left = self.of_expression(expr.left, env)
            if left is not None and left.kind == "path":
                return left
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)):
            summed = self._sum(expr, env)
            if summed is not None:
                return summed
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Mult, ast.Div, ast.FloorDiv)):
            scaled = self._scaled(expr, env)
            if scaled is not None:
                return scaled
        if isinstance(expr, ast.Compare):
            mask = self._column_mask(expr, env)
            if mask is not None:
                return mask
        if isinstance(expr, ast.BinOp):
            column = self._column_arithmetic(expr, env)
            if column is not None:
                return column
        if isinstance(expr, ast.UnaryOp) and not isinstance(expr.op, ast.Not):
            negated = self.kind_of(expr.operand, env)  # `~mask`, `-df["ret"]`: a column still
            if negated is not None and negated.kind in _COLUMNS:
                return _no_fix(negated)
        if isinstance(expr, (ast.BinOp, ast.Compare, ast.UnaryOp)):
            return self._sparse_arithmetic(expr, env) or self._numpy_arithmetic(expr, env)
        if isinstance(expr, ast.Subscript):
            if (
                isinstance(expr.value, ast.Name)
                and expr.value.id not in env
                and self._registered_callables(expr.value.id)
            ):
                return self.catalog.kind("callable")  # `MODELS[cfg.model.name]`: a class
            members = self._member_item(expr, env)
            if members is not None:
                return members
            return self._numpy_item(expr, env)
        if isinstance(expr, ast.IfExp):
            taken = decided(expr.test, self, env)
            if taken is not None:  # `sched if RESUME_EXACT else sched.state_dict()`
                return self.kind_of(expr.body if taken else expr.orelse, env)
            body, other = self.of_expression(expr.body, env), self.of_expression(expr.orelse, env)
            if body is not None and other is not None:
                return body if body == other else _no_fix(body)
            # `2 * p * r / (p + r) if p + r > 0 else 0.0`: the number is the fallback, the
            # run that has a value saves the refused one (as a local's placeholder); `None`
            # is no fallback (`x if use_ema else None`: which arm runs is the flag's)
            if body is not None and number_literal(expr.orelse):
                return _no_fix(body)
            if other is not None and number_literal(expr.body):
                return _no_fix(other)
            return None
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return self.first_refused(expr.elts, env)
        if isinstance(expr, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self._comprehension(expr, env)
        if isinstance(expr, ast.DictComp):
            return self._numpy_values(expr, env)
        return None

    def _sparse_arithmetic(
        self, expr: ast.BinOp | ast.Compare | ast.UnaryOp, env: Env
    ) -> Refused | None:
        """Arithmetic, products and comparisons of scipy sparse matrices with each other or
        with numbers stay sparse (`sp.eye(n) - D @ A @ D`, `(a + a.T) > 0`; measured)."""
        if isinstance(expr, ast.BinOp):
            operands = [expr.left, expr.right]
        elif isinstance(expr, ast.Compare):
            operands = [expr.left, *expr.comparators]
        else:
            operands = [expr.operand]
        sparse = False
        for operand in operands:
            if _is_number_constant(operand) or self._is_number(operand, env):
                continue
            found = self.kind_of(operand, env)
            if found is None or found.kind not in (_SPARSE, "numpy-scalar"):
                return None
            sparse = sparse or found.kind == _SPARSE
        return _no_fix(self.catalog.kind(_SPARSE)) if sparse else None

    def _numpy_arithmetic(
        self, expr: ast.BinOp | ast.Compare | ast.UnaryOp, env: Env
    ) -> Refused | None:
        """Arithmetic and comparisons on numpy values stay numpy (`(pred == y).mean()`,
        `acc * 100`): when every operand is a numpy value or a number literal, and one is numpy
        (a tensor operand would make a tensor)."""
        if isinstance(expr, ast.BinOp):
            operands = [expr.left, expr.right]
        elif isinstance(expr, ast.Compare):
            operands = [expr.left, *expr.comparators]
        else:
            operands = [expr.operand]
        # `stages == Stage.W`, `labels != "noise"`: numpy compares an array with any one
        # value item by item; a numpy scalar compared with a string or a plain Enum member
        # gives a Python bool (measured, numpy 2.4)
        equality = isinstance(expr, ast.Compare) and all(
            isinstance(op, (ast.Eq, ast.NotEq)) for op in expr.ops
        )
        kinds = set()
        other = False  # an operand that only an array compares item by item
        values = False  # a column's values: arithmetic with numpy raises unless numbers
        unknown = False  # an operand of no known kind (`counts / total`), see below
        for operand in operands:
            if self._python_number(operand, env):
                continue
            if isinstance(operand, ast.Constant) and isinstance(operand.value, (int, float)):
                continue
            if equality and isinstance(operand, ast.Constant):
                other = True
                continue
            if self._is_number(operand, env):
                continue  # a local bound only to number literals (`best = 0.5`), `1 - beta`
            found = self.kind_of(operand, env)
            if equality and found is not None and found.kind == "enum-member":
                other = True
                continue
            if isinstance(expr, ast.BinOp) and found is not None and found.kind == _VALUES:
                values = True  # `pred - df["y"].to_numpy()`: over strings it raises
                continue
            if found is None and _item_by_item(expr) and not _tensor_like(operand):
                unknown = True  # `counts / total`, `pred == labels`
                continue
            if found is None or found.kind not in _NUMPY:
                return None
            kinds.add(found.kind)
        if unknown and "numpy-array" not in kinds:
            return None  # a numpy scalar times a tensor is a tensor: only an array decides
        if values and kinds:
            kinds.add("numpy-array")
        if not kinds or (other and "numpy-array" not in kinds):
            return None
        kind = "numpy-array" if "numpy-array" in kinds else "numpy-scalar"
        return _no_fix(self.catalog.kind(kind))

    def _column_mask(self, expr: ast.Compare, env: Env) -> Refused | None:
        """`df["status"] == "done"`: a column compared is a column of booleans (its `mean()`
        and `sum()` are numpy scalars, as a column of numbers')."""
        if len(expr.ops) != 1 or not isinstance(expr.ops[0], _ORDERING):
            return None
        left = self.kind_of(expr.left, env)
        if left is None or left.kind not in (*_COLUMNS, _DATETIME_SERIES):
            return None
        return _no_fix(self.catalog.kind(_NUMBER_SERIES))

    def _column_arithmetic(self, expr: ast.BinOp, env: Env) -> Refused | None:
        """`agg["d"] / agg["w"].cumsum()`, `df["lr"] * 10`: arithmetic on a column (with a
        number, a numpy value or another column) is a column."""
        sides = [self.kind_of(side, env) for side in (expr.left, expr.right)]
        columns = [s for s in sides if s is not None and s.kind in _COLUMNS]
        if not columns:
            return None
        for side, judged in zip((expr.left, expr.right), sides):
            if judged is not None and judged.kind in (*_COLUMNS, *_NUMPY):
                continue
            if not (_is_number_constant(side) or self._is_number(side, env)):
                return None
        numbers = all(c.kind != _SERIES for c in columns)
        return _no_fix(self.catalog.kind(_NUMBER_SERIES if numbers else _SERIES))

    def _sum(self, expr: ast.BinOp, env: Env) -> Refused | None:
        """`finished - started`, `datetime.now() - self.start`: a value of a kind whose sums
        stay of it (datetimes) added to or taken from anything that does not raise gives one
        of that family again (a datetime, a timedelta), whatever the other side is."""
        for side in (expr.left, expr.right):
            found = self.kind_of(side, env)
            if found is not None and found.kind in self.catalog.sums:
                return _no_fix(found)
        return None

    def _scaled(self, expr: ast.BinOp, env: Env) -> Refused | None:
        """`timedelta(minutes=5) * len(z)`, `step / 2`: a duration times or over a number is a
        duration (over another duration it is a float, so only a number on the right
        divides)."""
        sides = [(expr.left, expr.right)]
        if isinstance(expr.op, ast.Mult):
            sides.append((expr.right, expr.left))
        for duration, number in sides:
            if not (_is_number_constant(number) or self._is_number(number, env)):
                continue
            found = self.kind_of(duration, env)
            if found is not None and found.kind in self.catalog.sums:
                return _no_fix(found)
        return None

    def is_number(self, expr: ast.expr, env: Env = _NO_ENV) -> bool:
        """A Python number as written, a local or module name bound only to them, a field
        known to hold one, `len(x)` / `int(x)` / `float(x)`, or arithmetic of those."""
        return self._is_number(expr, env)

    def _is_number(self, expr: ast.expr, env: Env) -> bool:
        """A number literal, a local bound only to them, or arithmetic of those."""
        if isinstance(expr, ast.Name):  # a local bound only to numbers, or `SCALE = 100.0`
            if expr.id in env:
                return NUMBER_MARK + expr.id in env
            return module_number(expr.id, self)
        if isinstance(expr, ast.Attribute):  # `cfg.eps_end` of a `float` field
            if qualify(dotted_name(expr), self.facts) in _FLOAT_CONSTANTS:  # `math.inf`
                return True
            if NUMBER_MARK + dotted_name(expr) in env:  # `self.scale = 2.0` and only numbers
                return True
            return self._depth < _MAX_DEPTH and number_attribute(self, expr, env)
        if isinstance(expr, ast.Call):
            return self._python_number(expr, env) or self._number_builtin(expr, env)
        if isinstance(expr, ast.UnaryOp):
            return _is_number_constant(expr.operand) or self._is_number(expr.operand, env)
        if isinstance(expr, ast.BinOp):
            return all(
                _is_number_constant(side) or self._is_number(side, env)
                for side in (expr.left, expr.right)
            )
        if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name):
            # `GOES_CLASSES[cls]` of a module-level table of numbers
            return expr.value.id not in env and module_number_table(expr.value.id, self)
        return False

    def _number_builtin(self, call: ast.Call, env: Env) -> bool:
        """`max(int(n), 1)`, `abs(x - 2)`, `sum(len(r) for r in rows)`: the builtins over
        Python numbers only give one."""
        dotted = dotted_name(call.func)
        if dotted not in _NUMBER_BUILTINS or dotted in env or call.keywords or not call.args:
            return False
        if qualify(dotted, self.facts) != f"builtins.{dotted}":
            return False
        given = call.args[0]
        if len(call.args) == 1 and isinstance(given, (ast.GeneratorExp, ast.ListComp)):
            return self._is_number(given.elt, env)  # `sum(len(r.split()) for r in refs)`
        if f"builtins.{dotted}" in _PICKS_ONE and self._python_number_among(call, env):
            # `min(thr, args.cap)`: a number, numpy or not (`conf >= min(...)` is an array)
            return all(
                _is_number_constant(a) or self._is_number(a, env) or self._numpy_kind(a, env)
                for a in call.args
            )
        return all(_is_number_constant(a) or self._is_number(a, env) for a in call.args)

    def _numpy_item(self, expr: ast.Subscript, env: Env) -> Refused | None:
        """`arr[0]` is a numpy scalar (or a row), `arr[1:]` an array: numpy either way.
        `metrics["loss"]` of a helper's dict display is what the flow found there."""
        index = expr.slice
        constant = _constant_index(index)
        held = _held_name(expr.value)
        if held and constant is not None:
            from ckpt_lsp.analysis.local_flow import item_key  # the flow needs this module

            key = item_key(held, constant)  # `metrics["loss"]`, `d.cache["probs"]`
            if key in env:
                return env[key]
        if isinstance(expr.value, ast.Name) and not isinstance(index, ast.Slice):
            every = every_item_key(expr.value.id)  # `infos[i]` of a list of TaskInfo
            if every in env:
                return env[every]
            record = record_item(expr, None, env)  # `log[-1]` of a list of dicts
            if record is not None:
                return record
        record = record_item(expr.value, constant, env)  # `log[-1]["loss"]`
        if record is not None:
            return record
        if (
            isinstance(expr.value, ast.Attribute)
            and isinstance(constant, str)
            and held not in env
            and self._depth < _MAX_DEPTH
        ):
            owner = self.kind_of(expr.value.value, env)  # `run.stats["mean"]`
            if owner is not None and owner.type_name and not owner.holder:
                from ckpt_lsp.analysis.object_effects import initial_item  # runs flows

                found = initial_item(self, owner, expr.value.attr, constant)
                if found is not None:
                    return found
        rows = self._rows(expr, env)
        if rows is not None:
            return rows
        member = self.enum_class(expr.value, env)
        if member is not None:
            return member  # `Task["SEG"]`: a member looked up by name
        if isinstance(expr.value, ast.Call) and isinstance(index, ast.Constant):
            shown = self._shown_item(expr.value, index.value, env)
            if shown is not None:
                return shown
        receiver = self.kind_of(expr.value, env)
        if receiver is not None and receiver.holder:
            return None  # `d.cache["logits"]`: another key than the refused one, maybe
        if receiver is not None and receiver.shape is not None and isinstance(index, ast.Constant):
            return self._nested(receiver, str(index.value))  # `raw["split"]["train_end"]`
        if receiver is not None and _every_value_nested(receiver.shape):
            # `cfg[task]` of a document whose every section is a mapping or a list: a config,
            # whichever the key (what it holds inside depends on the key)
            return replace(receiver, shape=None)
        if receiver is not None and receiver.kind == _PAIR:
            # `ranked[0][1]`: the numpy scalar of a (key, numpy scalar) pair; the key is not known
            at = _constant_index(index)
            return _no_fix(self.catalog.kind("numpy-scalar")) if at in (1, -1) else None
        if receiver is not None and receiver.kind == KEYED_FRAME:
            return keyed_column(index, receiver, self.catalog)  # `agg["dice"]`
        if receiver is not None and receiver.kind in _FRAMES:
            if isinstance(index, ast.Name) and COLUMN_MARK + index.id in env:
                return self.catalog.kind(_SERIES)  # `df[c]` of `for c in df.columns`
            return self._column(index, receiver, env)
        if receiver is not None and receiver.kind in _COLUMNS and not isinstance(index, ast.Slice):
            rows = self.kind_of(index, env)  # `mags[mags >= mc]`: the rows a mask keeps
            if rows is not None and rows.kind in (*_COLUMNS, "numpy-array"):
                return _no_fix(receiver)
        if receiver is not None and receiver.kind == "numpy-scalar":
            # `np.minimum(y, 2)[idx]`: only an array takes an array index (a numpy scalar, a
            # list or a Counter raise), and gives an array back
            given = self.kind_of(index, env)
            if given is not None and given.kind == "numpy-array":
                return _no_fix(self.catalog.kind("numpy-array"))
            parts = index.elts if isinstance(index, ast.Tuple) else [index]
            if isinstance(expr.value, ast.Call) and any(isinstance(p, ast.Slice) for p in parts):
                # `np.linalg.det(stack)[1:-1]`: a reduction's numpy number cannot be sliced, so
                # it gave an array (the stack's); an item of an array of strings can (`s[2:]`)
                return _no_fix(self.catalog.kind("numpy-array"))
            if _is_int(index):  # `trainer.accs[-1]`: no scalar takes it, a list of them does
                return _no_fix(receiver)
        if receiver is not None and isinstance(index, ast.Slice):
            part = self.catalog.method(receiver.kind, "__getitem__" + SLICED, False, True)
            if part:  # `counts.index[:20]`: an Index still
                return _no_fix(self.catalog.kind(part))
        if receiver is not None and receiver.kind != "numpy-array" and not receiver.type_name:
            # a library container's item (`model[0]` of an nn.Sequential); a project class
            # may define its own __getitem__
            return _no_fix(
                self._returned(
                    self.catalog.method(receiver.kind, "__getitem__", False, True), receiver
                )
            )
        if receiver is None or receiver.kind != "numpy-array":
            return None
        index = expr.slice
        parts = index.elts if isinstance(index, ast.Tuple) else [index]
        sliced = any(
            isinstance(e, ast.Slice) or (isinstance(e, ast.Constant) and e.value is None)
            for e in parts
        )  # `x[:, None]` adds an axis
        if not sliced:  # `sims[gt, gt]`, `x[mask]`: indexed by an array, an array
            indices = (self.kind_of(e, env) for e in parts if not isinstance(e, ast.Constant))
            sliced = any(i is not None and i.kind == "numpy-array" for i in indices)
        return _no_fix(self.catalog.kind("numpy-array" if sliced else "numpy-scalar"))

    def _rows(self, expr: ast.Subscript, env: Env) -> Refused | None:
        """`df.iloc[:cut]`, `df["load"].loc[a:b]`: a slice of rows keeps the frame or column
        (and a frame's DatetimeIndex); `df.iloc[-1]` is a row (a Series), `col.iloc[-1]` of a
        column of numbers a numpy scalar; a label (`loc`) or a cell is not known here."""
        value = expr.value
        if not isinstance(value, ast.Attribute) or value.attr not in _ROWS:
            return self._cell(expr, env)
        index = expr.slice
        sliced = isinstance(index, ast.Slice) or self._positions(index, env)
        if value.attr == "loc" and isinstance(index, ast.Tuple):
            return self._cell(expr, env)
        position = value.attr in ("iloc", "iat") and _is_int(index)
        label = value.attr == "loc" and self._one_label(index, env)  # `df.loc[s.idxmin()]`
        if not (sliced or position or label):
            return None
        receiver = self.kind_of(value.value, env)
        if receiver is None or receiver.kind not in {
            *_FRAMES,
            _SERIES,
            _NUMBER_SERIES,
            _DATETIME_SERIES,
        }:
            return None
        if sliced:
            return receiver
        if receiver.kind == _DATETIME_SERIES:  # `dates.iloc[-1]`: a Timestamp
            return self.catalog.kind("pandas-timestamp")
        if receiver.kind in _FRAMES:  # a row: its cells under number columns are numpy
            row = self.catalog.kind(_SERIES)
            cells = receiver.number_columns
            return replace(row, number_columns=cells) if row is not None and cells else row
        numbers = receiver.kind == _NUMBER_SERIES
        return _no_fix(self.catalog.kind("numpy-scalar")) if numbers else None

    def _positions(self, index: ast.expr, env: Env) -> bool:
        """`df.iloc[train_idx]` of an array of positions, `df.loc[[a, b]]`: many rows, a
        frame (or column) as the receiver is."""
        if isinstance(index, ast.List):
            return True
        # `df.iloc[idx[cut:]]`, `df.iloc[np.arange(k)]`: any array of positions
        shown = (ast.Name, ast.Attribute, ast.Subscript, ast.Call)
        held = self.kind_of(index, env) if isinstance(index, shown) else None
        return held is not None and held.kind == "numpy-array"

    def _one_label(self, index: ast.expr, env: Env) -> bool:
        """`df.loc[df["loss"].idxmin()]`, `df.loc[0]`: one label, so the result is a row (a
        list, a mask or a slice of labels gives a frame)."""
        if _is_int(index):
            return True
        if not (
            isinstance(index, ast.Call)
            and isinstance(index.func, ast.Attribute)
            and index.func.attr in ("idxmin", "idxmax")
            and not index.args
            and not index.keywords
        ):
            return False
        column = self.kind_of(index.func.value, env)  # a frame's idxmin is a Series of labels
        return column is not None and column.kind in (_SERIES, _NUMBER_SERIES)

    def _column(self, index: ast.expr, frame: Refused, env: Env) -> Refused | None:
        """`df["ap"]` is a Series (of numbers when the frame's display built it so),
        `df[["a", "b"]]` (or `df[COLUMNS]`, a module-level list of names) a frame; a mask or
        a variable is not known, unless it names one column (column_keys)."""
        if isinstance(index, ast.Constant) and isinstance(index.value, str):
            if index.value in frame.time_columns:
                return self.catalog.kind(_DATETIME_SERIES)
            numbers = index.value in frame.number_columns
            return self.catalog.kind(_NUMBER_SERIES if numbers else _SERIES)
        if names_one_column(self, index, env):  # `df[TARGET]`, `df[self.target]`
            return self.catalog.kind(_SERIES)
        if isinstance(index, (ast.Compare, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name)):
            mask = self.kind_of(index, env)  # `df[df.w >= thr]`, `df[~is_val]`: its rows
            if mask is not None and mask.kind in _COLUMNS:
                return _no_fix(frame)
        if (
            isinstance(index, ast.Call)
            and isinstance(index.func, ast.Name)
            and index.func.id not in env
            and qualify(index.func.id, self.facts) in ("builtins.list", "builtins.sorted")
        ):
            return self.catalog.kind(_FRAME)  # `df[list(cfg.fields)]`: a list of labels
        local = isinstance(index, ast.Name) and (index.id in env or index.id in self.facts.imports)
        if isinstance(index, ast.Name) and not local:
            named = self.facts.assigns.get(index.id)
            if isinstance(named, ast.List) and self._constant_sequence(named):
                index = named
        if not isinstance(index, ast.List):
            return None
        names = [e.value for e in index.elts if isinstance(e, ast.Constant)]
        if names and len(names) == len(index.elts) and set(names) <= frame.number_columns:
            subset = self.catalog.kind(_NUMBER_FRAME)  # `df[["w", "h"]].max()`: numbers
            if subset is not None:
                return replace(subset, number_columns=frozenset(map(str, names)))
        return self.catalog.kind(_FRAME)

    def _comprehension(
        self, expr: ast.ListComp | ast.SetComp | ast.GeneratorExp, env: Env
    ) -> Refused | None:
        """`[t for t in thresholds if t <= 0.75]`: a list of what each item is; a generator
        itself is not saved (a builtin over it is: `_keeps_numpy`)."""
        return None if isinstance(expr, ast.GeneratorExp) else self._element(expr, env)

    def element_of(
        self, expr: ast.ListComp | ast.SetComp | ast.DictComp, env: Env
    ) -> Refused | None:
        """What each item (a dict's value) of a comprehension is, when refused."""
        yielded = expr.value if isinstance(expr, ast.DictComp) else None
        return self._element(expr, env, yielded)

    def _numpy_values(self, expr: ast.DictComp, env: Env) -> Refused | None:
        """`{pid: np.round(row, 3) for pid in ids}`: a dict whose every value is a numpy
        array (or scalar) is refused, and its items (`spacings[ids[0]]`) are those values;
        a dict of any other kind's values is left to its saving site."""
        found = self._element(expr, env, expr.value)
        if found is None or found.kind not in _NUMPY:
            return None
        return _no_fix(self.catalog.kind(found.kind + "-dict"))

    def _element(
        self,
        expr: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
        env: Env,
        yielded: ast.expr | None = None,
    ) -> Refused | None:
        """What each item a comprehension yields is: the items of a numpy array are numpy
        values (a pandas column's iterate as Python numbers)."""
        inner = dict(env)
        for generator in expr.generators:
            labels = self.column_labels(generator.iter, inner)
            for name in walk(generator.target):
                if isinstance(name, ast.Name):
                    inner[name.id] = None  # shadows any outer name of that spelling
                    inner.pop(COLUMN_MARK + name.id, None)
            if labels and isinstance(generator.target, ast.Name):
                inner[COLUMN_MARK + generator.target.id] = None
            inner.update(self._iterated(generator.target, generator.iter, inner))
        if yielded is None and not isinstance(expr, ast.DictComp):
            yielded = expr.elt
        return _no_fix(self.of_expression(yielded, inner))

    def enum_class(self, expr: ast.expr, env: Env) -> Refused | None:
        """`Task` naming a project Enum class: its members (`Task["SEG"]`, `for t in Task`)
        are Enum members; None for anything else."""
        dotted = dotted_name(expr)
        if not dotted or dotted.split(".")[0] in env:
            return None
        located = self._project_class(qualify(dotted, self.facts))
        kind = self._class_kind(*located) if located is not None else None
        return kind if kind is not None and kind.kind == "enum-member" else None

    def column_labels(self, iterable: ast.expr, env: Env) -> bool:
        """`df.columns` (or `list(df.columns)`) of a pandas frame: its items are column labels."""
        if (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Name)
            and iterable.func.id in ("list", "sorted", "tuple")
            and len(iterable.args) == 1
            and iterable.func.id not in env
        ):
            iterable = iterable.args[0]
        if not (isinstance(iterable, ast.Attribute) and iterable.attr == "columns"):
            return False
        frame = self.kind_of(iterable.value, env)
        return frame is not None and frame.kind in _FRAMES

    def iterated(
        self, target: ast.expr, iterable: ast.expr, env: Env, func: ast.AST | None = None
    ) -> dict[str, Refused]:
        """The names of a loop or comprehension target known to take numpy items or arrays
        (a splitter's folds; `func`, the function making the loop, binds the splitter)."""
        return {
            **self._iterated(target, iterable, env),
            **fold_targets(self, target, iterable, func, env),
        }

    def _iterated(self, target: ast.expr, iterable: ast.expr, env: Env) -> dict[str, Refused]:
        """`t` of `for t in arr`, `t` of `for i, t in enumerate(arr)`, `a, b` of `for a, b in
        zip(xs, ys)`: the names that take a numpy array's items (or a date index's
        Timestamps)."""
        pairs: list[tuple[ast.expr, ast.expr]] = []
        if isinstance(target, ast.Name):
            pairs = [(target, iterable)]
        elif isinstance(target, ast.Tuple) and isinstance(iterable, ast.Call):
            func, args = iterable.func, iterable.args
            called = func.id if isinstance(func, ast.Name) and func.id not in env else ""
            builtin = qualify(called, self.facts) if called and not iterable.keywords else ""
            if builtin == "builtins.zip" and len(target.elts) == len(args):
                pairs = list(zip(target.elts, args))
            elif builtin == "builtins.enumerate" and len(target.elts) == 2 and len(args) == 1:
                pairs = [(target.elts[1], args[0])]
        item = _no_fix(self.catalog.kind("numpy-scalar"))
        found: dict[str, Refused] = {}
        if isinstance(target, ast.Tuple) and len(target.elts) == 2 and item is not None:
            value = target.elts[1]
            over_pairs = self.kind_of(iterable, env)
            if isinstance(value, ast.Name) and over_pairs is not None and over_pairs.kind == _PAIRS:
                found[value.id] = item  # `for name, score in scores.items()`
        group = self._group_frame(target, iterable, env)
        if group is not None:
            found.update(group)
        member = self.enum_class(iterable, env) if isinstance(target, ast.Name) else None
        if member is not None and isinstance(target, ast.Name):
            found[target.id] = member  # `[t for t in Task]`: the Enum's members
        for name, over in pairs:
            if not isinstance(name, ast.Name) or item is None:
                continue
            every = env.get(every_item_key(over.id)) if isinstance(over, ast.Name) else None
            if every is not None and isinstance(over, ast.Name) and dict_mark(over.id) not in env:
                found[name.id] = every  # `[asdict(t) for t in trials]` of a list of Trial
                continue
            judged = self.kind_of(over, env)
            if judged is not None and judged.kind == "numpy-array":
                found[name.id] = item
            stamp = self.catalog.kind("pandas-timestamp")
            if judged is not None and judged.kind in _DATES and stamp is not None:
                found[name.id] = replace(stamp, fix="")  # `for d in pd.date_range(...)`
        return found

    def _group_frame(
        self, target: ast.expr, iterable: ast.expr, env: Env
    ) -> dict[str, Refused] | None:
        """`for cid, g in df.groupby("campaign_id")`: each group is a frame of the frame's
        columns (so `g["won"].mean()` is what `df["won"].mean()` would be)."""
        if not (
            isinstance(target, ast.Tuple)
            and len(target.elts) == 2
            and isinstance(target.elts[1], ast.Name)
            and isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Attribute)
            and iterable.func.attr == "groupby"
        ):
            return None
        frame = self.kind_of(iterable.func.value, env)
        if frame is None or frame.kind not in _FRAMES:
            return None
        return {target.elts[1].id: replace(frame, fix="")}

    def _shown_item(self, call: ast.Call, index: object, env: Env) -> Refused | None:
        """`match(scores)[1]` / `evaluate(m)["loss"]`: the element (or constant key) every
        `return` display of a project helper gives there."""
        if isinstance(index, str):
            return self.keys_of(call, env).get(index)
        if not isinstance(index, int) or isinstance(index, bool):
            return None
        items = self.items_of(call, -1, env)
        if items is None:  # `patient_folds(df, k)[0]` of a list the helper filled
            from ckpt_lsp.analysis.local_flow import collapse  # the flow needs this module

            every = self.objects_of(call, -1, env).get("[*]")
            return _no_fix(collapse(every)) if every else None
        if not -len(items) <= index < len(items):
            return None
        return items[index]

    def first_refused(self, items: list[ast.expr], env: Env = _NO_ENV) -> Refused | None:
        """A list or tuple display holding a refused element is refused as a whole."""
        for item in items:
            found = self.of_expression(item.value if isinstance(item, ast.Starred) else item, env)
            if found is None and isinstance(item, ast.Name) and item.id in env:
                found = _held_item(item.id, env)  # `(state, meta)` of a local dict display
            if found is not None:
                return _no_fix(found)
        return None

    def of_annotation(self, annotation: ast.expr | None) -> Refused | None:
        """The refusal of a value annotated so: `Path`, `np.ndarray`, `DictConfig`, a project
        class. `Optional[X]` / `X | None` is X's refusal (a None value itself loads: callers
        that know the value is None decide); a union with any loadable member is not refused."""
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        members = self._union_members(annotation)
        if members is not None:
            judged = [self.of_annotation(m) for m in members if not _is_none(m)]
            if judged and all(j is not None for j in judged):
                return judged[0] if len(set(judged)) == 1 else _no_fix(judged[0])
            return None
        if isinstance(annotation, ast.Subscript):
            head = qualify(dotted_name(annotation.value), self.facts)
            if head == "numpy.typing.NDArray":
                return self.catalog.for_type(head)
            return None  # list[Path]: a list of refused values is refused, but rarely written so
        return self.of_type(qualify(dotted_name(annotation), self.facts))

    def of_type(self, qualified: str) -> Refused | None:
        """The refusal of an instance of the type `qualified` (library or project class)."""
        if not qualified:
            return None
        found = self.catalog.for_type(qualified)
        if found is not None:
            return found
        located = self._project_class(qualified)
        return self._class_kind(*located) if located is not None else None

    # -- expressions -----------------------------------------------------
    def _constant_sequence(self, expr: ast.expr) -> bool:
        """A list or tuple display of numbers or strings, as written or as a module-level
        name (or a constant key of a module-level dict display) holds it."""
        if isinstance(expr, ast.Name) and expr.id not in self.facts.imports:
            expr = self.facts.assigns.get(expr.id, expr)
        elif (
            isinstance(expr, ast.Subscript)
            and isinstance(expr.value, ast.Name)
            and isinstance(expr.slice, ast.Constant)
        ):
            table = self.facts.assigns.get(expr.value.id)
            if isinstance(table, ast.Dict):
                found = [v for k, v in zip(table.keys, table.values) if _same_key(k, expr.slice)]
                expr = found[0] if len(found) == 1 else expr
        return (
            isinstance(expr, (ast.List, ast.Tuple))
            and bool(expr.elts)
            and all(
                isinstance(e, ast.Constant) and isinstance(e.value, (int, float, str))
                for e in expr.elts
            )
        )

    def _module_value(self, name: str) -> Refused | None:
        qualified = qualify(name, self.facts)
        found = self.catalog.for_value(qualified)
        if found is not None:
            return found
        value = self.facts.assigns.get(name) if name not in self.facts.imports else None
        if value is None and name not in self.facts.imports and self._defines(name):
            return self.catalog.kind("callable")  # a class or function saved as a value
        if value is not None and self._depth < _MAX_DEPTH and isinstance(value, ast.Call):
            # kind_of: a module-level `parser = ArgumentParser()` types `parser.parse_args()`
            return _no_fix(self._deeper(self.facts).kind_of(value))
        if (
            isinstance(value, (ast.Set, ast.List, ast.Tuple))
            and self._depth < _MAX_DEPTH
            and not changed(name, self.facts.text)
        ):  # `HOLIDAYS = {date(2024, 3, 29), ...}` the module never changes: its items decide
            return _no_fix(self._deeper(self.facts).kind_of(value))
        return None

    def _on_sequence(self, call: ast.Call, env: Env) -> bool:
        """`fit(["cat", "dog"])`, `fit(sorted(set(names)))`, `fit(CLASSES)`, `fit(col.tolist())`,
        `fit(y)` of a numpy array or a column of numbers: classes that are numpy values."""
        if len(call.args) != 1 or call.keywords:
            return False
        given = call.args[0]
        if isinstance(given, ast.Name) and given.id not in env:
            given = self.facts.assigns.get(given.id, given)  # a module-level list
        if isinstance(given, (ast.List, ast.Tuple)):
            return True
        if (
            isinstance(given, ast.Call)
            and isinstance(given.func, ast.Name)
            and qualify(given.func.id, self.facts) in _LISTING
        ):
            return True
        if (
            isinstance(given, ast.Call)
            and isinstance(given.func, ast.Attribute)
            and given.func.attr == "tolist"
            and not given.args
        ):
            return True  # `fit(df["dept"].tolist())`: a list of Python strings
        judged = self.kind_of(given, env)
        return judged is not None and judged.kind in ("numpy-array", _NUMBER_SERIES)

    def _of_strings(self, call: ast.Call, env: Env) -> bool:
        """`choice(df["cell"].unique(), n)`: drawn from a column's values whose items are
        Python strings, so the draw is an object array of them."""
        given = self.kind_of(call.args[0], env) if call.args else None
        return given is not None and given.kind in ("pandas-array", "numpy-object-array")

    def _member_item(self, expr: ast.Subscript, env: Env) -> Refused | None:
        """`cfg.degradations[0]` of a tuple of Enum members (the judge types a display by
        its first refused item; a member itself takes no index): a member."""
        index = expr.slice
        if not (isinstance(index, ast.Constant) and type(index.value) is int):
            return None
        held = self.kind_of(expr.value, env)
        if held is None or held.kind != "enum-member" or held.holder:
            return None
        return _no_fix(held)

    def _registered_callables(self, name: str) -> bool:
        """`MODELS` a module-level dict whose every value is a class or function of the
        module: a display of them, or an empty one that only `@register("x")` decorators of
        the module's classes and functions fill (`MODELS[name] = cls`, no other store into
        it)."""
        facts = self.facts
        table = facts.assigns.get(name) if name not in facts.imports else None
        if not isinstance(table, ast.Dict):
            return False
        if table.values:
            return all(k is not None for k in table.keys) and all(
                (isinstance(v, ast.Name) and self._defines(v.id)) or self._library_callable(v)
                for v in table.values
            )
        decorators = [d for cls in facts.classes.values() for d in cls.decorators]
        decorators += [d for f in facts.functions.values() for d in f.decorator_list]
        makers = {
            decorator.func.id
            for decorator in decorators
            if isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Name)
            and name in decorator_registries(facts, [decorator])
        }
        if not makers:
            return False
        spelled = re.escape(name)
        if re.search(rf"\b{spelled}\s*(\.\s*(update|setdefault)\s*\(|\|=)", facts.text):
            return False
        stores = len(re.findall(rf"\b{spelled}\[[^\]\n]*\]\s*=(?!=)", facts.text))
        return stores == sum(_stores_into(facts.functions.get(m), name) for m in makers)

    def _library_callable(self, value: ast.expr) -> bool:
        """`nn.GELU`, `torch.sum`, `np.mean`: a library class or function, named."""
        qualified = qualify(dotted_name(value), self.facts) if dotted_name(value) else ""
        if not qualified:
            return False
        named = self.catalog.for_value(qualified)
        return (
            self.catalog.is_prefixed_class(qualified)
            or library_function(qualified)
            or (named is not None and named.kind == "callable")
        )

    def _defines(self, name: str) -> bool:
        """Whether `name` is a class or function defined (and only defined) at module level."""
        facts = self.facts
        return (name in facts.classes or name in facts.functions) and name not in facts.assigns

    def _attribute(self, expr: ast.Attribute, env: Env) -> Refused | None:
        dotted = dotted_name(expr)
        if dotted and dotted in env:
            return env[dotted]
        if dotted and dotted.split(".")[0] not in env:
            qualified = qualify(dotted, self.facts)
            found = self.catalog.for_value(qualified)
            if found is not None:
                return found
            member = self._enum_member(qualified)
            if member is not None:
                return member
            if self.catalog.is_prefixed_class(qualified):  # `nn.GELU`, `torch.optim.AdamW`
                return self.catalog.kind("callable")
            if library_function(qualified):
                return self.catalog.kind("callable")  # `F.l1_loss` read, not called
        receiver = self.kind_of(expr.value, env)
        if receiver is not None and receiver.options:
            return self._optional_attribute(receiver.options, expr, env)
        return self._receiver_attribute(receiver, expr, env)

    def _optional_attribute(
        self, options: tuple[Refused, ...], expr: ast.Attribute, env: Env
    ) -> Refused | None:
        """`agent.target` of an instance of whichever registered class a key picks: the
        classes that never set the attribute cannot be the one (it would raise), the others
        must agree it is refused."""
        found: Refused | None = None
        for option in options:
            located = self._project_class(option.type_name) if option.type_name else None
            if located is None:
                return None
            if not _sets_attribute(located[1], expr.attr):
                if any(b != "object" for b in located[1].bases):
                    return None  # a base may set it
                continue
            held = self._receiver_attribute(option, expr, env)
            if held is None:
                return None
            found = found or held
        return found

    def _receiver_attribute(
        self, receiver: Refused | None, expr: ast.Attribute, env: Env
    ) -> Refused | None:
        """`expr.attr` of a value of the receiver's kind."""
        if receiver is None or receiver.holder:
            return None
        if receiver.shape is not None:
            return self._nested(receiver, expr.attr)
        if expr.attr == "state_dict" and receiver.stateful:  # the call forgotten
            return self.catalog.kind("state-dict-method")
        returns = self.catalog.method(receiver.kind, expr.attr, attribute=True, has_args=False)
        if returns is None and expr.attr in receiver.number_columns and not receiver.type_name:
            return self._named_column(receiver)  # `df.loss`, `df.iloc[-1].loss`
        if returns is None and expr.attr in receiver.time_columns and receiver.kind in _FRAMES:
            return self.catalog.kind(_DATETIME_SERIES)  # `df.date` of a column of Timestamps
        if returns is None and receiver.kind in _FRAMES and reads_column(expr.attr):
            return _no_fix(self.catalog.kind(_SERIES))  # `df.hter`: a column of any dtype
        if returns is None and receiver.type_name:
            passed = self._passed_field(receiver, expr.attr)
            if passed is not None:
                return passed
            if self._depth < _MAX_DEPTH:
                from ckpt_lsp.analysis.object_effects import property_returns  # runs flows

                held = property_returns(self, receiver, expr.attr, _held_by(expr.value, env))
                if held is not None:
                    return held
            if self._plain_method(receiver, expr.attr):  # `normalize=tok.normalize`
                return self.catalog.kind("bound-method")
            return self._field(receiver, expr.attr)
        if returns is None and receiver.kind == "namespace":
            held = dict(receiver.fields).get(expr.attr)
            return _no_fix(held) if held is not None else self._argument(expr.attr)
        return self._returned(returns, receiver)

    def _judged_fields(
        self, located: tuple[ModuleFacts, ClassFacts], instance: Refused, call: ast.Call, env: Env
    ) -> tuple[tuple[str, Refused | None], ...]:
        """A plain `@dataclass` instance's fields the call passes refused values for."""
        if instance.kind != "dataclass" or not _plain_dataclass(*located):
            return ()
        return judged_fields(located[1], call, lambda value: self.kind_of(value, env), env)

    def _passed_field(self, receiver: Refused, attr: str) -> Refused | None:
        """`cfg.window` of a dataclass built with `window=WindowConfig(...)`: what is passed
        (a local name is left out: the call's locals are not known here)."""
        judged = dict(receiver.fields).get(attr)
        if judged is not None:
            return _no_fix(judged)
        if receiver.kind != "dataclass" or receiver.built is None or self._depth >= _MAX_DEPTH:
            return None
        located = self._project_class(receiver.type_name)
        if located is None:
            return None
        passed = passed_field(located[1], attr, receiver.built)
        if passed is None or isinstance(passed, ast.Name):
            return None
        return self.kind_of(passed)

    def _argument(self, dest: str) -> Refused | None:
        """`args.data_root` of a parser in this module that adds it with `type=Path` (or a
        project class: `type=Modality`, an Enum)."""
        kinds = set(argument_types(self.facts, dest))
        if len(kinds) != 1 or "" in kinds:
            return None
        return self.of_type(kinds.pop())

    def _field(self, receiver: Refused, attr: str) -> Refused | None:
        """`args.lr_scheduler_type`: a field the project class annotates in its body with a
        plain class (`SchedulerType`); an Optional, a union or a constant default may hold a value
        that loads."""
        built = receiver.built
        located = self._project_class(receiver.type_name)
        if located is None or self._depth >= _MAX_DEPTH:
            return None
        facts, cls = located
        for stmt in cls.class_level():
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.target.id == attr
                and isinstance(stmt.annotation, (ast.Name, ast.Attribute))
                and not isinstance(stmt.value, ast.Constant)  # `out: Path = "runs"` stays a str
            ):
                passed = passed_field(cls, attr, built) if built is not None else None
                if passed is not None and _plain_passed(passed):
                    return None  # `Trial(state=State.DONE.value)`: the str, not the annotation
                judged = self._deeper(facts).of_annotation(stmt.annotation)
                if judged is None and stmt.value is not None and built is not None:
                    return self._field_default(located, attr, stmt.value, built)
                return judged
        known = built is not None or bool(receiver.passed)
        found = self._init_attribute(facts, cls, attr, receiver) if known else None
        if found is None:  # every store in every method refused: refused whatever ran
            from ckpt_lsp.analysis.object_effects import class_attribute  # runs flows

            found = class_attribute(self, (facts, cls), attr, fresh=built is not None)
        return found

    def _field_default(
        self, located: tuple[ModuleFacts, ClassFacts], attr: str, value: ast.expr, built: ast.Call
    ) -> Refused | None:
        """`iou_fg: float = np.float32(0.5)` of a dataclass built without that field: the
        default is what the instance holds, whatever the annotation says."""
        if not _plain_dataclass(*located) or any(k.arg is None for k in built.keywords):
            return None
        if any(isinstance(a, ast.Starred) for a in built.args):
            return None
        if built.args and located[1].bases:
            return None  # a base's fields come first: which argument is which is not known
        if passed_field(located[1], attr, built) is not None:
            return None
        return _no_fix(self._deeper(located[0]).of_expression(value))

    def _init_attribute(
        self, facts: ModuleFacts, cls: ClassFacts, attr: str, receiver: Refused
    ) -> Refused | None:
        """`model.config` where `__init__` sets `self.config = config or TinyConfig()` once, at
        its top level, and no other method sets it: judged with what `built` passes (as the
        call's locals made it, when known: `receiver.passed`). Else what the `__init__` flow
        stores there on its straight path, its parameters bound so, when no method of the
        class stores it."""
        init = cls.method("__init__")
        built = receiver.built
        if built is None and not receiver.passed:
            return None
        if init is None and not receiver.passed:
            return None
        # an object a helper returned keeps what its call passed, not the call itself
        found = self._stored_once(facts, cls, init, attr, receiver) if init and built else None
        if found is None and receiver.passed:
            from ckpt_lsp.analysis.object_effects import self_env  # runs flows

            found = self_env(self, receiver).get(f"self.{attr}")
        return found

    def _stored_once(
        self, facts: ModuleFacts, cls: ClassFacts, init: FunctionNode, attr: str, receiver: Refused
    ) -> Refused | None:
        """`self.config = config or TinyConfig()`, the one store of the attribute."""
        built = receiver.built
        assert built is not None
        assigned = [
            node
            for method in cls.assigning_methods()
            for node in walk(method)
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
            and any(_is_self_attr(t, attr) for t in assigned_targets(node))
        ]
        top = [
            stmt
            for stmt in init.body
            if isinstance(stmt, (ast.Assign, ast.AnnAssign))
            and any(_is_self_attr(t, attr) for t in assigned_targets(stmt))
        ]
        if len(assigned) != 1 or len(top) != 1:
            return None
        value = top[0].value
        operands = value.values if isinstance(value, ast.BoolOp) else [value]
        if value is None or (isinstance(value, ast.BoolOp) and not isinstance(value.op, ast.Or)):
            return None
        passed = _passed(init, built)
        for operand in operands:
            if isinstance(operand, ast.Name) and operand.id in passed:
                given = passed[operand.id]
                if given is not None and _is_none(given) and isinstance(value, ast.BoolOp):
                    continue  # `config or TinyConfig()` without a config
                if receiver.passed:  # judged where the call was made
                    held = passed_value(receiver, operand.id)
                    return held if isinstance(held, Refused) else None
                return self.of_expression(given) if given is not None else None
            if not isinstance(operand, ast.Call):
                return None  # a local or parameter of __init__: not a module-level name
            # `self.ema = EMA(self.model)`: the object's own attributes as `__init__` set them
            # (given what the call that built it passed, when known)
            return self._deeper(facts).of_expression(operand, self._own_env(facts, cls, receiver))
        return None

    def _own_env(self, facts: ModuleFacts, cls: ClassFacts, receiver: Refused | None = None) -> Env:
        """`self` and the attributes `__init__` sets once, as the class's methods see them
        (for the instance `receiver`, when what built it is known)."""
        from ckpt_lsp.analysis.object_effects import self_env  # runs flows

        instance = receiver if receiver is not None and receiver.passed else None
        instance = instance or self._class_kind(facts, cls)
        return self_env(self, instance) if instance is not None else _NO_ENV

    def _returned(self, returns: str | None, receiver: Refused) -> Refused | None:
        if not returns:
            return None
        found = self.catalog.kind(returns)
        columns = receiver.number_columns, receiver.time_columns
        if found is not None and found.kind in _FRAMES and any(columns):  # `df.dropna()`
            found = replace(found, number_columns=columns[0], time_columns=columns[1])
        # `model.to(device)` keeps the receiver's fix; a different kind's fix is its own
        return (
            found
            if found is not None and (receiver.fix or returns != receiver.kind)
            else _no_fix(found)
        )

    def _call(self, call: ast.Call, env: Env) -> Refused | None:
        func = call.func
        dotted = dotted_name(func)
        kept = self._kept_get(call, env)
        if kept is not None:
            return kept
        registered = registry_object_instance(self, call, env)  # `ENCODERS.build("gru")`
        if registered is not None:
            return registered
        if isinstance(func, ast.Attribute) and not self._names_global(dotted, env):
            # a method of a value: `parser.parse_args()`, `model.to(device)`, `t.numpy()`
            receiver = self.kind_of(func.value, env)
            has_args = bool(call.args or call.keywords)
            if receiver is not None and receiver.holder:
                return None  # `d.cache.get("k")`, `.values()`: its items are not known
            if receiver is None:
                return self._any_receiver(func.attr, has_args)
            if receiver.kind in _COLUMNS and self._maps_to_numbers(call, env):
                return _no_fix(self.catalog.kind(_NUMBER_SERIES))  # `s.map(len)`
            returns = self.catalog.method(receiver.kind, func.attr, False, has_args)
            if receiver.kind == "label-encoder" and func.attr == "fit":
                # `LabelEncoder().fit(CLASSES)`: numpy classes; fitted on a column: str ones
                returns = "estimator" if self._on_sequence(call, env) else "label-encoder"
            if returns == "numpy-array" and func.attr == "choice" and self._of_strings(call, env):
                returns = "numpy-object-array"  # `rng.choice(df["cell"].unique(), 4)`
            if has_args and self._number_arguments(call, env):
                numbered = self.catalog.method(
                    receiver.kind, func.attr + WITH_NUMBERS, False, False
                )
                returns = numbered if numbered is not None else returns
            if returns is None and receiver.type_name and self._depth < _MAX_DEPTH:
                from ckpt_lsp.analysis.object_effects import method_returns  # runs flows

                found = method_returns(self, receiver, call, env)  # the project's own method
                if found is not None or self._has_method(receiver, func.attr):
                    return found
                return self._called_instance(call, env)  # `self.schedule(step)`, an attribute
            if not self._sized(call, receiver.kind, func.attr):
                # `rng.integers(5, 20)` without a size is one numpy integer
                unsized = self.catalog.method(receiver.kind, func.attr + UNSIZED, False, False)
                if not unsized and call.args and self._constant_sequence(call.args[0]):
                    over = func.attr + UNSIZED_SEQUENCE  # `rng.choice([8, 16])`
                    unsized = self.catalog.method(receiver.kind, over, False, False)
                if unsized:
                    return _no_fix(self.catalog.kind(unsized))
                return drawn_item(self, call, receiver.kind, func.attr, env)  # `rng.choice(xs)`
            result = keyed_by_numbers(
                self._returned(returns, receiver), receiver, call, self.catalog
            )
            if func.attr in ("agg", "aggregate") and result is not None and result.kind in _FRAMES:
                named = _named_numbers(call, receiver.number_columns)
                if named:  # `.agg(ctr=("clicked", "mean"), n=("clicked", "size"))`
                    result = replace(result, number_columns=result.number_columns | named)
            return result
        if not dotted:
            return registry_instance(self, call, env)  # `LOSSES[cfg.name](**kwargs)`
        if isinstance(func, ast.Name) and func.id in env:
            return self._called_instance(call, env)  # `schedule(step)` of a local object
        qualified = qualify(dotted, self.facts)
        if qualified in _SEQUENCES and len(call.args) == 1 and not call.keywords:
            member = self.enum_class(call.args[0], env)
            if member is not None:  # `list(Op)`: the Enum's members
                return _no_fix(member)
            if qualified != "builtins.sorted":
                listed = config_copy(self, call, env)  # `list(cfg.stages)` of a ListConfig
                if listed is not None:
                    return listed
            zipped = self._zipped_arrays(call.args[0], env)
            if zipped is not None:
                return zipped
        if qualified == "builtins.sorted" and len(call.args) == 1 and _keyed_sort(call):
            # `sorted(segments, key=lambda s: s.start)` of project objects: the same objects
            held = self.kind_of(call.args[0], env)
            if held is not None and held.kind in _RECORDS and not held.holder:
                return _no_fix(held)
        if qualified in _SAME_TYPE and len(call.args) == 1:  # copy.deepcopy(model)
            return _no_fix(self.kind_of(call.args[0], env))
        if qualified == "builtins.type" and len(call.args) == 1 and not call.keywords:
            # `type(model)`: the class of a refused object is a global the load refuses
            typed = self.kind_of(call.args[0], env)
            if typed is not None and not typed.holder and typed.kind not in TYPE_LOADS_OR_FAILS:
                return _no_fix(self.catalog.kind("callable"))
        if qualified == "dataclasses.replace" and len(call.args) == 1:  # a changed copy
            copied = self.kind_of(call.args[0], env)
            return _no_fix(copied) if copied is not None and copied.kind == "dataclass" else None
        if qualified in CONVERTERS:  # `asdict(trial)`
            return converted(self, call, env)
        if qualified in CONFIG_CONVERTERS:  # `OmegaConf.to_container(cfg)`
            return config_container(self, call, env)
        if qualified == "numpy.random.choice" and draws_a_number(self, call, env):
            return None
        if qualified == "builtins.dict" and call.args:
            return self._zipped_dict(call, env) or config_copy(self, call, env)
        folds = fold_list(self, call, env)  # `list(kf.split(X))`
        if folds is not None:
            return folds
        entry = self.catalog.for_call(qualified, len(call.args), _keywords(call))
        if entry is not None and entry.numpy_args:
            return self._keeps_numpy(call, entry.kind, env, qualified)
        if entry is not None:
            refused = self._shaped(self.catalog.kind(entry.kind), call, qualified, env)
            if entry.elementwise and call.args:  # `np.abs(errors)`: an array of an array
                given = self.kind_of(call.args[0], env)
                if given is not None and given.kind == "numpy-array":
                    refused = _no_fix(self.catalog.kind("numpy-array")) or refused
            refused = self._framed(refused, call, env)
            if qualified == "pandas.concat":
                refused = self._concatenated(refused, call, env)
            if qualified in _TO_DATETIME and call.args:  # `pd.to_datetime(df["date"])`
                given = self.kind_of(call.args[0], env)
                if given is not None and given.kind in _COLUMNS:
                    refused = self.catalog.kind(_DATETIME_SERIES) or refused
            certain = entry.fix_args < 0 or (len(call.args) <= entry.fix_args and not call.keywords)
            return refused if certain else _no_fix(refused)
        located = self._project_class(qualified)
        if located is not None:
            instance = self._class_kind(*located)
            if instance is None:
                return None
            fields = self._judged_fields(located, instance, call, env)
            passed = passed_arguments(self, located, call, env) if not fields else ()
            if not fields and instance.kind != "dataclass":  # a LightningModule's hparams
                fields = hparam_fields(self, located, call, env)
            return replace(instance, built=call, fields=fields, passed=passed)
        built = self._factory_class(qualified) or self._alternate_constructor(qualified)
        if built is not None:
            return built
        if isinstance(func, ast.Name) and func.id in self.facts.assigns:
            return self._called_instance(call, env)  # `SCHEDULE(step)`, a module's object
        return self._project_function(qualified, call, env)

    def _number_arguments(self, call: ast.Call, env: Env) -> bool:
        """Only Python numbers passed, by position (`s.quantile(0.05)`, `s.quantile(frac)` of
        a local or parameter holding one)."""
        return not call.keywords and all(
            _is_number_constant(a) or self._is_number(a, env) for a in call.args
        )

    def _maps_to_numbers(self, call: ast.Call, env: Env) -> bool:
        """`col.map(lambda s: len(s.split()))`, `col.apply(len)`: a column of Python numbers
        made from each cell, so its reductions are numpy scalars (measured, pandas 3.1)."""
        func = call.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("map", "apply"):
            return False
        if len(call.args) != 1 or call.keywords:
            return False
        given = call.args[0]
        if isinstance(given, ast.Lambda):
            return self._is_number(given.body, env)
        dotted = dotted_name(given)
        return bool(dotted) and dotted not in env and qualify(dotted, self.facts) in _PYTHON_NUMBERS

    def _has_method(self, receiver: Refused, name: str) -> bool:
        """Whether the project class of `receiver` (or a project base) defines `name`, or
        its class is not known (a library base may)."""
        from ckpt_lsp.analysis.object_effects import defines  # it needs this module

        return defines(self, receiver, name)

    def _called_instance(self, call: ast.Call, env: Env) -> Refused | None:
        """`self.schedule(step)` / `sched(step)` where the callee is an instance of a project
        class: what its `__call__` returns (an nn.Module's `forward` is the library's)."""
        dotted = dotted_name(call.func)
        if isinstance(call.func, ast.Attribute) and dotted not in env:
            return None  # what the flow does not hold: not worth a search of the class
        callee = self.kind_of(call.func, env)
        if callee is None or not callee.type_name or self._depth >= _MAX_DEPTH:
            return None
        from ckpt_lsp.analysis.object_effects import method_returns  # runs flows

        dunder = ast.Call(
            func=ast.Attribute(value=call.func, attr="__call__", ctx=ast.Load()),
            args=call.args,
            keywords=call.keywords,
        )
        return method_returns(self, callee, ast.copy_location(dunder, call), env)

    def _framed(self, refused: Refused | None, call: ast.Call, env: Env) -> Refused | None:
        """`pd.DataFrame({"n": [5, 9]}, index=pd.date_range(...))`: a frame indexed by time,
        whose columns built from numbers or numpy arrays are known to hold numbers."""
        if refused is None or refused.kind != _FRAME:
            return refused
        for keyword in call.keywords:
            if keyword.arg == "index":
                given = self.kind_of(keyword.value, env)
                if given is not None and given.kind == "pandas-datetime-index":
                    refused = self.catalog.kind(_TIME_FRAME) or refused
        display = call.args[0] if call.args else None
        if isinstance(display, ast.Name):  # `pd.DataFrame(history)` of appended records
            held = record_frame(env, display.id)
            if held is None:
                return refused
            names = _column_names(call)
            if names is not None:  # `pd.DataFrame(rows, columns=[...])` of tuple records
                held = named_columns(held, names)
            return replace(
                refused, number_columns=held.number_columns, time_columns=held.time_columns
            )
        if not isinstance(display, ast.Dict):
            return refused
        named = [
            (key.value, value)
            for key, value in zip(display.keys, display.values)
            if isinstance(key, ast.Constant) and isinstance(key.value, str)
        ]
        numbers = frozenset(key for key, value in named if self._numbers(value, env))
        times = frozenset(key for key, value in named if self._dates(value, env))
        return replace(refused, number_columns=numbers, time_columns=times)

    def _concatenated(self, refused: Refused | None, call: ast.Call, env: Env) -> Refused | None:
        """`pd.concat([a, b])` or `pd.concat(frames)` of a list the function appends frames to:
        the columns every part holds numbers (or dates) in still hold them."""
        if refused is None or not call.args or any(k.arg == "axis" for k in call.keywords):
            return refused
        given = call.args[0]
        parts: list[Refused | None]
        if isinstance(given, (ast.List, ast.Tuple)):
            parts = [self.kind_of(e, env) for e in given.elts]
        elif isinstance(given, ast.Name):
            parts = [env.get(every_item_key(given.id))]
        else:
            return refused
        frames = [p for p in parts if p is not None and p.kind in _FRAMES]
        if not frames or len(frames) != len(parts):
            return refused
        numbers = frozenset.intersection(*(p.number_columns for p in frames))
        times = frozenset.intersection(*(p.time_columns for p in frames))
        return replace(refused, number_columns=numbers, time_columns=times)

    def _dates(self, value: ast.expr, env: Env) -> bool:
        """`pd.date_range(...)`, `pd.to_datetime(...)`, `start + pd.to_timedelta(days)`: a
        column of Timestamps (a Timestamp or datetime the frame broadcasts is one too)."""
        if not isinstance(value, (ast.Call, ast.BinOp, ast.Name)):
            return False  # `dates = pd.date_range(...)` then `{"date": dates}` too
        found = self.kind_of(value, env)
        return found is not None and (found.kind in _DATES or found.kind in _STAMPS)

    def _numbers(self, value: ast.expr, env: Env) -> bool:
        """A list display of number literals, a numpy array or a column of numbers."""
        if isinstance(value, (ast.List, ast.Tuple)):
            return bool(value.elts) and all(_is_number_constant(e) for e in value.elts)
        if _drawn_from_strings(value):
            return False  # `rng.choice(["north", "south"], n)`: an array of strings
        if self._drawn_from_unknown(value, env):
            return False  # `rng.choice([d.value for d in Device], n)`: of what it is given
        found = self.kind_of(value, env)
        drawn = found.built if found is not None and not found.type_name else None
        if drawn is not None and (
            _drawn_from_strings(drawn) or self._drawn_from_unknown(drawn, env)
        ):
            return False  # `league = rng.choice(list(cfg.leagues), n)` then `{"league": league}`
        return found is not None and found.kind in {"numpy-array", _NUMBER_SERIES}

    def _drawn_from_unknown(self, value: ast.expr, env: Env) -> bool:
        """`rng.choice(pool, n)` whose pool is neither a count, nor number literals, nor a
        numpy array: its items are whatever the pool holds (strings, often)."""
        if not (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "choice"
            and value.args
        ):
            return False
        pool = value.args[0]
        if _is_number_constant(pool) or self._is_number(pool, env):
            return False  # `rng.choice(5, n)`: numbers below it
        if isinstance(pool, (ast.List, ast.Tuple)):
            return not all(_is_number_constant(e) for e in pool.elts)
        found = self.kind_of(pool, env)
        return found is None or found.kind != "numpy-array"

    def _cell(self, expr: ast.Subscript, env: Env) -> Refused | None:
        """`df.at[i, "loss"]`, `df.loc[i, "loss"]` of a frame, `row["loss"]` of one of its rows
        (`df.iloc[-1]`): a cell of a column of numbers is a numpy scalar."""
        index, value = expr.slice, expr.value
        column: ast.expr = index
        if isinstance(value, ast.Attribute) and value.attr in ("at", "loc"):
            if not isinstance(index, ast.Tuple) or len(index.elts) != 2:
                return None
            column, value = index.elts[1], value.value
        elif not isinstance(value, (ast.Name, ast.Subscript)):
            return None  # a row is a local or `df.iloc[k]`
        if not (isinstance(column, ast.Constant) and isinstance(column.value, str)):
            return None
        receiver = self.kind_of(value, env)
        if receiver is None or column.value not in receiver.number_columns:
            return None
        if receiver.kind in _FRAMES and column is index:
            return None  # `df["loss"]`: the column itself
        if receiver.kind not in {*_FRAMES, _SERIES}:
            return None
        return _no_fix(self.catalog.kind("numpy-scalar"))

    def _named_column(self, receiver: Refused) -> Refused | None:
        """A column of numbers read as an attribute: of a frame, the column (`df.loss`); of
        one of its rows (`df.iloc[-1]`), the cell."""
        if receiver.kind in _FRAMES:
            return self.catalog.kind(_NUMBER_SERIES)
        return _no_fix(self.catalog.kind("numpy-scalar")) if receiver.kind == _SERIES else None

    def _logged(self, refused: Refused | None, call: ast.Call, env: Env) -> Refused | None:
        """`pd.DataFrame(trainer.log)`: a frame of a project object's metrics log has the
        columns the class logs only numbers under."""
        if refused is None or refused.kind != _FRAME or refused.number_columns or not call.args:
            return refused
        from ckpt_lsp.analysis.logged_columns import logged_number_columns  # it asks the judge

        logged = logged_number_columns(self, call.args[0], env)
        return replace(refused, number_columns=logged) if logged else refused

    def _keyword_fields(self, refused: Refused | None, call: ast.Call, env: Env) -> Refused | None:
        """`SimpleNamespace(scaler=scaler)`, `Result(ema=ema)` of a namedtuple: the refused
        values it is given by keyword, so `run.scaler` read from it later is one of them."""
        if refused is None or refused.kind not in _KEYWORD_HOLDERS or refused.fields:
            return refused
        if refused.built is not None or (refused.kind == "object" and not refused.type_name):
            return refused  # a project class's parameters are no attributes of it
        fields = tuple(
            (k.arg, judged)
            for k in call.keywords
            if k.arg is not None and (judged := self.kind_of(k.value, env)) is not None
        )
        return replace(refused, fields=fields) if fields else refused

    def dict_items(self, value: ast.expr | None) -> list[tuple[str, ast.expr]] | None:
        """`dict(unet=unet, scaler=scaler)` (or an `OrderedDict`, or `dict({"a": a}, b=b)`): its
        constant keys and values, as a display would give them; None for any other
        expression, or one whose keys are not all written out (`dict(base, **extra)`)."""
        if not isinstance(value, ast.Call) or len(value.args) > 1:
            return None
        dotted = dotted_name(value.func)
        if not dotted or qualify(dotted, self.facts) not in _DICT_CALLS:
            return None
        pairs: list[tuple[str, ast.expr]] = []
        for shown in value.args:
            keys = (
                [k.value if isinstance(k, ast.Constant) else None for k in shown.keys]
                if isinstance(shown, ast.Dict)
                else []
            )
            if not isinstance(shown, ast.Dict) or not all(isinstance(k, str) for k in keys):
                return None
            pairs.extend((str(k), v) for k, v in zip(keys, shown.values))
        if any(k.arg is None for k in value.keywords):
            return None
        pairs.extend((k.arg, k.value) for k in value.keywords if k.arg is not None)
        return pairs if pairs else None

    def _kept_get(self, call: ast.Call, env: Env) -> Refused | None:
        """`metrics.get("loss")` of a local whose key the flow knows (a helper's dict)."""
        func = call.func
        if not (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and _held_name(func.value)
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
        ):
            return None
        from ckpt_lsp.analysis.local_flow import item_key  # the flow needs this module

        return env.get(item_key(_held_name(func.value), call.args[0].value))

    def _method_flow(self, call: ast.Call, env: Env) -> LocalFlow | None:
        """The flow of a project class's method called on a local instance (`a.step()`)."""
        func = call.func
        if not isinstance(func, ast.Attribute) or self._names_global(dotted_name(func), env):
            return None
        receiver = self.kind_of(func.value, env)
        if receiver is None or not receiver.type_name:
            return None
        from ckpt_lsp.analysis.method_returns import method_flow  # it runs the flow

        return method_flow(self, receiver, call, env)

    def depth_left(self) -> int:
        """How many helpers deeper this judge may still follow."""
        return _MAX_DEPTH - self._depth

    def bound(
        self, func: FunctionNode, call: ast.Call, env: Env, skip: int = 0
    ) -> dict[str, object]:
        """What a call binds to the function's parameters (after `skip` leading ones)."""
        return self._bound(func, call, env, skip)

    def _factory_class(self, qualified: str) -> Refused | None:
        """An instance of a module-level class a factory built under its own name
        (`EvalResult = namedtuple("EvalResult", ...)`): pickled by reference, a global."""
        module, _, name = qualified.rpartition(".")
        facts: ModuleFacts | None = None
        if module == self.facts.module:
            facts = self.facts
        elif self.index is not None and "." in qualified:
            found = self.index.resolve_member(qualified, self.facts.path)
            facts, name = (found[0], found[1]) if found is not None else (None, name)
        value = facts.assigns.get(name) if facts is not None else None
        if not isinstance(value, ast.Call) or not value.args or facts is None:
            return None
        first = value.args[0]
        if not isinstance(first, ast.Constant) or first.value != name:
            return None  # built under another name: pickle cannot find it, not this rule's
        refused = self.catalog.kind(
            self.catalog.factories.get(qualify(dotted_name(value.func), facts), "")
        )
        if refused is None:
            return None
        return replace(refused, type_name=f"{facts.module}.{name}" if facts.module else name)

    def _shaped(
        self, refused: Refused | None, call: ast.Call, qualified: str, env: Env
    ) -> Refused | None:
        """A nested kind built from a display, a YAML text or a merge of such keeps their
        shape (`OmegaConf.create({...})`, `OmegaConf.create(DEFAULT_YAML)`): config_shapes."""
        if refused is None or refused.kind not in self.catalog.nested:
            return refused

        def shape_of(expr: ast.expr) -> ast.expr | None:
            if isinstance(expr, _SHAPES):
                return expr
            if isinstance(expr, ast.Call):  # `OmegaConf.create(yaml.safe_load(TEXT))`
                loader = qualify(dotted_name(expr.func), self.facts)
                if loader in YAML_LOADERS:
                    return config_shape(loader, expr, shape_of, module_text, class_shape)
            held = self.kind_of(expr, env)
            return held.shape if held is not None and held.kind == refused.kind else None

        def module_text(given: ast.expr) -> str | None:
            if isinstance(given, ast.Subscript):  # `TASK_CONFIGS[task]` of a passed "nowcast"
                table, index = given.value, given.slice
                if not isinstance(table, ast.Name) or table.id in env:
                    return None
                key = index.value if isinstance(index, ast.Constant) else None
                if isinstance(index, ast.Name) and index.id in env:
                    key = key_text(index.id, env)
                return module_string_item(table.id, key, self) if isinstance(key, str) else None
            if not isinstance(given, ast.Name):
                return None
            if given.id not in env:
                return module_string(given.id, self)
            constant = text_constant(given.id, env)  # a parameter holding one
            return module_string(constant, self) if constant else None

        def class_shape(expr: ast.expr) -> ast.expr | None:
            target = expr.func if isinstance(expr, ast.Call) else expr
            return self._structured(qualify(dotted_name(target), self.facts), 0)

        shape = config_shape(qualified, call, shape_of, module_text, class_shape)
        date = self.catalog.kind("datetime")
        if shape is not None and qualified in YAML_LOADERS and date is not None:
            shape = dated(shape, date)  # PyYAML reads an unquoted `2024-02-15` as a date
        return replace(refused, shape=shape) if shape is not None else refused

    def _structured(self, qualified: str, depth: int) -> ast.expr | None:
        """The shape OmegaConf gives a project dataclass (`OmegaConf.structured(Cfg)`)."""
        located = self._project_class(qualified) if qualified and depth < _MAX_DEPTH else None
        if located is None or not _plain_dataclass(*located):
            return None
        facts, cls = located
        fields = [
            (stmt.target.id, stmt.annotation, stmt.value)
            for stmt in cls.class_level()
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
        ]
        return fields_shape(
            f"{facts.module}.{cls.name}" if facts.module else cls.name,
            fields,
            lambda e: qualify(dotted_name(e), facts),
            lambda q: self._structured(q, depth + 1),
            lambda annotation: _typed_leaf(self._deeper(facts).of_annotation(annotation)),
        )

    def leaf_text(self, expr: ast.expr, env: Env) -> str | None:
        """`cfg.model.name` of a config whose shape holds a string there: that string. None
        when a merge laid an unknown part over the outermost config the chain reads
        (`from_dotlist(overrides)` may set any leaf)."""
        reads: list[tuple[ast.expr, str]] = []  # (receiver, key), innermost receiver last
        node = expr
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            key = node.attr if isinstance(node, ast.Attribute) else None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value if isinstance(node.slice.value, str) else None
            if key is None:
                return None
            reads.append((node.value, key))
            node = node.value
        for at in range(len(reads) - 1, -1, -1):  # the outermost config first
            held = self.kind_of(reads[at][0], env)
            shape = held.shape if held is not None else None
            if isinstance(shape, ast.Dict):
                return None if partly_known(shape) else _leaf(shape, reads[at::-1])
        return None

    def _nested(self, receiver: Refused, key: str) -> Refused | None:
        """`cfg.optim`: of the kind when the display holds a dict/list there, else plain."""
        shape = receiver.shape
        if not isinstance(shape, ast.Dict):
            return None
        for name, value in zip(shape.keys, shape.values):
            if isinstance(name, ast.Constant) and name.value == key:
                if isinstance(value, RefusedLeaf):  # `cfg.schedule` of an Enum field
                    return value.refused
                return replace(receiver, shape=value) if isinstance(value, _SHAPES) else None
        return None

    def _keeps_numpy(
        self, call: ast.Call, kind: str, env: Env, qualified: str = ""
    ) -> Refused | None:
        """A builtin over numpy values returns one of them, or a numpy result of them;
        over (key, numpy scalar) pairs, the pairs (`sorted`) or one of them (`max`)."""
        if qualified in _PICKS_ONE and len(call.args) > 1 and self._python_number_among(call, env):
            return None  # `min(args.cap, rate)` is whichever is smaller: the values decide
        for arg in call.args:
            found = (
                self._element(arg, env)  # `sum(t for t in arr)`
                if isinstance(arg, ast.GeneratorExp)
                else self.kind_of(arg, env)
            )
            if found is not None and found.kind in _NUMPY:
                return _no_fix(self.catalog.kind(kind))
            if found is not None and found.kind == _VALUES and qualified in _NUMERIC_ONLY:
                # `statistics.mean(col.to_numpy())`: over strings it raises, so the column
                # holds numbers, and its values are numpy ones (measured for int, float and
                # nullable columns)
                return _no_fix(self.catalog.kind(kind))
            if found is not None and found.kind == _PAIRS and len(call.args) == 1:
                return _no_fix(self.catalog.kind(_PAIRS_KEPT.get(qualified, "")))
        return None

    def _numpy_kind(self, expr: ast.expr, env: Env) -> bool:
        found = self.kind_of(expr, env)
        return found is not None and found.kind in _NUMPY

    def _python_number_among(self, call: ast.Call, env: Env) -> bool:
        """A configured Python number among the arguments (`args.cap`, `float(x)`): a value
        of its own. A constant or a name is taken as a bound, seldom the answer (`max(std,
        1e-8)`, a running `best = max(best, acc)` started at a constant)."""
        return any(
            isinstance(arg, (ast.Attribute, ast.Call, ast.Subscript))
            and self.kind_of(arg, env) is None
            and self._is_number(arg, env)
            for arg in call.args
        )

    def _zipped_arrays(self, inner: ast.expr, env: Env) -> Refused | None:
        """`list(zip(rows, cols))` with a numpy array among what is zipped: tuples holding
        its numpy scalars."""
        if not (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Name)
            and inner.func.id not in env
            and qualify(inner.func.id, self.facts) == "builtins.zip"
            and inner.args
            and not inner.keywords
        ):
            return None
        for arg in inner.args:
            if isinstance(arg, ast.Starred):  # `zip(*np.nonzero(mask))`: one array per axis
                spread = self.kind_of(arg.value, env)
                if spread is not None and spread.kind in _ARRAYS_SPREAD:
                    return _no_fix(self.catalog.kind("numpy-scalar-tuples"))
                continue
            found = self.kind_of(arg, env)
            if found is not None and found.kind == "numpy-array":
                return _no_fix(self.catalog.kind("numpy-scalar-tuples"))
        return None

    def _zipped_dict(self, call: ast.Call, env: Env) -> Refused | None:
        """`dict(zip(names, importances))` of a numpy array's items: a dict of numpy scalars."""
        inner = call.args[0] if len(call.args) == 1 and not call.keywords else None
        if not (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Name)
            and inner.func.id not in env
            and qualify(inner.func.id, self.facts) == "builtins.zip"
            and len(inner.args) == 2
            and not inner.keywords
        ):
            return None
        values = self.kind_of(inner.args[1], env)
        if values is None or values.kind != "numpy-array":
            return None
        return _no_fix(self.catalog.kind("numpy-scalar-dict"))

    def _names_global(self, dotted: str, env: Env) -> bool:
        """Whether a dotted callee starts at an import, a class or a function of the module
        (`np.mean`, `OmegaConf.create`, `Mode(1)`), not at a local value or `self`."""
        head = dotted.split(".")[0] if dotted else ""
        if not head or head in env or head == "self":
            return False
        facts = self.facts
        return head in facts.imports or head in facts.classes or head in facts.functions

    def _any_receiver(self, name: str, has_args: bool) -> Refused | None:
        returns = self.catalog.method("*", name, False, has_args)
        return self.catalog.kind(returns) if returns else None

    def _sized(self, call: ast.Call, kind: str, name: str) -> bool:
        """A method that returns its kind only with a size (`rng.normal(0, 1, 3)`,
        `rng.normal(size=3)`) is given one; True for every other method."""
        position = self.catalog.size_position(kind, name)
        if position < 0:
            return True
        return len(call.args) > position or any(kw.arg == "size" for kw in call.keywords)

    def _python_number(self, expr: ast.expr, env: Env) -> bool:
        """`len(x)`, `int(x)`, `float(x)` (the builtins, not a local of that name), `math`'s
        functions (a numpy argument comes back a Python number; not `math.prod`, which
        multiplies what it is given), `time.time()`, `x.item()`."""
        if not isinstance(expr, ast.Call):
            return False
        if (
            isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "item"
            and not expr.args
            and not expr.keywords
        ):
            return True  # `loss.item()`: a tensor's or numpy value's Python number
        dotted = dotted_name(expr.func)
        if not dotted or dotted.split(".")[0] in env:
            return False
        qualified = qualify(dotted, self.facts)
        if qualified.startswith("math.") and qualified.count(".") == 1:
            return qualified != "math.prod"
        if qualified in self.catalog.numbers:
            return all(_averaged(k) for k in expr.keywords)  # `average=None`: an array
        return qualified in _PYTHON_NUMBERS

    # -- the project -----------------------------------------------------
    def project_class(self, qualified: str) -> tuple[ModuleFacts, ClassFacts] | None:
        """The project class `qualified` names, and its module."""
        return self._project_class(qualified)

    def _plain_method(self, receiver: Refused, name: str) -> bool:
        """Whether the project class of `receiver` defines `name` as a method read without a
        call (no property, static or class method, and no attribute of that name set)."""
        located = self._project_class(receiver.type_name)
        method = located[1].method(name) if located is not None else None
        if located is None or method is None or name in dict(receiver.fields):
            return False
        decorators = [dotted_name(d) for d in method.decorator_list]
        return not decorators and not self._field(receiver, name)

    def _alternate_constructor(self, qualified: str) -> Refused | None:
        """`Config.from_yaml(text)`: a classmethod of a project class every `return` of which
        builds the class (`return cls(...)`, or `tok = cls()` then `return tok`) gives an
        instance of it."""
        owner, _, name = qualified.rpartition(".")
        located = self._project_class(owner) if owner else None
        method = located[1].method(name) if located is not None else None
        if located is None or method is None or not method.args.args:
            return None
        if "classmethod" not in [dotted_name(d) for d in method.decorator_list]:
            return None
        builds = (method.args.args[0].arg, located[1].name)
        built = {  # `tok = cls()` then `return tok`: names bound once, to an instance
            t.id
            for n in walk(method)
            if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Call)
            and dotted_name(n.value.func) in builds
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        stores = [
            n.id for n in walk(method) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        ]
        returns = [n for n in walk(method) if isinstance(n, ast.Return)]
        if not returns or not all(
            (isinstance(r.value, ast.Call) and dotted_name(r.value.func) in builds)
            or (
                isinstance(r.value, ast.Name)
                and r.value.id in built
                and stores.count(r.value.id) == 1
            )
            for r in returns
        ):
            return None
        instance = self._class_kind(*located)
        return _no_fix(instance) if instance is not None else None

    def _project_class(self, qualified: str) -> tuple[ModuleFacts, ClassFacts] | None:
        module, _, name = qualified.rpartition(".")
        if name in self.facts.classes and module == self.facts.module:
            return self.facts, self.facts.classes[name]
        if self.index is None or "." not in qualified:
            return None
        found = self.index.resolve_member(qualified, self.facts.path)
        if found is None or found[1] not in found[0].classes:
            return None
        return found[0], found[0].classes[found[1]]

    def _class_kind(self, facts: ModuleFacts, cls: ClassFacts, seen: int = 0) -> Refused | None:
        """What an instance of a project class is: an Enum member, a dataclass, a model (a
        library base the catalog knows), or any other object; None for a TypedDict or a class
        that pickles itself its own way."""
        key = f"{facts.path}:{cls.name}"
        if key in self._classes:
            return self._classes[key]
        self._classes[key] = None  # a cycle of bases is no kind
        result = self._class_kind_uncached(facts, cls, seen)
        if result is not None:  # its own name, also when a base decided the kind
            name = f"{facts.module}.{cls.name}" if facts.module else cls.name
            result = replace(result, type_name=name)
        self._classes[key] = result
        return result

    def _class_kind_uncached(
        self, facts: ModuleFacts, cls: ClassFacts, seen: int
    ) -> Refused | None:
        if any(cls.method(name) is not None for name in _OWN_PICKLING):
            return None
        if cls.keywords:  # a metaclass may make the class anything
            return None
        for base in cls.bases:
            qualified = qualify(base, facts)
            if qualified in _PLAIN_BASES or qualified in _ENUM_BASES:
                return None if qualified in _PLAIN_BASES else self.catalog.kind("enum-member")
            library = self.catalog.for_type(qualified)
            if library is not None:
                return (
                    _no_fix(library)
                    if cls.method("state_dict") or cls.method("get_extra_state")
                    else library
                )
            located = self._project_class(qualified)
            if located is not None and seen < _MAX_DEPTH:
                inherited = self._class_kind(*located, seen + 1)
                if inherited is None or inherited.kind != "object":
                    return inherited
            elif located is None and base and not qualified.startswith("builtins."):
                return self.catalog.kind("object") if base != "object" else None
        for decorator in cls.decorators:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if qualify(dotted_name(target), facts) in _DATACLASS:
                return self.catalog.kind("dataclass")
        return self.catalog.kind("object")

    def _enum_member(self, qualified: str) -> Refused | None:
        """`Mode.TRAIN` of a project Enum (a name assigned in the class body)."""
        owner, _, member = qualified.rpartition(".")
        located = self._project_class(owner) if owner else None
        if located is None:
            return None
        kind = self._class_kind(*located)
        if kind is None or kind.kind != "enum-member":
            return None
        assigned = {
            t.id
            for stmt in located[1].class_level()
            if isinstance(stmt, ast.Assign)
            for t in stmt.targets
            if isinstance(t, ast.Name)
        }
        return kind if member in assigned else None

    def project_function(self, qualified: str) -> tuple[ModuleFacts, FunctionNode] | None:
        """The module-level function of the project `qualified` names, and its module."""
        module, _, name = qualified.rpartition(".")
        facts: ModuleFacts | None = None
        if module == self.facts.module and name in self.facts.functions:
            facts = self.facts
        elif self.index is not None and "." in qualified:
            found = self.index.resolve_member(qualified, self.facts.path)
            if found is not None and found[1] in found[0].functions:
                facts, name = found
        func = facts.functions.get(name) if facts is not None else None
        return (facts, func) if facts is not None and func is not None else None

    @property
    def depth(self) -> int:
        """How many helpers away from the function being judged this judge is."""
        return self._depth

    def of_class(self, facts: ModuleFacts, cls: ClassFacts) -> Refused | None:
        """What an instance of a project class is (`self` in its methods)."""
        return self._class_kind(facts, cls)

    def deeper(self, facts: ModuleFacts) -> LoadSafety:
        """A judge for another module (a helper's), one level further from the start."""
        return self._deeper(facts)

    def _project_function(
        self, qualified: str, call: ast.Call | None = None, env: Env = _NO_ENV
    ) -> Refused | None:
        """What a project helper returns: its annotation, else what every `return` gives
        (its parameters bound to what this call passes: `smoothed(losses)`)."""
        if self._depth >= _MAX_DEPTH:
            return None
        found = self.project_function(qualified)
        if found is None:
            return None
        facts, func = found
        deeper = self._deeper(facts)
        if func.returns is not None:
            return deeper.of_annotation(func.returns)
        if call is None:
            return deeper.of_returns(func, {})
        flow = self.helper_flow(call, env)
        return _agreed(flow.returns) if flow is not None else None

    def helper_flow(self, call: ast.Call, env: Env = _NO_ENV) -> LocalFlow | None:
        """The flow of the project function (or method of a local project instance) a call
        names, its parameters bound to what the call passes; memoized per function and
        binding. None past the depth, or when the function's annotation says what it gives."""
        if self._depth >= _MAX_DEPTH:
            return None
        dotted = dotted_name(call.func)
        if not dotted:
            return None
        method = self._method_flow(call, env)
        if method is not None:
            return method
        if not self._names_global(dotted, env):
            return None
        found = self.project_function(qualify(dotted, self.facts))
        if found is None or not returns_unsaid(*found):
            return None
        bound = self._bound(found[1], call, env, same_module=found[0] is self.facts)
        key = ("helper-flow", id(found[1]), bound_key(bound))
        known = self.memo.get(key)
        if isinstance(known, LocalFlow):
            return known
        # asked only what its returns give (returns_of, keys_of, items_of, objects_of)
        flow = LocalFlow(self._deeper(found[0])).run(found[1], bound, needs=of_returns(found[1]))
        self.memo[key] = flow
        return flow

    def _bound(
        self,
        func: FunctionNode,
        call: ast.Call,
        env: Env,
        skip: int = 0,
        same_module: bool = False,
    ) -> dict[str, object]:
        """Parameters a call binds to refused values or numbers; defaults left to numbers.
        `same_module`: the function is of this module, so a module string constant it is
        passed (or defaults to) is one this judge can read."""
        args = func.args
        if any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords
        ):
            return {}
        params = [*args.posonlyargs, *args.args][skip:]
        passed: dict[str, ast.expr] = {p.arg: a for p, a in zip(params, call.args)}
        passed.update({k.arg: k.value for k in call.keywords if k.arg is not None})
        defaults = dict(
            zip([p.arg for p in params][len(params) - len(args.defaults) :], args.defaults)
        )
        bound: dict[str, object] = {}
        unpassed = frozenset(n for n, d in defaults.items() if n not in passed and _is_none(d))
        if unpassed:  # `controller or Ctrl()` in the function is the `Ctrl()`
            bound[UNPASSED_NONE] = unpassed
        for name in [p.arg for p in params]:
            value = passed.get(name, defaults.get(name) if name not in passed else None)
            if value is None:
                continue
            if _is_number_constant(value):
                bound[name] = NUMBER
            elif (
                same_module
                and isinstance(value, ast.Name)
                and value.id not in env
                and module_string(value.id, self) is not None
            ):
                bound[name] = ModuleText(value.id)  # `load_config(text=RUN_YAML)`, or left out
            elif same_module and isinstance(value, ast.Constant) and isinstance(value.value, str):
                bound[name] = KeyText(value.value)  # `task_config("nowcast")`
            elif name in passed:
                judged = self.kind_of(value, env)
                if judged is not None:
                    bound[name] = judged
                elif self._is_number(value, env):
                    bound[name] = NUMBER  # `pck(..., self.pck_thr)` of a number attribute
                bound.update(_passed_items(name, value, env))
                if isinstance(value, ast.Call) and self._depth + 1 < _MAX_DEPTH:
                    # `run_trial(i, suggest_params(rng))`: the helper's dict, key by key
                    keys = self.keys_of(value, env)
                    bound.update({f"{name}[{k!r}]": v for k, v in keys.items()})
        return bound

    def of_returns(
        self,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        bound: Mapping[str, object] | None = None,
    ) -> Refused | None:
        """What every `return` of a function gives, when each is refused (locals followed)."""
        from ckpt_lsp.analysis.local_flow import returns_of  # the flow needs this module

        judged = returns_of(func, self, bound)
        if not judged or any(j is None for j in judged):
            return None
        return _agreed(judged)

    def items_of(
        self, expr: ast.expr, count: int, env: Env = _NO_ENV, at: int | None = None
    ) -> list[Refused | None] | None:
        """What each of the `count` elements of a project helper's tuple result is (`a, b =
        helper()`): element i is refused when every `return` gives the same refusal there.
        `count` -1: as many as every return gives (a starred target). `at`: the elements of
        the inner tuple each return shows at that position (`_, (a, b) = helper()`)."""
        if not isinstance(expr, ast.Call):
            if at is not None:
                return None
            return pair_items(self, expr, count, env) or None  # `tr, va = folds[k]`
        dotted = dotted_name(expr.func)
        if isinstance(expr.func, ast.Attribute) and not self._names_global(dotted, env):
            from ckpt_lsp.analysis.object_effects import method_items  # runs flows

            return method_items(self, expr, count, env, at)  # `a, b = trainer.step()`
        if not dotted or not self._names_global(dotted, env):
            return None
        listed = self.catalog_items(expr, env) if at is None else None
        if listed is not None:  # `codes, uniques = pd.factorize(col)`
            return listed if count < 0 or count == len(listed) else None
        flow = self.helper_flow(expr, env)
        if flow is None:
            return None
        returned = flow.return_items if at is None else flow.nested(at, count)
        columns = agreed_columns(returned, count)
        return [_agreed(column) for column in columns] if columns is not None else None

    def catalog_items(self, call: ast.Call, env: Env = _NO_ENV) -> list[Refused | None] | None:
        """The elements of a library call's tuple result the catalog lists (`b, a =
        signal.butter(...)`); None when it lists none."""
        dotted = dotted_name(call.func)
        if not dotted or not self._names_global(dotted, env):
            return None
        entry = self.catalog.for_call(qualify(dotted, self.facts), len(call.args), _keywords(call))
        if entry is None or not entry.items:
            return None
        return [_no_fix(self.catalog.kind(kind)) for kind in entry.items]

    def objects_of(self, expr: ast.Call, at: int, env: Env = _NO_ENV) -> State:
        """What a project helper's flow knew of the attributes (`.best`) of the object every
        `return` gives at position `at` (-1: the whole result): those every return knows."""
        flow = self.helper_flow(expr, env)
        returned = flow.return_objects if flow is not None else []
        if not returned or any(at not in r for r in returned):
            return {}
        common = set(returned[0][at]).intersection(*(r[at] for r in returned[1:]))
        return {k: frozenset().union(*(r[at][k] for r in returned)) for k in sorted(common)}

    def keys_of(self, expr: ast.Call, env: Env = _NO_ENV) -> dict[str, Refused]:
        """What each constant key of a project helper's dict result holds (`metrics =
        evaluate(m)`, `Evaluator().compute(x)`), when every `return` is a dict display giving
        it the same refusal."""
        returned = self._return_keys(expr, env)
        keys: dict[str, Refused] = {}
        for key in returned[0] if returned else {}:
            agreed = _agreed([(r or {}).get(key) for r in returned])
            if agreed is not None:
                keys[key] = agreed
        return keys

    def plain_keys(self, expr: ast.Call, env: Env = _NO_ENV) -> set[str]:
        """The constant keys every `return` of the helper's dict sets to a value not refused
        (`out = {...numpy...}; out["mrr"] = float(m); return out`: `mrr` is a float even
        though the rest of the dict holds numpy scalars)."""
        returned = self._return_keys(expr, env)
        if not returned:
            return set()
        return {
            key
            for key, held in (returned[0] or {}).items()
            if held is None and all(key in (r or {}) and (r or {})[key] is None for r in returned)
        }

    def _return_keys(self, expr: ast.Call, env: Env) -> list[dict[str, Refused | None]]:
        """What each `return` of the helper the call runs gives under its constant keys;
        empty when a `return` gives no known keys."""
        flow = self.helper_flow(expr, env)
        if flow is None and isinstance(expr.func, ast.Attribute) and self._depth < _MAX_DEPTH:
            flow = self._method_flow(expr, env)  # a method of an object built in the call
        if flow is None:
            return []
        returned = flow.return_keys
        if not returned or any(r is None for r in returned):
            return []
        return [r for r in returned if r is not None]

    def _deeper(self, facts: ModuleFacts) -> LoadSafety:
        key = (id(facts), self._depth + 1)
        judge = self._judges.get(key)
        if judge is None or judge.facts is not facts:
            judge = LoadSafety(facts, self.index, self.catalog, self._depth + 1, self._judges)
            self._judges[key] = judge
        return judge

    def _union_members(self, annotation: ast.expr) -> list[ast.expr] | None:
        """The members of `X | Y`, `Optional[X]`, `Union[X, Y]`; None for any other form."""
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            left = self._union_members(annotation.left) or [annotation.left]
            return [*left, annotation.right]
        if isinstance(annotation, ast.Subscript):
            head = qualify(dotted_name(annotation.value), self.facts)
            inner = annotation.slice
            if head in _OPTIONAL:
                return [inner]
            if head in _UNION:
                return list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        return None


def _held_item(name: str, env: Env) -> Refused | None:
    """A refused value the flow knows under a constant key of the local dict `name`
    (`meta["bounds"]`): the dict holds it."""
    prefix = name + "["
    for key, held in env.items():
        if held is not None and key.startswith(prefix):
            return _holding(held)
    return None


def _holding(leaf: Refused) -> Refused:
    """A container holding `leaf` somewhere: refused for it, with no certain fix."""
    return replace(leaf, what=f"a dict holding {leaf.what}", fix="", holder=True)


def shared_judge(
    facts: ModuleFacts, index: ProjectIndex | None, memo: dict[tuple[object, ...], object] | None
) -> LoadSafety:
    """One judge per module for a file's analysis (kept in `memo`): the flows of helpers and
    methods it memoizes then serve every call site of every class, not one site each."""
    if memo is None:
        return LoadSafety(facts, index)
    key = ("judge", id(facts))
    found = memo.get(key)
    if isinstance(found, LoadSafety) and found.facts is facts:
        return found
    judge = LoadSafety(facts, index)
    memo[key] = judge
    return judge


def bound_key(bound: Mapping[str, object]) -> tuple[object, ...]:
    """Bound parameters as a memo key (a value's built call and display included)."""
    return tuple(
        (k, v, id(getattr(v, "built", None)), id(getattr(v, "shape", None)))
        for k, v in sorted(bound.items(), key=lambda item: item[0])
    )


def _passed_items(param: str, value: ast.expr, env: Env) -> dict[str, object]:
    """`normalize(dataset)` of a local whose keys the flow knows (`dataset["obs"]` a numpy
    array): the parameter's items, under the parameter's name (`ds['obs']`)."""
    if not isinstance(value, ast.Name):
        return {}
    prefix = value.id + "["
    return {
        param + key[len(value.id) :]: held
        for key, held in env.items()
        if key.startswith(prefix) and held is not None
    }


def _column_names(call: ast.Call) -> list[str] | None:
    """`columns=["date", "qty"]` of a frame's constructor, when every name is a string."""
    for keyword in call.keywords:
        given = keyword.value
        if keyword.arg == "columns" and isinstance(given, (ast.List, ast.Tuple)):
            names = [e.value for e in given.elts if isinstance(e, ast.Constant)]
            if len(names) == len(given.elts) and all(isinstance(n, str) for n in names):
                return [str(n) for n in names]
    return None


def _averaged(keyword: ast.keyword) -> bool:
    """A metric's keyword that keeps its result one number: not `average=None` or
    `multioutput="raw_values"` (per-class and per-output arrays), nor a value not written."""
    if keyword.arg not in ("average", "multioutput"):
        return keyword.arg is not None
    value = keyword.value
    return isinstance(value, ast.Constant) and value.value not in (None, "raw_values")


def _held_name(expr: ast.expr) -> str:
    """`metrics` or `trainer.cache`: a name or dotted attribute the flow keeps keys of; or an
    item of one under a constant string key (`run["data"]`, whose keys it keeps too)."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Subscript):
        index = expr.slice
        inner = _held_name(expr.value)
        if inner and isinstance(index, ast.Constant) and isinstance(index.value, str):
            return f"{inner}[{index.value!r}]"
        return ""
    return dotted_name(expr) if isinstance(expr, ast.Attribute) else ""


def _constant_index(index: ast.expr) -> str | int | None:
    """`"loss"`, `1`, `-1` as written in a subscript; None for anything else."""
    if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
        inner = _constant_index(index.operand)
        return -inner if isinstance(inner, int) and not isinstance(inner, bool) else None
    value = index.value if isinstance(index, ast.Constant) else None
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _named_numbers(call: ast.Call, numbers: frozenset[str]) -> frozenset[str]:
    """The columns a named aggregation makes of numbers: a statistic or a count of any
    column, a sum or extreme of a column known to hold numbers."""
    found = set()
    for keyword in call.keywords:
        value = keyword.value
        if keyword.arg is None or not isinstance(value, ast.Tuple) or len(value.elts) != 2:
            continue
        column, how = value.elts
        if not (isinstance(how, ast.Constant) and isinstance(how.value, str)):
            continue
        counted = how.value in _NUMBER_STATISTICS
        summed = how.value in ("sum", "min", "max") and (
            isinstance(column, ast.Constant) and column.value in numbers
        )
        if counted or summed:
            found.add(keyword.arg)
    return frozenset(found)


# what a named aggregation gives as numbers whatever the column held (or raises)
_NUMBER_STATISTICS = frozenset(
    {"mean", "median", "std", "var", "sem", "size", "count", "nunique", "skew"}
)


def _drawing(call: ast.Call) -> bool:
    """`rng.choice(pool, n)`, `np.random.choice(pool, n)`: an array of the pool's items."""
    return isinstance(call.func, ast.Attribute) and call.func.attr == "choice" and bool(call.args)


def _item_by_item(expr: ast.expr) -> bool:
    """Arithmetic, or a comparison an array makes item by item (`in` and `is` give a bool)."""
    if isinstance(expr, ast.BinOp):
        return True
    return isinstance(expr, ast.Compare) and all(
        isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in expr.ops
    )


def _tensor_like(expr: ast.expr) -> bool:
    """An operand written as a tensor (`torch.tensor(w)`, `x.float()`, `t.cuda()`): arithmetic
    of a numpy array with a tensor gives a tensor, so an operand of no known kind decides
    nothing when it may be one."""
    if isinstance(expr, ast.Call):
        dotted = dotted_name(expr.func)
        if dotted.startswith("torch.") or dotted.startswith("F."):
            return True
        return isinstance(expr.func, ast.Attribute) and expr.func.attr in _TENSOR_METHODS
    if isinstance(expr, ast.Attribute):
        return expr.attr in ("data", "grad", "weight", "bias", "T", "mT")
    return False


_TENSOR_METHODS = frozenset(
    {"float", "double", "half", "long", "int", "to", "cuda", "cpu", "detach", "clone", "type_as"}
)

# values whose items are numpy arrays: `zip(*v)` of one gives tuples of numpy scalars
_ARRAYS_SPREAD = frozenset({"numpy-index-tuple", "numpy-array-list", "numpy-array-pair"})


def _agreed(judged: list[Refused | None]) -> Refused | None:
    """One refusal when every judgement is refused (the fix kept only when all agree)."""
    if not judged or any(j is None for j in judged):
        return None
    refused = [j for j in judged if j is not None]
    same = agreed(refused)
    return same if same is not None else _no_fix(replace(refused[0], fields=()))


def returns_unsaid(facts: ModuleFacts, func: FunctionNode) -> bool:
    """Whether the annotation of a function (of `facts`) leaves what it returns to its flow:
    none, or a plain container (`-> dict` says nothing of the values a caller reads by key)."""
    returns = func.returns
    if returns is None:
        return True
    head = returns.value if isinstance(returns, ast.Subscript) else returns
    return qualify(dotted_name(head), facts) in _PLAIN_CONTAINERS


def _is_number_constant(expr: ast.expr) -> bool:
    value = expr.value if isinstance(expr, ast.Constant) else None
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(expr: ast.expr) -> bool:
    """An int literal, negative ones too (`iloc[-1]`)."""
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub):
        expr = expr.operand
    value = expr.value if isinstance(expr, ast.Constant) else None
    return isinstance(value, int) and not isinstance(value, bool)


def _is_none(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Constant) and expr.value is None


def refusal_of_annotation(
    annotation: ast.expr | None, facts: ModuleFacts, index: ProjectIndex | None = None
) -> Refused | None:
    """Shortcut for callers with one annotation (CKPT011's parameters)."""
    return LoadSafety(facts, index).of_annotation(annotation)


def refusal_of_expression(
    expr: ast.expr | None,
    facts: ModuleFacts,
    index: ProjectIndex | None = None,
    env: Env = _NO_ENV,
) -> Refused | None:
    """Shortcut for callers with one expression (CKPT011's defaults and call-site arguments)."""
    return LoadSafety(facts, index).of_expression(expr, env)


__all__ = [
    "Env",
    "LoadSafety",
    "Refused",
    "refusal_of_annotation",
    "refusal_of_expression",
]


def _leaf(shape: ast.expr | None, reads: list[tuple[ast.expr, str]]) -> str | None:
    """The string a shape holds under the keys the reads take, in order."""
    for _, key in reads:
        if not isinstance(shape, ast.Dict):
            return None
        found = [v for k, v in zip(shape.keys, shape.values) if _same_text(k, key)]
        shape = found[0] if len(found) == 1 else None
    leaf = shape.value if isinstance(shape, ast.Constant) else None
    return leaf if isinstance(leaf, str) else None


def _same_text(key: ast.expr | None, text: str) -> bool:
    return isinstance(key, ast.Constant) and key.value == text


def _every_value_nested(shape: ast.expr | None) -> bool:
    """A config shape whose every value is itself a mapping or a list (no leaf)."""
    return (
        isinstance(shape, ast.Dict)
        and bool(shape.values)
        and all(isinstance(v, _SHAPES) and not isinstance(v, RefusedLeaf) for v in shape.values)
    )


def _keywords(call: ast.Call) -> frozenset[str]:
    """The call's keyword arguments as written (`average=None`); a `**kw` spread as `**`."""
    return frozenset(
        f"{k.arg}={ast.unparse(k.value)}" if k.arg else SPREAD_KEYWORDS for k in call.keywords
    )


def _held_by(owner: ast.expr, env: Env) -> dict[str, Refused | None]:
    """What the flow knows `balancer.counts` (of `owner`, `balancer`) holds, as `self.counts`:
    refused attributes only (one level, no keys)."""
    dotted = dotted_name(owner)
    if not dotted:
        return {}
    prefix = dotted + "."
    return {
        "self." + k[len(prefix) :]: v
        for k, v in env.items()
        if v is not None and k.startswith(prefix) and "." not in k[len(prefix) :] and "[" not in k
    }


def _sets_attribute(cls: ClassFacts, attr: str) -> bool:
    """The class stores `self.<attr>` in a method or binds it in its body (its own text;
    a base's is not read)."""
    if cls.methods_mentioning(f"self.{attr}"):
        return True
    return any(
        isinstance(t, ast.Name) and t.id == attr
        for stmt in cls.class_level()
        for t in (stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)])
        if t is not None
    )


# numpy functions whose string arguments become the array's items (a file name given to
# `np.load` does not)
_FILLERS = frozenset({"where", "full", "full_like", "repeat", "tile", "select"})


def _drawn_from_strings(value: ast.expr) -> bool:
    """A call given strings (`rng.choice(["a", "b"], n)`, `np.array(["x"])`, `np.where(m,
    "a", "b")`) or converting to them (`.astype(str)`): its array holds strings, not numbers."""
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    if isinstance(func, ast.Attribute) and func.attr == "astype" and value.args:
        kind = value.args[0]
        return (isinstance(kind, ast.Name) and kind.id == "str") or (
            isinstance(kind, ast.Constant) and kind.value in ("str", "U", "object")
        )
    named = dotted_name(func).rsplit(".", 1)[-1]
    if named in _FILLERS and any(
        isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in value.args
    ):
        return True  # `np.where(mask, "treatment", "control")`, `np.full(n, "x")`
    return any(
        isinstance(arg, (ast.List, ast.Tuple))
        and any(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in arg.elts)
        for arg in value.args
    )


def _is_self_attr(target: ast.expr, attr: str) -> bool:
    return (
        isinstance(target, ast.Attribute)
        and target.attr == attr
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    )


def _passed(init: FunctionNode, call: ast.Call) -> dict[str, ast.expr | None]:
    """`__init__`'s parameters (after self) -> what `call` passes, else their default;
    None for one neither passed nor defaulted, or when `*args`/`**kw` hide what is passed."""
    args = init.args
    params = [p.arg for p in [*args.posonlyargs, *args.args]][1:]
    defaults: dict[str, ast.expr | None] = dict(
        zip(params[len(params) - len(args.defaults) :], args.defaults)
    )
    defaults.update(zip([p.arg for p in args.kwonlyargs], args.kw_defaults))
    params += [p.arg for p in args.kwonlyargs]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return {name: None for name in params}
    given: dict[str, ast.expr | None] = {name: defaults.get(name) for name in params}
    given.update(zip(params, call.args))
    given.update({k.arg: k.value for k in call.keywords if k.arg in given})
    return given


def _same_key(key: ast.expr | None, wanted: ast.Constant) -> bool:
    return isinstance(key, ast.Constant) and key.value == wanted.value
