"""The Keras fixes (CKPT012, CKPT013) as text insertions in the class's block.

- register: `@<keras>.saving.register_keras_serializable(package="<top package>")` above
  the class, in the module's own spelling of Keras (an `import keras` when it has none);
- kwargs: `**kwargs` added to `__init__` and handed to `super().__init__`;
- config: the missing arguments added to `get_config` (a new one calling super's, or the
  existing one's returned dict), stored on `self` first when `__init__` does not;
- rebuild: a config value serialized with `serialize_keras_object`, and a `from_config`
  that deserializes it before `cls(**config)`;
- serialize: for a Layer without get_config, a new get_config holding the argument
  serialized, and the same `from_config`;
- str: a path in the config stored as `str(...)` (its `__init__` makes the path again).

Nothing existing is re-printed; the edits module checks that the block still parses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ckpt_lsp.analysis.facts import dotted_name, super_init_call
from ckpt_lsp.analysis.keras_config import own_params, read_config
from ckpt_lsp.analysis.nodes import child_nodes, walk
from ckpt_lsp.fix.module import FixModule, FoundClass
from ckpt_lsp.fix.planner import Unavailable
from ckpt_lsp.fix.text import LineTable, Span, leading_ws

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass
class KerasPlan:
    spans: list[Span] = field(default_factory=list)  # relative to the class's block
    needs_import: bool = False  # `import keras` must be added at module level


def keras_spelling(module: FixModule, cls: ast.ClassDef) -> tuple[str, bool]:
    """(the expression naming Keras' top module, whether `import keras` must be added).

    The class's own base spelling is preferred (`tf.keras.Model` -> `tf.keras`)."""
    imports = module.imports
    heads = [dotted_name(b).partition(".")[0] for b in cls.bases]
    for local in [*heads, *imports]:
        target = imports.get(local)
        if target in ("keras", "tensorflow.keras"):
            return local, False
        if target == "tensorflow":
            return f"{local}.keras", False
    if "keras" in module.names:
        raise Unavailable("`keras` names something else in this module")
    return "keras", True


def plan_keras(module: FixModule, found: FoundClass, ops: tuple[str, ...]) -> KerasPlan:
    """The spans for the ops that the class still needs: what is done already is skipped,
    so fixing a fixed class changes nothing."""
    cls = found.node
    text = found.parsed.block.text
    table = LineTable(text)
    spelling, needs_import = keras_spelling(module, cls)
    editor = _ClassEditor(cls, table, spelling)
    spans: list[Span] = []
    for op in ops:
        kind, _, arg = op.partition(":")
        if kind == "register" and not editor.registered():
            spans.append(editor.register(arg))
        elif kind == "kwargs":
            spans.extend(editor.kwargs())
    serialize = _args(ops, "serialize")
    config = editor.missing(_args(ops, "config") + serialize)
    if serialize and "get_config" not in editor.methods:
        # the new get_config replaces the automatic one: every argument goes in
        config = tuple(dict.fromkeys(own_params(editor.init()) + list(config)))
    rebuild = _args(ops, "rebuild")
    if config:
        spans.extend(editor.config(config, frozenset(serialize)))
    if rebuild and "from_config" not in editor.methods:
        spans.extend(editor.rebuild(rebuild))
    if serialize and "from_config" not in editor.methods:
        spans.append(editor.from_config(serialize))
    spans.extend(editor.as_str(_args(ops, "str")))
    newline = "\r\n" if "\r\n" in text else "\n"
    if newline != "\n":  # the file's own line ending
        spans = [Span(s.start, s.end, s.text.replace("\n", newline), s.order) for s in spans]
    uses_keras = any(spelling in s.text for s in spans)
    return KerasPlan(spans, needs_import and uses_keras)


def _args(ops: tuple[str, ...], kind: str) -> tuple[str, ...]:
    return tuple(op.partition(":")[2] for op in ops if op.partition(":")[0] == kind)


# attributes every Layer has: `self.weights = weights` would overwrite Keras' own
_LAYER_ATTRS = frozenset(
    {
        "built", "dtype", "dtype_policy", "input", "input_spec", "layers", "losses",
        "metrics", "name", "non_trainable_variables", "non_trainable_weights", "output",
        "path", "supports_masking", "trainable", "trainable_variables", "trainable_weights",
        "variables", "weights",
    }
)  # fmt: skip


class _ClassEditor:
    def __init__(self, cls: ast.ClassDef, table: LineTable, keras: str) -> None:
        self.cls = cls
        self.table = table
        self.keras = keras
        self.methods = {s.name: s for s in cls.body if isinstance(s, FunctionNode)}
        first = cls.body[0]
        self.indent = leading_ws(table.line(first.lineno))

    def at(self, row: int, col: int) -> int:
        return self.table.offset_of_utf8(row, col)

    def _end(self, node: ast.AST) -> int:
        return self.at(node.end_lineno or node.lineno, node.end_col_offset or 0)  # type: ignore[attr-defined]

    def registered(self) -> bool:
        return any("register_keras_serializable" in ast.unparse(d) for d in self.cls.decorator_list)

    def missing(self, params: Iterable[str]) -> tuple[str, ...]:
        """The parameters a get_config does not name yet."""
        fn = self.methods.get("get_config")
        keys = read_config(fn).keys if fn is not None else set()
        return tuple(p for p in dict.fromkeys(params) if p not in keys)

    def register(self, package: str) -> Span:
        rows = [d.lineno for d in self.cls.decorator_list] + [self.cls.lineno]
        row = min(rows)
        start = self.table.row_start(row)
        indent = leading_ws(self.table.line(row))
        line = f'{indent}@{self.keras}.saving.register_keras_serializable(package="{package}")\n'
        return Span(start, start, line)

    def init(self) -> ast.FunctionDef | ast.AsyncFunctionDef:
        init = self.methods.get("__init__")
        if init is None:
            raise Unavailable("the class has no `__init__`")
        return init

    def kwargs(self) -> list[Span]:
        init = self.init()
        args = init.args
        if args.kwarg is not None:
            return []
        names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        if "kwargs" in names:
            raise Unavailable("`kwargs` is already a parameter name")
        if args.posonlyargs:
            raise Unavailable("`__init__` has positional-only parameters")
        nodes: list[ast.AST] = [*args.args, *args.kwonlyargs, *args.defaults]
        nodes += [d for d in args.kw_defaults if d is not None]
        if args.vararg is not None:
            nodes.append(args.vararg)
        last = max(nodes, key=lambda n: (n.end_lineno, n.end_col_offset))  # type: ignore[attr-defined]
        spans = [Span(self._end(last), self._end(last), ", **kwargs")]
        call = super_init_call(init)
        if call is not None and not any(k.arg is None for k in call.keywords):
            items: list[ast.AST] = [*call.args, *call.keywords]
            if items:
                end = max(self._end(i) for i in items)
                spans.append(Span(end, end, ", **kwargs", 1))
            else:
                close = self._end(call) - 1
                spans.append(Span(close, close, "**kwargs", 1))
        return spans

    def _stored_attr(self, param: str) -> str | None:
        init = self.init()
        for node in walk(init):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                if node.value.id != param:
                    continue
                for target in node.targets:
                    if _self_attr(target):
                        assert isinstance(target, ast.Attribute)
                        return target.attr
        return None

    def _assigned_attrs(self) -> set[str]:
        return {
            t.attr
            for node in walk(self.cls)
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Attribute) and _self_attr(t)
        } | set(self.methods)

    def config(self, params: tuple[str, ...], serialized: frozenset[str]) -> list[Span]:
        spans: list[Span] = []
        values: list[tuple[str, str]] = []
        taken = self._assigned_attrs()
        for param in params:
            attr = self._stored_attr(param)
            if attr is None:
                if param in taken or param in _LAYER_ATTRS:
                    raise Unavailable(f"`self.{param}` holds something else than `{param}`")
                spans.append(self._store(param))
                attr = param
            value = f"self.{attr}"
            if param in serialized:
                value = f"{self.keras}.saving.serialize_keras_object({value})"
            values.append((param, value))
        entries = ", ".join(f'"{k}": {v}' for k, v in values)
        get_config = self.methods.get("get_config")
        if get_config is None:
            body = f"config = super().get_config()\nconfig.update({{{entries}}})\nreturn config\n"
            spans.append(self._method("def get_config(self):\n", body))
        else:
            spans.extend(self._extend_returns(get_config, entries))
        return spans

    def _store(self, param: str) -> Span:
        init = self.init()
        call = super_init_call(init)
        statement = next((s for s in init.body if call is not None and _contains(s, call)), None)
        anchor = statement or init.body[0]
        row = (anchor.end_lineno or anchor.lineno) + 1 if statement else anchor.lineno
        indent = leading_ws(self.table.line(anchor.lineno))
        start = self.table.row_start(row)
        return Span(start, start, f"{indent}self.{param} = {param}\n")

    def _method(self, header: str, body: str, decorator: str = "") -> Span:
        end_row = self.cls.end_lineno or self.cls.lineno
        start = self.table.row_end(end_row)
        lead = "" if self.table.has_newline(end_row) else "\n"
        step = self.indent * 2  # a method's body in a top-level class
        lines = [f"{self.indent}{decorator}\n"] if decorator else []
        lines.append(f"{self.indent}{header}")
        lines += [f"{step}{line}\n" for line in body.splitlines()]
        return Span(start, start, lead + "\n" + "".join(lines), 2)

    def _extend_returns(self, fn: ast.AST, entries: str) -> Iterator[Span]:
        for node in _returns(fn):
            value = node.value
            if value is None:
                raise Unavailable("`get_config` returns nothing")
            if isinstance(value, ast.Dict):
                if value.values:
                    end = self._end(value.values[-1])
                    yield Span(end, end, f", {entries}")
                else:
                    close = self._end(value) - 1
                    yield Span(close, close, entries)
            elif isinstance(value, ast.Name):
                start = self.table.row_start(node.lineno)
                indent = leading_ws(self.table.line(node.lineno))
                yield Span(start, start, f"{indent}{value.id}.update({{{entries}}})\n")
            else:
                first = self.at(value.lineno, value.col_offset)
                yield Span(first, first, "{**(")
                yield Span(self._end(value), self._end(value), f"), {entries}}}")

    def rebuild(self, params: tuple[str, ...]) -> list[Span]:
        fn = self.methods.get("get_config")
        if fn is None:
            raise Unavailable("the class has no `get_config` to change")
        values = read_config(fn).values
        spans: list[Span] = []
        serialize = f"{self.keras}.saving.serialize_keras_object("
        for param in params:
            value = values.get(param)
            if value is None:
                raise Unavailable(f"`get_config` does not name `{param}`")
            start = self.at(value.lineno, value.col_offset)
            spans.append(Span(start, start, serialize))
            spans.append(Span(self._end(value), self._end(value), ")", 1))
        spans.append(self.from_config(params))
        return spans

    def from_config(self, params: tuple[str, ...]) -> Span:
        """A `from_config` that deserializes the params before building the class."""
        lines = [
            f'config["{p}"] = {self.keras}.saving.deserialize_keras_object(config["{p}"])'
            for p in params
        ]
        body = "\n".join([*lines, "return cls(**config)"]) + "\n"
        return self._method("def from_config(cls, config):\n", body, "@classmethod")

    def as_str(self, params: tuple[str, ...]) -> Iterator[Span]:
        """`str(self.x) if self.x is not None else None` for a path the config returns."""
        fn = self.methods.get("get_config")
        if fn is None or not params:
            return
        values = read_config(fn).values
        for param in params:
            value = values.get(param)
            if value is None:
                raise Unavailable(f"`get_config` does not name `{param}`")
            if _is_str_call(value):
                continue  # fixed already
            if not _self_attr(value):
                raise Unavailable(f"`{param}` in `get_config` is not a plain attribute")
            text = ast.unparse(value)
            start, end = self.at(value.lineno, value.col_offset), self._end(value)
            yield Span(start, start, "str(")
            yield Span(end, end, f") if {text} is not None else None", 1)


def _self_attr(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _is_str_call(node: ast.expr) -> bool:
    return isinstance(node, ast.IfExp) and any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "str"
        for n in walk(node.body)
    )


def _contains(statement: ast.stmt, node: ast.AST) -> bool:
    return any(n is node for n in walk(statement))


def _returns(fn: ast.AST) -> Iterator[ast.Return]:
    stack = list(child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            yield node
        elif not isinstance(node, (*FunctionNode, ast.ClassDef, ast.Lambda)):
            stack.extend(child_nodes(node))
