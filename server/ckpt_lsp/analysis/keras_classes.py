"""Which classes are custom Keras layers/models, and whether `load_model` can locate them.

Keras 3 saves any layer (`model.save("m.keras")` writes its class name and module), but
`keras.models.load_model` only finds classes registered with
`register_keras_serializable`, passed in `custom_objects`, or living in Keras' own
packages. The knowledge of Keras' names is data (data/keras.toml).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts, dotted_name
from ckpt_lsp.analysis.index import ProjectIndex
from ckpt_lsp.analysis.names import qualify
from ckpt_lsp.analysis.nodes import walk

if TYPE_CHECKING:
    from ckpt_lsp.analysis.scope import ScopeResolver

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class KerasData:
    roots: tuple[str, ...]
    layer_bases: frozenset[str]
    model_bases: frozenset[str]
    layer_modules: tuple[str, ...]
    not_layers: frozenset[str]
    sequential: frozenset[str]
    register: frozenset[str]
    builtin_packages: frozenset[str]
    non_json_calls: tuple[str, ...]
    non_json_keras_calls: frozenset[str]
    function_modules: tuple[str, ...]
    serializers: frozenset[str]


@lru_cache(maxsize=1)
def keras_data() -> KerasData:
    with (Path(__file__).parent.parent / "data" / "keras.toml").open("rb") as fh:
        raw = tomllib.load(fh)
    # longest root first: `keras.src.layers.Layer` is under `keras.src`, not `keras`
    roots = tuple(sorted(raw["roots"], key=len, reverse=True))
    return KerasData(
        roots,
        frozenset(raw["layer_bases"]),
        frozenset(raw["model_bases"]),
        tuple(raw["layer_modules"]),
        frozenset(raw["not_layers"]),
        frozenset(raw["sequential"]),
        frozenset(raw["register"]),
        frozenset(raw["builtin_packages"]),
        tuple(raw["non_json_calls"]),
        frozenset(raw["non_json_keras_calls"]),
        tuple(raw["function_modules"]),
        frozenset(raw["serializers"]),
    )


def keras_member(qualified: str) -> str | None:
    """`layers.Dense` for `keras.layers.Dense` / `tensorflow.keras.layers.Dense`; else None."""
    for root in keras_data().roots:
        if qualified.startswith(root + "."):
            return qualified[len(root) + 1 :]
    return None


@dataclass(frozen=True)
class KerasClass:
    """A custom Keras class: what kind, its library base, its project bases nearest first."""

    kind: str  # "layer" | "model"
    library_base: str  # qualified, e.g. "keras.layers.Layer"
    automatic: bool  # the library base is Layer/Model itself (automatic config)
    project_bases: tuple[tuple[ModuleFacts, ClassFacts], ...]


def _library_kind(qualified: str) -> tuple[str, bool] | None:
    """("layer"|"model", automatic) for a Keras Layer/Model base; None for anything else."""
    member = keras_member(qualified)
    if member is None:
        return None
    data = keras_data()
    if member in data.layer_bases:
        return "layer", True
    if member in data.model_bases:
        return "model", True
    if member in data.sequential:
        return "model", False
    last = member.rsplit(".", 1)[-1]
    if last in data.not_layers or not last[:1].isupper():
        return None
    if any(member.startswith(m) for m in data.layer_modules):
        return ("model" if member.startswith("models.") else "layer"), False
    return None


def keras_class(
    facts: ModuleFacts, cls: ClassFacts, scope: ScopeResolver, depth: int = 0
) -> KerasClass | None:
    """The Keras identity of a class, through its project bases across files; None when it
    derives from no Keras Layer or Model."""
    for base in cls.bases:
        if not base:
            continue
        qualified, found = scope.resolve(base, facts)
        kind = _library_kind(qualified)
        # a class of the project (Keras' own sources, a vendored layer) is read for what it
        # says; only Layer/Model themselves are taken by name
        if kind is not None and (kind[1] or found is None):
            return KerasClass(kind[0], qualified, kind[1], ())
        if found is None or depth > 20 or found[1] is cls:
            continue
        inner = keras_class(found[0], found[1], scope, depth + 1)
        if inner is not None:
            chain = (found, *inner.project_bases)
            return KerasClass(inner.kind, inner.library_base, inner.automatic, chain)
    return None


def is_registered(facts: ModuleFacts, cls: ClassFacts, index: ProjectIndex | None = None) -> bool:
    """Decorated with `register_keras_serializable`, an alias of its result or a project
    function that calls it (in this module or another), or registered by a call at module
    level: `Cls = register_keras_serializable()(Cls)`."""
    value = facts.assigns.get(cls.name)
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Call):  # noqa: SIM102
        if _is_register(dotted_name(value.func.func), facts):
            return True
    for decorator in cls.decorators:
        target = dotted_name(decorator.func if isinstance(decorator, ast.Call) else decorator)
        if _is_register(target, facts) or _registers(facts, target):
            return True
        if index is None or not target:
            continue
        found = index.resolve_member(qualify(target, facts), facts.path)
        if found is not None and _registers(found[0], found[1]):
            return True
    return False


def _registers(facts: ModuleFacts, name: str) -> bool:
    """A module-level name that registers: `register = register_keras_serializable(...)`,
    or a function whose body calls it."""
    alias = facts.assigns.get(name)
    if isinstance(alias, ast.Call) and _is_register(dotted_name(alias.func), facts):
        return True
    if name not in facts.functions:
        return False
    node = facts.functions.get(name)
    return node is not None and "register_keras_serializable" in ast.unparse(node)


def _is_register(dotted: str, facts: ModuleFacts) -> bool:
    if not dotted:
        return False
    member = keras_member(qualify(dotted, facts))
    return member is not None and member in keras_data().register


def in_builtin_package(facts: ModuleFacts) -> bool:
    """Keras' own packages: load_model imports their classes by module path."""
    return facts.module.partition(".")[0] in keras_data().builtin_packages


