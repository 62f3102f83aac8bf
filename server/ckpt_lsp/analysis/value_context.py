"""The value context: what one expression holds, in one function of one module.

Three kinds of evidence, in order of cost:
- syntax: lambdas, nested functions and classes, generator expressions, and
  containers or holders (`functools.partial`, `map`, `defaultdict`) of those;
- names: calls resolved to qualified names through import aliases and looked up
  in the hazard catalog (data), methods of hazards through the catalog's types;
- flow: local variables, `with ... as` targets, `setattr`, tuple and annotated
  targets, generator methods, and factories or classes of the project (same file
  or another, through the index), each followed a bounded number of steps.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.assignments import (
    Binding,
    Env,
    LocalClass,
    LocalDef,
    WithTarget,
    class_level_value,
    is_generator,
    is_hook_registration,
    walk_function,
)
from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name, is_known_module
from ckpt_lsp.analysis.names import qualify, star_candidates
from ckpt_lsp.analysis.nodes import walk
from ckpt_lsp.analysis.value_hazards import (
    CALLABLE_BREAKS,
    INFERRING,
    OBJECT_ARRAY,
    STRING_ARRAY,
    canonical_type,
    container_word,
    dtype_given,
    generator_hazard,
    has_object_dtype,
    has_string_dtype,
    is_dict_value,
    is_known_value,
    is_object_dtype,
    is_string_dtype,
    lambda_hazard,
    made_safe,
    makes_class,
    mentions_suffix,
    module_hazard,
    object_elements,
    wrapped_whole,
)
from ckpt_lsp.catalog import ALL_PATHS, Catalog, Hazard, library_facts

if TYPE_CHECKING:
    from ckpt_lsp.analysis.classifier import Classifier

MAX_DEPTH = 4

_LIBRARY = library_facts()
_DICT_VIEWS = _LIBRARY.dict_views
# nn.Module methods that return generators; storing their result is a classic slip.
_GENERATOR_METHODS = _LIBRARY.generator_methods
# Holders that iterate their argument into a new container: they keep the elements,
# not the iterator, so `list(self.parameters())` is fine.
_CONSUMING = _LIBRARY.consuming
# Consuming holders that store their keyword arguments (dict(a=f)); sorted(key=f) does not.
_KEEPS_KEYWORDS = _LIBRARY.keeps_keywords
# Class-level wrappers that attribute access unwraps (the descriptor protocol).
_DESCRIPTORS = _LIBRARY.descriptors
_CACHING_WRAPPERS = _LIBRARY.caching_wrappers
_CONTEXT_DECORATORS = _LIBRARY.context_decorators
_RETURNS_SELF = _LIBRARY.returns_self
_UNPICKLABLE_DECORATORS = _LIBRARY.unpicklable_decorators
# Calls that create a class: inside a function the class is local and does not pickle
# (rows 83-85); at module level it is an ordinary, importable class.
_CLASS_FACTORIES = _LIBRARY.class_factories
_LITERALS = (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp)


def _class_lambda(value: ast.expr, ctx: ValueContext) -> bool:
    """`staticmethod(lambda ...)` in a class body: through the instance it is the plain
    lambda, which pickle.dumps refuses. (staticmethod(F.silu) is F.silu, and pickles. A bare
    class-level lambda or a classmethod is a bound method through the instance: dumps
    writes it as getattr(obj, "<lambda>"), and only loading it fails.)"""
    return (
        isinstance(value, ast.Call)
        and ctx.qualify(dotted_name(value.func)) == "builtins.staticmethod"
        and len(value.args) == 1
        and isinstance(value.args[0], ast.Lambda)
    )


@dataclass
class ValueContext:
    """Classifies expressions of one function (or module level) of one module: the names
    bound so far (`env`), the class's attributes already classified (`attrs`, `types`),
    and how deep the classifier has followed factories and classes to get here."""

    owner: Classifier
    facts: ModuleFacts
    cls: ClassFacts | None
    env: Env
    attrs: dict[str, Hazard]
    depth: int
    types: dict[str, str] = field(default_factory=dict)  # self attribute -> type name
    in_function: bool = True  # False for module-level values
    _seen: set[int] = field(default_factory=set)
    # Results of finished classifications, by node: `type_of` and `_method_of` ask again
    # for values already classified (a call chain asks for every receiver twice). A result
    # cut short by the cycle guard is not kept; the node is kept so its id stays unique.
    _memo: dict[int, tuple[ast.expr, Hazard | None]] = field(default_factory=dict)
    _cuts: int = 0

    @property
    def catalog(self) -> Catalog:
        return self.owner.catalog

    def qualify(self, dotted: str) -> str:
        return qualify(dotted, self.facts, self.env.imports)

    # -- entry -----------------------------------------------------------
    def classify(self, expr: ast.expr) -> Hazard | None:
        key = id(expr)
        known = self._memo.get(key)
        if known is not None:
            return known[1]
        if key in self._seen:
            self._cuts += 1
            return None
        cuts = self._cuts
        self._seen.add(key)
        try:
            found = self._classify(expr)
        finally:
            self._seen.discard(key)
        if self._cuts == cuts:
            self._memo[key] = (expr, found)
        return found

    def _classify(self, expr: ast.expr) -> Hazard | None:
        if isinstance(expr, ast.Lambda):
            return lambda_hazard()
        if isinstance(expr, ast.GeneratorExp):
            return generator_hazard("a generator expression")
        if isinstance(expr, ast.Name):
            return self._name(expr.id)
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr)
        if isinstance(expr, ast.Call):
            return self._call(expr)
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return self._container(expr.elts, container_word(expr))
        if isinstance(expr, ast.Dict):
            items = [v for v in expr.values if v is not None]
            items += [k for k in expr.keys if k is not None]
            return self._container(items, "a dict")
        if isinstance(expr, (ast.ListComp, ast.SetComp)):
            return self._container([expr.elt], container_word(expr))
        if isinstance(expr, ast.DictComp):
            return self._container([expr.value], "a dict")
        if isinstance(expr, ast.IfExp):
            return self.classify(expr.body) or self.classify(expr.orelse)
        if isinstance(expr, ast.BoolOp):
            for value in expr.values:
                found = self.classify(value)
                if found is not None:
                    return found
            return None
        if isinstance(expr, ast.NamedExpr):
            return self.classify(expr.value)
        if isinstance(expr, ast.Subscript):
            return self._subscript(expr)
        if isinstance(expr, ast.Starred):
            return self.classify(expr.value)
        return None

    def _returned_element(self, value: ast.expr, index: int) -> Hazard | None:
        """Element `index` of the tuple a project function returns (`return sock, port`)."""
        if not isinstance(value, ast.Call):
            return None
        dotted = dotted_name(value.func)
        func = self.facts.functions.get(dotted) if dotted else None
        if func is None and self.cls is not None and dotted.startswith("self."):
            func = self.cls.method(dotted[5:])
        if func is None or self.depth > MAX_DEPTH:
            return None
        _, returns = walk_function(func, self.facts.package, None)
        for ret, env in returns:
            if isinstance(ret, ast.Tuple) and index < len(ret.elts):
                ctx = ValueContext(self.owner, self.facts, None, env, {}, self.depth + 1)
                inner = ctx.classify(ret.elts[index])
                if inner is not None:
                    return replace(inner, what=f"{inner.what} (returned by `{dotted}()`)")
        return None

    def _class_attribute(self, owner: ClassFacts, name: str) -> Hazard | None:
        """A class-level value read through the instance or the class and stored on the
        instance: `GUARD = threading.Lock()` in the body, then `self.guard = self.GUARD`.
        (A class-level function is a bound method through self: that pickles.)"""
        value = class_level_value(owner, name)
        if value is None or isinstance(value, ast.Lambda) or self.depth > MAX_DEPTH:
            return None
        if _class_lambda(value, self):
            what = f"the lambda of the class attribute `{owner.name}.{name}`"
            return Hazard("CKPT003", what, CALLABLE_BREAKS)
        if isinstance(value, ast.Call) and self.qualify(dotted_name(value.func)) in _DESCRIPTORS:
            return None  # staticmethod(f) read through the class or instance is plain f
        found = self._at_module(self.facts).classify(value)
        if found is None:
            return None
        return replace(found, what=f"{found.what} (the class attribute `{owner.name}.{name}`)")

    def _owning_class(self, expr: ast.expr) -> ClassFacts | None:
        """`type(self)`, `self.__class__` or a class of this module by name."""
        if self.cls is not None:
            if (
                isinstance(expr, ast.Call)
                and isinstance(expr.func, ast.Name)
                and expr.func.id == "type"
                and len(expr.args) == 1
                and isinstance(expr.args[0], ast.Name)
                and expr.args[0].id == "self"
            ):
                return self.cls
            if (
                isinstance(expr, ast.Attribute)
                and expr.attr == "__class__"
                and isinstance(expr.value, ast.Name)
                and expr.value.id == "self"
            ):
                return self.cls
        if isinstance(expr, ast.Name) and expr.id not in self.env.bindings:
            return self.facts.classes.get(expr.id)
        return None

    def _at_module(self, facts: ModuleFacts) -> ValueContext:
        """A context for values at module level of `facts` (one step deeper)."""
        return ValueContext(self.owner, facts, None, Env(), {}, self.depth + 1, in_function=False)

    def _subscript(self, expr: ast.Subscript) -> Hazard | None:
        """`ACTIVATIONS["quick_gelu"]`: the entry of a dict literal (here or in another
        module) under a constant key; else a method of a typed value (`h5file["x"]`)."""
        key = expr.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, int):
            element = self._returned_element(expr.value, key.value)
            if element is not None:
                return element
        if isinstance(key, ast.Constant):
            found = self._dict_literal(expr.value)
            if found is not None:
                ctx, literal = found
                for k, v in zip(literal.keys, literal.values):
                    if isinstance(k, ast.Constant) and k.value == key.value:
                        return ctx.classify(v)
                return None
        return self._method_of(expr.value, "__getitem__")

    def _dict_literal(self, expr: ast.expr, hops: int = 0) -> tuple[ValueContext, ast.Dict] | None:
        if isinstance(expr, ast.Dict):
            return self, expr
        if not isinstance(expr, ast.Name) or hops > 4:
            return None
        binding = self.env.bindings.get(expr.id)
        if isinstance(binding, ast.expr):
            return self._dict_literal(binding, hops + 1)
        if binding is not None:
            return None
        found = self._module_value(expr.id)
        return found[0]._dict_literal(found[1], hops + 1) if found is not None else None

    def _module_value(self, name: str) -> tuple[ValueContext, ast.expr] | None:
        """The value of a module-level `NAME = ...`, here or imported from a project module,
        with a context to classify it in."""
        facts = self.facts
        if name not in facts.assigns and name in facts.imports and self.owner.index is not None:
            resolved = self.owner.index.resolve_member(facts.imports[name], facts.path)
            if resolved is None:
                return None
            facts, name = resolved
        value = facts.assigns.get(name)
        if value is None:
            return None
        return self._at_module(facts), value

    def _container(self, items: list[ast.expr], word: str) -> Hazard | None:
        for item in items:
            inner = self.classify(item)
            if inner is not None and inner.rule != "CKPT004" and not inner.when_called:
                what = f"{word} holding {inner.what}"
                # a conditional hazard stays conditional inside a container
                return Hazard(inner.rule, what, inner.breaks, when=inner.when, origin=inner.origin)
        return None

    # -- names -----------------------------------------------------------
    def _name(self, name: str) -> Hazard | None:
        binding = self.env.bindings.get(name)
        if self.env.hooked.get(name):
            # module.register_forward_pre_hook(local_fn): the module's hook dict holds it
            held = self._container(self.env.hooked[name], "a module whose hook dict holds")
            if held is not None:
                return replace(held, what=held.what.replace(" holding ", " ", 1), fix="none")
        if binding is not None:
            return self._binding(name, binding)
        if name in self.env.imports:
            if name in self.env.modules:
                return module_hazard(self.env.imports[name])
            return self._value(self.env.imports[name])
        if name in self.facts.module_names:
            return module_hazard(self.facts.imports.get(name, name))
        found = self._module_member(self.facts, name)
        if found is not None or name in self.facts.assigns:
            return found
        return self._value(self.qualify(name))

    def _module_member(self, facts: ModuleFacts, name: str) -> Hazard | None:
        """A module-level name of this module or, through its imports, of another one."""
        value = facts.assigns.get(name)
        if value is not None:
            if isinstance(value, ast.Lambda):
                # pickle finds functions by __qualname__, and a lambda's is "<lambda>"
                return Hazard("CKPT003", f"the module-level lambda `{name}`", CALLABLE_BREAKS)
            if self.depth > MAX_DEPTH:
                return None
            module_ctx = self._at_module(facts)
            inner = module_ctx.classify(value)
            if inner is None:
                return None
            return replace(inner, what=f"{inner.what} (the module-level `{name}`)")
        func = facts.functions.get(name)
        if func is not None:
            library = self._library_decorator(facts, func)
            if library:
                what = f"`{name}`, made a `{library}` object by its decorator"
                return Hazard("CKPT009", what, CALLABLE_BREAKS)
            decorator = self._unwrapped_decorator(facts, func)
            if decorator:
                what = f"`{name}`, replaced by `{decorator}`'s wrapper (no functools.wraps)"
                return Hazard("CKPT003", what, CALLABLE_BREAKS)
            return None
        target = facts.imports.get(name)
        index = self.owner.index
        if target is None or index is None or self.depth > MAX_DEPTH:
            return None
        resolved = index.resolve_member(target, facts.path)
        if resolved is None or resolved[0] is facts:
            return None
        inner_ctx = self._at_module(resolved[0])
        return inner_ctx._module_member(resolved[0], resolved[1])

    def _library_decorator(
        self, facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> str:
        """`@torch.jit.script` or `@np.vectorize` on a module function: what the module
        attribute holds is an object pickle cannot store (or find by name)."""
        for deco in func.decorator_list:
            dotted = dotted_name(deco)
            if dotted and qualify(dotted, facts) in _UNPICKLABLE_DECORATORS:
                return dotted
        return ""

    def _unwrapped_decorator(
        self, facts: ModuleFacts, func: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> str:
        """The name of a project decorator on `func` that returns a nested function without
        functools.wraps: the module attribute then is a closure pickle cannot find."""
        for deco in func.decorator_list:
            dotted = dotted_name(deco)
            decorator = facts.functions.get(dotted) if dotted else None
            if decorator is None:
                continue
            nested = {
                stmt.name: stmt
                for stmt in walk(decorator)
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                and stmt is not decorator
            }
            for node in walk(decorator):
                if (
                    isinstance(node, ast.Return)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in nested
                    and not any(
                        dotted_name(d.func if isinstance(d, ast.Call) else d).endswith("wraps")
                        for d in nested[node.value.id].decorator_list
                    )
                ):
                    return dotted
        return ""

    def _binding(self, name: str, binding: Binding) -> Hazard | None:
        if isinstance(binding, LocalDef):
            return Hazard("CKPT003", f"the nested function `{name}`", CALLABLE_BREAKS)
        if isinstance(binding, LocalClass):
            return Hazard("CKPT003", f"the local class `{name}`", CALLABLE_BREAKS)
        if isinstance(binding, WithTarget):
            inner = self.classify(binding.expr)
            if inner is not None and inner.rule == "CKPT005":
                return None  # a lock's __enter__ returns a bool, not the lock
            return inner
        if isinstance(binding, ast.expr):
            found = self.classify(binding)
            if found is None and self.env.contents.get(name):
                word = (
                    container_word(binding)
                    if isinstance(binding, (ast.List, ast.Tuple, ast.Set))
                    else "a container"
                )
                if isinstance(binding, (ast.Dict, ast.DictComp)):
                    word = "a dict"
                return self._container(self.env.contents[name], word)
            return found
        return None

    def _value(self, qualified: str) -> Hazard | None:
        hazard = self.catalog.values.get(qualified)
        if hazard is not None:
            return hazard
        if is_known_module(qualified) and "." in qualified:
            return module_hazard(qualified)
        return None

    def _attribute(self, expr: ast.Attribute) -> Hazard | None:
        if (
            self.cls is not None
            and isinstance(expr.value, ast.Name)
            and expr.value.id
            in (
                "self",
                "cls",
            )
        ):
            found = self.attrs.get(expr.attr)
            if found is None and expr.attr not in self.types:
                found = self._class_attribute(self.cls, expr.attr)
            return found
        if expr.attr == "__traceback__":
            return Hazard("CKPT006", "an exception's traceback", ALL_PATHS)
        owner = self._owning_class(expr.value)
        if owner is not None:
            value = class_level_value(owner, expr.attr)
            if isinstance(value, ast.Lambda):
                # through the class a lambda is a plain function named C.<lambda>
                return Hazard(
                    "CKPT003",
                    f"the class-level lambda `{owner.name}.{expr.attr}`",
                    CALLABLE_BREAKS,
                )
            found = self._class_attribute(owner, expr.attr)
            if found is not None:
                return found
        bound = self._bound_method(expr)
        if bound is not None:
            return bound
        dotted = dotted_name(expr)
        if not dotted:
            return None
        head = dotted.split(".")[0]
        if head in self.env.bindings:
            return None
        return self._value(self.qualify(dotted))

    def _bound_method(self, expr: ast.Attribute) -> Hazard | None:
        """`struct.Struct(fmt).unpack`, not called: a bound method pickles its object."""
        if isinstance(expr.value, ast.Name) and expr.value.id in self.facts.module_names:
            return None
        owner = self.classify(expr.value)
        if owner is None or expr.attr not in owner.methods:
            return None
        what = f"the bound method `.{expr.attr}` of {owner.what}"
        return Hazard(owner.rule, what, owner.breaks, fix=owner.fix)

    # -- calls -----------------------------------------------------------
    def _call(self, call: ast.Call) -> Hazard | None:
        func = call.func
        dotted = dotted_name(func)
        if dotted:
            found = self._call_by_name(call, dotted)
            if found is not None:
                return found
        if isinstance(func, ast.Attribute):
            method = func.attr
            if (
                method in _DICT_VIEWS
                and not call.args
                and not call.keywords
                and self.classify(func.value) is None
            ):
                return Hazard("CKPT006", f"a dict view (`.{method}()`)", ALL_PATHS)
            if method in _GENERATOR_METHODS and not is_known_value(func.value):
                return generator_hazard(f"a generator from `.{method}()`")
            if method == "astype" and call.args and is_object_dtype(call.args[0], self):
                return OBJECT_ARRAY
            if method == "astype" and call.args and is_string_dtype(call.args[0], self):
                return STRING_ARRAY
            if is_hook_registration(method):
                # the handle keeps the hooks dict, and with it the hook (row 145 vs 144)
                args = [*call.args, *(kw.value for kw in call.keywords)]
                held = self._container(args, "a hook handle")
                # the hook itself stays in the module's hook dict: no __getstate__ fix
                return replace(held, fix="none") if held is not None else None
            if (
                self.cls is not None
                and isinstance(func.value, ast.Name)
                and func.value.id == "self"
            ):
                own = self.cls.method(method)
                if own is not None:
                    return self.owner.factory_hazard(
                        self.facts, own, f"self.{method}", self.depth, call
                    )
            if (
                isinstance(func.value, ast.Name)
                and func.value.id == "self"
                and self.types.get(method) in _CONTEXT_DECORATORS
                and call.args
            ):  # self.ctx = torch.no_grad() earlier; self.ctx(self.f) wraps f
                return Hazard("CKPT003", f"a function wrapped by `self.{method}`", CALLABLE_BREAKS)
            if method in _RETURNS_SELF:
                receiver = self.classify(func.value)
                if receiver is not None and receiver.rule not in ("CKPT004", "CKPT007"):
                    return receiver
            return self._method_of(func.value, method)
        if isinstance(func, ast.Call) and call.args and self._decorates(func):
            return self._wrapped(func)
        if isinstance(func, ast.Call) and call.args and self._is_function(call.args[0]):
            # functools.lru_cache()(self.method), torch.no_grad()(self.predict): the wrapper
            # is a new function that pickle cannot find by name (rows 77-78)
            return Hazard("CKPT003", "a function wrapped at runtime", CALLABLE_BREAKS)
        return None

    def _call_by_name(self, call: ast.Call, dotted: str) -> Hazard | None:
        head = dotted.split(".")[0]
        binding = self.env.bindings.get(head)
        if binding is not None:
            if isinstance(binding, LocalClass) and head == dotted:
                return Hazard(
                    "CKPT003", f"an instance of the local class `{head}`", CALLABLE_BREAKS
                )
            if isinstance(binding, LocalDef) and head == dotted:
                if is_generator(binding.node):
                    return generator_hazard(f"a generator from `{head}()`")
                # a local factory: what it returns is local too (`make_hook()` -> closure)
                return self.owner.factory_hazard(self.facts, binding.node, head, self.depth, call)
            if (
                head == dotted
                and isinstance(binding, ast.Call)
                and call.args
                and self._decorates(binding)
            ):  # no_grad = torch.no_grad(); no_grad(self.f)
                return self._wrapped(binding)
            if head == dotted and isinstance(binding, ast.expr):
                made = self.classify(binding)
                if made is not None and made.what.startswith("a class made in a function"):
                    return Hazard("CKPT003", f"an instance of {made.what[2:]}", CALLABLE_BREAKS)
            return None  # a method of a local variable: handled by _method_of
        if head in ("self", "cls") and "." in dotted:
            return None
        owner_name, _, member = dotted.partition(".")
        if member and "." not in member and owner_name in self.facts.classes:
            own = self.facts.classes[owner_name].method(member)
            if own is not None:  # a staticmethod/classmethod factory: `Model._connect(p)`
                return self.owner.factory_hazard(self.facts, own, dotted, self.depth, call)
        qualified = self.qualify(dotted)
        names = [qualified]
        if "." not in dotted and head not in self.facts.imports and self.facts.star_imports:
            names += star_candidates(dotted, self.facts)
        for name in names:
            found = self._catalog_call(call, name)
            if found is not None:
                return found
        found = self._project_call(dotted, qualified, call)
        if found is not None:
            return found
        if qualified == "builtins.iter" and len(call.args) == 1:
            return self._method_of(call.args[0], "__iter__")  # iter(DataLoader(...))
        return self._constructed_with(call, qualified)

    def _constructed_with(self, call: ast.Call, qualified: str) -> Hazard | None:
        """`LambdaLR(opt, lambda s: 1.0)`, `DataLoader(ds, collate_fn=lambda b: b)`: an object
        built (a Capitalized callee, by Python's naming convention) from a callable or a
        resource keeps it. Iterators are left out: constructors consume them
        (`nn.ModuleList(Block() for _ in range(4))`)."""
        name = qualified.rsplit(".", 1)[-1]
        if not name[:1].isupper():
            return None
        for arg in [*call.args, *(kw.value for kw in call.keywords)]:
            inner = self.classify(arg)
            if (
                inner is not None
                and inner.rule not in ("CKPT004", "CKPT006")
                and not inner.when_called
            ):
                what = f"a `{name}` holding {inner.what}"
                return Hazard(inner.rule, what, inner.breaks, when=inner.when, origin=inner.origin)
        return None

    def _catalog_call(self, call: ast.Call, qualified: str) -> Hazard | None:
        catalog = self.catalog
        if qualified in catalog.object_array:
            inferred = self._array_of(call, qualified)
            if inferred is not None:
                return inferred
            if has_object_dtype(call, qualified, self):
                return OBJECT_ARRAY
            if has_string_dtype(call, qualified, self):
                return STRING_ARRAY
        hazard = catalog.calls.get(qualified)
        if hazard is not None:
            return None if made_safe(call, hazard) else hazard
        if qualified in _CACHING_WRAPPERS and call.args and self._is_function(call.args[0]):
            return Hazard("CKPT003", f"a function wrapped by `{qualified}`", CALLABLE_BREAKS)
        conditional = catalog.function_arg.get(qualified)
        if conditional is not None and call.args and self._is_function(call.args[0]):
            return conditional
        by_keyword = catalog.keyword_arg.get(qualified)
        if by_keyword is not None and any(kw.arg == by_keyword[0] for kw in call.keywords):
            args = [*call.args, *(kw.value for kw in call.keywords)]
            return self._container(args, f"a `{qualified.rsplit('.', 1)[-1]}`") or by_keyword[1]
        by_suffix = catalog.suffix_arg.get(qualified)
        if by_suffix is not None and mentions_suffix(call, by_suffix[0]):
            return by_suffix[1]
        if self.in_function and qualified in _CLASS_FACTORIES and makes_class(call, qualified):
            return Hazard(
                "CKPT003", f"a class made in a function by `{qualified}()`", CALLABLE_BREAKS
            )
        if qualified in catalog.holders:
            word = f"a `{qualified.rsplit('.', 1)[-1]}`"
            if qualified in _CONSUMING:
                # list(x), dict(x) copy the elements of x: only literal elements and keyword
                # values end up inside (dict(os.environ) is a plain dict)
                literal = [a for a in call.args if isinstance(a, _LITERALS)]
                for arg in call.args:
                    consumed = self.classify(arg)
                    if consumed is not None and consumed.elements:  # list(os.scandir(d))
                        return Hazard(
                            consumed.rule, f"{word} of {consumed.elements}", consumed.breaks
                        )
                kept = [kw.value for kw in call.keywords] if qualified in _KEEPS_KEYWORDS else []
                return self._container(literal + kept, word)
            return self._container(list(call.args) + [kw.value for kw in call.keywords], word)
        return None

    def _array_of(self, call: ast.Call, qualified: str) -> Hazard | None:
        """`np.array(x)` without a dtype: numpy infers object from what x holds (None, dates,
        Paths, Decimals, huge ints) or wraps x whole in a 0-d object array (a set, a map),
        and an array holding a generator, a dict view or a lambda does not pickle at all."""
        if qualified.rsplit(".", 1)[-1] not in INFERRING or not call.args:
            return None
        arg = call.args[0]
        if dtype_given(call, qualified) and not has_object_dtype(call, qualified, self):
            return None
        held = self.classify(arg)
        if held is not None and held.rule in ("CKPT003", "CKPT006") and not self._foreign_view(arg):
            return Hazard(held.rule, f"an object array around {held.what}", held.breaks)
        if dtype_given(call, qualified):
            return None
        whole = wrapped_whole(arg, self)
        if whole:
            return replace(OBJECT_ARRAY, what=f"{OBJECT_ARRAY.what} (numpy wraps {whole} whole)")
        element = object_elements(arg, self)
        if element:
            what = f"{OBJECT_ARRAY.what} (its elements include {element})"
            return replace(OBJECT_ARRAY, what=what)
        return None

    def _foreign_view(self, arg: ast.expr) -> bool:
        """`.keys()` of something not known to be a dict: `df.keys()` is a pandas Index,
        which numpy converts like any array."""
        func = arg.func if isinstance(arg, ast.Call) else None
        return (
            isinstance(func, ast.Attribute)
            and func.attr in _DICT_VIEWS
            and not is_dict_value(func.value, self)
        )

    def _decorates(self, factory: ast.Call) -> bool:
        """`torch.no_grad()`: a context object that, called on a function, wraps it."""
        dotted = dotted_name(factory.func)
        if not dotted or dotted.split(".")[0] in self.env.bindings:
            return False
        return self.qualify(dotted) in _CONTEXT_DECORATORS

    def _wrapped(self, factory: ast.Call) -> Hazard:
        name = dotted_name(factory.func)
        what = f"a function wrapped by `{name}()` (a local wrapper pickle cannot find)"
        return Hazard("CKPT003", what, CALLABLE_BREAKS)

    def _is_function(self, expr: ast.expr) -> bool:
        """A lambda, a name bound by `def` (here or at module level) or a method of this
        class (`self.predict`), not a module object."""
        if isinstance(expr, ast.Lambda):
            return True
        if isinstance(expr, ast.Attribute) and expr.attr in ("forward", "__call__"):
            return True  # torch.compile(self.model.forward): a bound method, not a module
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "self"
            and self.cls is not None
        ):
            return self.cls.method(expr.attr) is not None
        if isinstance(expr, ast.Name):
            binding = self.env.bindings.get(expr.id)
            if binding is not None:
                return isinstance(binding, LocalDef)
            return expr.id in self.facts.functions
        return False

    def _project_call(self, dotted: str, qualified: str, call: ast.Call) -> Hazard | None:
        facts = self.facts
        if "." not in dotted:
            func = facts.functions.get(dotted)
            if func is not None:
                return self.owner.factory_hazard(facts, func, dotted, self.depth, call)
            cls = facts.classes.get(dotted)
            if cls is not None:
                if self.cls is not None and cls.name == self.cls.name:
                    return None
                return self.owner.instance_hazard(facts, cls, self.depth, call)
        index = self.owner.index
        if index is None or qualified == dotted and "." not in dotted:
            return None
        found = index.resolve_member(qualified, facts.path)
        if found is None:
            return None
        mod, member = found
        func = mod.functions.get(member)
        if func is not None:
            return self.owner.factory_hazard(mod, func, member, self.depth, call)
        if member in mod.classes:
            return self.owner.instance_hazard(mod, mod.classes[member], self.depth, call)
        return None

    def _method_of(self, receiver: ast.expr, method: str) -> Hazard | None:
        kind = self.type_of(receiver)
        if not kind:
            return None
        return self.catalog.method(kind, method)

    def type_of(self, expr: ast.expr, depth: int = 0) -> str:
        """The type a value has, as far as the catalog cares: a hazard's `returns`, or the
        class a call constructs (`Path(p)` -> pathlib.Path, so `Path(p).open()` is a file)."""
        if depth > 6:
            return ""
        hazard = self.classify(expr)
        if hazard is not None and hazard.returns:
            return hazard.returns
        if isinstance(expr, ast.Call):
            dotted = dotted_name(expr.func)
            if dotted and dotted.split(".")[0] not in self.env.bindings:
                qualified = self.qualify(dotted)
                return self.catalog.typed.get(qualified) or canonical_type(qualified)
            return ""
        if isinstance(expr, (ast.Dict, ast.DictComp)):
            return "builtins.dict"  # so `np.array(self.vocab.keys())` knows a dict view
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return self.type_of(expr.left, depth + 1)  # path / "name"
        if isinstance(expr, ast.Name):
            binding = self.env.bindings.get(expr.id)
            if isinstance(binding, ast.expr):
                return self.type_of(binding, depth + 1)
            if isinstance(binding, WithTarget):
                return self.type_of(binding.expr, depth + 1)
            found = self._module_value(expr.id) if binding is None else None
            if found is not None:  # VERSION_RE = re.compile(...) at module level
                return found[0].type_of(found[1], depth + 1)
            return ""
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "self"
        ):
            return self.types.get(expr.attr, "")
        return ""
