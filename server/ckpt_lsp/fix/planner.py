"""Plan the fix of one class: what its `__getstate__`/`__setstate__` say, and where.

The meaning comes from the stdlib `ast` of the class's block (the analysis's cached
tree): what the class's own methods already do, what each attribute was built from
and whether that can run again after unpickling. The edit comes from libcst on the
same block (`BlockSyntax`): the places to insert at, the new statements as libcst
nodes and their rendering. A plan is a few insertions (and at most one replaced
`return`) relative to the block's text; nothing that exists is re-printed.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import libcst as cst

from ckpt_lsp.analysis.facts import ClassFacts
from ckpt_lsp.analysis.pickling_methods import excluded_attributes, is_excluded
from ckpt_lsp.fix.bases import BaseProtocol
from ckpt_lsp.fix.cst_block import BlockSyntax, BodyItem, Statement
from ckpt_lsp.fix.module import (
    FixModule,
    FoundClass,
    FunctionNode,
    base_names,
    base_protocol,
    class_methods,
    has_foreign_base,
)
from ckpt_lsp.fix.recreate import (
    Origin,
    find_origin,
    mangle,
    may_hold_submodule,
    source_name,
    why_not_recreatable,
)
from ckpt_lsp.fix.state_methods import GetstateShape, keys_it_sets, read_getstate, read_setstate
from ckpt_lsp.fix.text import Span, leading_ws

TODO = "TODO(ckpt-lsp)"


class Unavailable(Exception):
    """Raised while planning: the class is left unchanged, and this says why."""


@dataclass(frozen=True)
class ClassPlan:
    spans: list[Span]  # relative to the class's top-level block
    recreated: tuple[str, ...]  # rebuilt in __setstate__ from their original expression
    reset: tuple[str, ...]  # set to None in __setstate__


@dataclass
class _Decision:
    name: str  # as written after `self.`
    key: str  # the __dict__ key (private names mangled)
    expression: cst.BaseExpression | None  # the original expression, or None: reset
    reason: str | None  # why it is reset to None
    guard: bool = False  # only set it when the base did not restore it (nn.Module children)


class ClassPlanner:
    def __init__(
        self,
        module: FixModule,
        found: FoundClass,
        syntax: BlockSyntax,
        attributes: Sequence[str],
        bases: tuple[str, ...],
        reset: Sequence[str] = (),
    ) -> None:
        self.module = module
        self.found = found
        self.syntax = syntax
        self.attributes = attributes
        self.bases = bases
        self.reset = frozenset(reset)
        self.origins: dict[str, Origin] = {}  # attribute as written -> where it was built

    # -- where libcst has things ------------------------------------------------------
    def _located(self, node: ast.stmt) -> tuple[Statement, BodyItem]:
        located = self.syntax.statement(node)
        if located is None:
            raise Unavailable("the fix could not place its edit")
        return located

    def _body_of(self, node: ast.stmt, what: str) -> cst.IndentedBlock:
        """The indented body of a class or function (not one on the header's line)."""
        located = self._located(node)[0]
        body = getattr(located, "body", None)
        if not isinstance(body, cst.IndentedBlock):
            raise Unavailable(what)
        return body

    def _after(self, item: BodyItem, indent: str) -> tuple[int, str, bool]:
        """Where code goes after a body item (and comments indented under it): the offset,
        a newline to add first when the block ends without one, and whether a blank line
        must follow the new code (it would touch the next line otherwise)."""
        table = self.syntax.table
        row = self.syntax.last_row(item)
        probe = row + 1
        while probe <= table.row_count:
            line = table.line(probe)
            if not line.strip():
                probe += 1
                continue
            if line.lstrip().startswith("#") and len(leading_ws(line)) > len(indent):
                row = probe
                probe += 1
                continue
            break
        if not table.has_newline(row):
            return len(self.syntax.text), self.syntax.newline, False
        following = table.line(row + 1) if row < table.row_count else ""
        return table.row_end(row), "", bool(following.strip())

    # -- planning ---------------------------------------------------------------------
    def plan(self) -> ClassPlan:
        cls, depth = self.found.node, self.found.depth
        methods = class_methods(cls)
        for name in ("__reduce__", "__reduce_ex__"):
            if name in methods:
                raise Unavailable(f"it defines {name}, which decides what is pickled")
        if depth == 0 and cls.name in self.module.facts.copyreg_classes:
            raise Unavailable("copyreg.pickle gives it a reducer, which decides what is pickled")
        names = [source_name(a, cls.name) for a in self.attributes]
        if not all(name.isidentifier() for name in names):
            raise Unavailable("an attribute to leave out is not a name")
        wanted = {mangle(n, cls.name): n for n in names}
        self.origins = {name: find_origin(cls, name) for name in names}
        getstate = methods.get("__getstate__")
        setstate = methods.get("__setstate__")
        needed = [cls, cls.body[0], self._anchor(cls, methods), getstate, setstate]
        needed += [origin.stmt for origin in self.origins.values()]
        tree = self.found.parsed.tree
        assert tree is not None  # the class was found in it
        self.syntax.locate(tree, max(n.lineno for n in needed if n))

        class_body = self._body_of(cls, "its body shares a line with the class statement")
        indent = self.syntax.indent_of(class_body)
        unit = self.syntax.unit_of(class_body)
        base = base_protocol(cls, self.module, self.bases)

        shape: GetstateShape | None = None
        excluded: frozenset[str] = frozenset()
        kept: set[str] = set()
        if getstate is not None:
            shape = read_getstate(getstate, base)
            if shape.problem:
                raise Unavailable(shape.problem)
            excluded = self._left_out(getstate)
            kept = keys_it_sets(getstate)  # type: ignore[arg-type]
        to_pop = [k for k in wanted if k not in kept and not is_excluded(k, excluded)]

        assigned: set[str] = set()
        sshape = None
        if setstate is not None:
            sshape = read_setstate(setstate, cls.name)
            assigned = sshape.assigned
        to_set = [k for k in wanted if k not in assigned]
        if sshape is not None and sshape.problem and to_set:
            raise Unavailable(sshape.problem)

        def gone(key: str) -> bool:
            """Not in the state when __setstate__ runs (nor set by it yet)."""
            return key not in assigned and (key in wanted or is_excluded(key, excluded))

        # Without the analyzer's bases, a base from another file may be an nn.Module.
        submodules = (base is not None and base.submodules) or (
            not self.bases and has_foreign_base(cls, self.module)
        )
        decisions = self._decide(cls, [(wanted[k], k) for k in to_set], gone, submodules)
        recreated = {d.key for d in decisions if d.expression is not None}

        spans: list[Span] = []
        order = -10 * depth
        var = shape.var if shape else "state"
        pops = [self._pop(var, k, k in recreated) for k in to_pop]
        sets = [node for d in decisions for node in self._sets(d, unit)]

        if getstate is not None and shape is not None and to_pop:
            spans += self._extend_getstate(shape, pops, order)
        if setstate is not None and sets:
            spans += self._extend_setstate(setstate, sets, order)

        new_methods: list[cst.BaseStatement] = []
        if getstate is None:
            state = self.syntax.statement_node(f"state = {self._state_source(base)}")
            ret = self.syntax.statement_node("return state")
            new_methods.append(self._method("__getstate__(self)", [state, *pops, ret], unit))
        if setstate is None and sets:
            first = self.syntax.statement_node(
                "super().__setstate__(state)"
                if base is not None and base.setstate
                else "self.__dict__.update(state)"
            )
            new_methods.append(self._method("__setstate__(self, state)", [first, *sets], unit))
        if new_methods:
            anchor = self._located(self._anchor(cls, methods))[1]
            offset, before, blank_after = self._after(anchor, indent)
            text = before + self.syntax.render(new_methods, indent, blank_after)
            spans.append(Span(offset, offset, text, order + 1))

        return ClassPlan(
            spans,
            recreated=tuple(d.name for d in decisions if d.expression is not None),
            reset=tuple(d.name for d in decisions if d.expression is None),
        )

    def _left_out(self, getstate: ast.stmt) -> frozenset[str]:
        """What the class's own __getstate__ already leaves out, as the analysis reads it."""
        cls = self.found.node
        facts = ClassFacts(cls.name, cls, self.found.parsed, tuple(base_names(cls)))
        if facts.method("__getstate__") is not getstate:
            raise Unavailable("it binds __getstate__ more than once; extend it by hand")
        return excluded_attributes(self.module.facts, facts, ()) or frozenset()

    @staticmethod
    def _anchor(cls: ast.ClassDef, methods: dict[str, ast.stmt]) -> ast.stmt:
        """New methods go after __getstate__ (when only __setstate__ is new), __init__, or last."""
        for name in ("__getstate__", "__init__"):
            method = methods.get(name)
            if isinstance(method, FunctionNode):
                return method
        return cls.body[-1]

    @staticmethod
    def _state_source(base: BaseProtocol | None) -> str:
        if base is None or not base.getstate:
            # object.__getstate__ only exists from Python 3.11 on.
            return "self.__dict__.copy()"
        if base.fresh:
            return "super().__getstate__()"
        return "dict(super().__getstate__())"  # the base may return the live __dict__

    # -- new statements ---------------------------------------------------------------
    def _pop(self, var: str, key: str, recreated: bool) -> cst.BaseStatement:
        then = "re-created" if recreated else "reset to None"
        return self.syntax.statement_node(
            f'{var}.pop("{key}", None)  # unpicklable: {then} in __setstate__'
        )

    def _sets(self, decision: _Decision, unit: str) -> list[cst.BaseStatement]:
        name = decision.name
        if decision.expression is None:
            line = self.syntax.statement_node(
                f"self.{name} = None  # {TODO}: re-create {name} after unpickling"
            )
        else:
            line = self._assign(f"self.{name}", decision.expression, copied=True)
        if not decision.guard:
            return [line]
        # A submodule or parameter lives in _modules/_parameters and came back with the base.
        guard = self.syntax.statement_node(
            f'if not hasattr(self, "{name}"):  # not restored as a submodule'
            f"{self.syntax.newline}{unit}pass"
        )
        assert isinstance(guard, cst.If)
        return [guard.with_changes(body=guard.body.with_changes(body=[line]))]

    def _assign(
        self, target: str, value: cst.BaseExpression, copied: bool = False
    ) -> cst.BaseStatement:
        """`target = value`. A value copied from elsewhere that spans lines gets brackets
        of its own: it may have been inside others (a setattr argument, a tuple item)."""
        code = self.syntax.code(value)
        if copied and ("\n" in code or "\r" in code) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        line = self.syntax.statement_node(f"{target} = None")
        assert isinstance(line, cst.SimpleStatementLine)
        assign = line.body[0]
        assert isinstance(assign, cst.Assign)
        return line.with_changes(body=[assign.with_changes(value=value)])

    def _method(
        self, signature: str, body: list[cst.BaseStatement], unit: str
    ) -> cst.BaseStatement:
        """`def <signature>:` with the body, one indent unit in, after a blank line."""
        nl = self.syntax.newline
        func = self.syntax.statement_node(f"def {signature}:{nl}{unit}pass")
        assert isinstance(func, cst.FunctionDef)
        return func.with_changes(
            body=func.body.with_changes(body=body), leading_lines=[cst.EmptyLine(indent=False)]
        )

    # -- what to re-create ------------------------------------------------------------
    def _expression(self, origin: Origin) -> cst.BaseExpression | None:
        """The libcst node of the expression an attribute was built from."""
        if origin.stmt is None or origin.where is None:
            return None
        small = self._located(origin.stmt)[0]
        kind, index = origin.where
        if kind == "argument" and isinstance(small, cst.Expr):
            call = small.value
            if isinstance(call, cst.Call) and len(call.args) > index:
                return call.args[index].value
        elif kind == "value" and isinstance(small, (cst.Assign, cst.AnnAssign)):
            value = small.value
            if value is None or index < 0:
                return value
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) > index:
                element = value.elements[index]
                return element.value if isinstance(element, cst.Element) else None
        return None

    def _decide(
        self,
        cls: ast.ClassDef,
        items: list[tuple[str, str]],
        gone: Callable[[str], bool],
        submodules: bool,
    ) -> list[_Decision]:
        """Re-create what can be, in the given order, except that an attribute which needs
        another dropped one comes after it (round by round)."""
        rounds: dict[str, int] = {}
        done: dict[str, _Decision] = {}
        reasons: dict[str, str] = {}
        pending = list(items)
        round_no = 0
        guards = {
            key: submodules and may_hold_submodule(self.origins[name], self.module)
            for name, key in items
        }
        while pending:
            back = {k for k, d in done.items() if d.expression is not None}

            def still_gone(key: str, back: set[str] = back) -> bool:
                return key not in back and gone(key)

            ready = []
            for name, key in pending:
                origin = self.origins[name]
                reason = (
                    "re-opening it where the object is unpickled can fail; open it lazily"
                    if name in self.reset
                    else why_not_recreatable(origin, self.module, still_gone, cls.name)
                )
                expression = self._expression(origin) if reason is None else None
                if expression is not None:
                    ready.append((name, key, expression))
                else:
                    reasons[key] = reason or "no expression"
            if not ready:
                break
            for name, key, expression in ready:
                done[key] = _Decision(name, key, expression, None, guards[key])
                rounds[key] = round_no
                pending.remove((name, key))
            round_no += 1
        for name, key in pending:
            done[key] = _Decision(name, key, None, reasons.get(key), guards[key])
            rounds[key] = 0
        index = {key: i for i, (_, key) in enumerate(items)}
        return sorted(done.values(), key=lambda d: (rounds[d.key], index[d.key]))

    # -- extending what exists --------------------------------------------------------
    def _extend_getstate(
        self, shape: GetstateShape, pops: list[cst.BaseStatement], order: int
    ) -> list[Span]:
        assert shape.ret is not None
        syntax, table = self.syntax, self.syntax.table
        ret, line = self._located(shape.ret)
        if not isinstance(ret, cst.Return) or not isinstance(line, cst.SimpleStatementLine):
            raise Unavailable("its __getstate__ returns on a line shared with other code")
        if len(line.body) != 1:
            raise Unavailable("its __getstate__ returns on a line shared with other code")
        indent = leading_ws(table.line(syntax.first_row(line)))
        if shape.rewrite:
            assert ret.value is not None
            value: cst.BaseExpression = ret.value
            if shape.copy:
                value = cst.Call(func=cst.Name("dict"), args=[cst.Arg(value)])
            new = [self._assign(shape.var, value), *pops]
            new.append(syntax.statement_node(f"return {shape.var}"))
            # `return <value>` becomes these lines; its comment and line ending stay.
            text = syntax.render(new, indent, False)[len(indent) : -len(syntax.newline)]
            return [Span(syntax.start(ret), syntax.end(ret), text, order)]
        spans: list[Span] = []
        if shape.copy_after is not None:
            stmt, stmt_line = self._located(shape.copy_after)
            if (
                not isinstance(stmt_line, cst.SimpleStatementLine)
                or stmt_line.body[-1] is not stmt
                or not table.has_newline(syntax.last_row(stmt_line))
            ):
                raise Unavailable("its __getstate__ is laid out in a way the fix cannot follow")
            copy = syntax.statement_node(
                f"{shape.var} = dict({shape.var})  # a copy: pop must not touch the object"
            )
            stmt_indent = leading_ws(table.line(syntax.first_row(stmt_line)))
            offset = table.row_end(syntax.last_row(stmt_line))
            spans.append(Span(offset, offset, syntax.render([copy], stmt_indent, False), order))
        offset = table.row_start(syntax.first_row(line))
        spans.append(Span(offset, offset, syntax.render(pops, indent, False), order))
        return spans

    def _extend_setstate(
        self, setstate: ast.stmt, sets: list[cst.BaseStatement], order: int
    ) -> list[Span]:
        unusual = "its __setstate__ is laid out in a way the fix cannot follow"
        body = self._body_of(setstate, unusual)
        syntax, table = self.syntax, self.syntax.table
        row = syntax.last_row(body.body[-1])
        text = syntax.render(sets, syntax.indent_of(body), False)
        if not table.has_newline(row):
            end = len(syntax.text)
            return [Span(end, end, syntax.newline + text, order)]
        offset = table.row_end(row)
        return [Span(offset, offset, text, order)]