_CUSTOM = re.compile(r"custom_objects|custom_object_scope|CustomObjectScope|get_custom_objects")
_WORD = re.compile(r"[A-Za-z_]\w*")


def mentions_custom_objects(text: str) -> bool:
    # substring tests first: the alternation above has no literal prefix for the regex
    # engine to skip ahead with, and every module of the project is asked once
    if "ustom_object" not in text and "CustomObjectScope" not in text:
        return False
    return _CUSTOM.search(text) is not None


def custom_object_names(facts: ModuleFacts) -> frozenset[str]:
    """Names a module hands to Keras as custom objects (`load_model(..., custom_objects=
    {...})`, `custom_object_scope(...)`, `get_custom_objects().update(...)`): every word
    inside the call's brackets, and inside the module-level dicts it names."""
    text = facts.text
    if not _CUSTOM.search(text):
        return frozenset()
    names: set[str] = set()
    for match in _CUSTOM.finditer(text):
        inside = _bracketed(text, match.end())
        if inside.strip() == "()":  # get_custom_objects().update({...}) or [...] = ...
            inside = text[match.end() : text.find("\n", match.end()) % (len(text) + 1)]
        words = set(_WORD.findall(inside))
        for word in list(words):
            value = facts.assigns.get(word)
            if value is not None:
                words.update(n.id for n in walk(value) if isinstance(n, ast.Name))
            imported = facts.imports.get(word)
            if imported is not None:  # `import Cls as Alias`: the class is Cls
                words.add(imported.rpartition(".")[2])
        names.update(words)
    return frozenset(names)


def _may_be_abstract(text: str) -> bool:
    """Whether a class's text can name `abstractmethod` or `NotImplementedError` (ASCII text
    spells an identifier only one way; other text may hold a compatibility form of one)."""
    if not text.isascii():
        return True
    return "abstractmethod" in text or "NotImplementedError" in text


def _bracketed(text: str, start: int, limit: int = 4000) -> str:
    """The text from `start` to the end of the bracket it is in (or of the next one opened)."""
    depth = 0
    end = min(len(text), start + limit)
    for i in range(start, end):
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth <= 0:
                return text[start : i + 1]
        elif char == "\n" and depth == 0 and i > start + 1:
            return text[start:i]
    return text[start:end]


def is_abstract(cls: ClassFacts) -> bool:
    """A base left for subclasses to finish: a method that only raises
    NotImplementedError, or an `@abstractmethod`. It is never built, saved or loaded alone."""
    if not _may_be_abstract(cls.parsed.block.text):
        return False  # no method need be parsed to know
    for name in cls.method_names_where(_may_be_abstract):  # only those may say so
        fn = cls.method(name)
        if fn is None:
            continue
        if any(dotted_name(d).endswith("abstractmethod") for d in fn.decorator_list):
            return True
        body = [s for s in fn.body if not _is_docstring(s)]
        if len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is not None:
            exc = body[0].exc
            target = exc.func if isinstance(exc, ast.Call) else exc
            if dotted_name(target) == "NotImplementedError":
                return True
    return False


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
