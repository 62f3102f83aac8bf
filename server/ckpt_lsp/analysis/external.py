"""Bases from installed packages we have no data for, read with astroid, bounded.

`class Net(MessagePassing)` (torch_geometric) or `class Head(SomeLibLayer)`:
the base is an `nn.Module` several classes up, in a package's source. astroid
finds and parses installed source without importing it (C extensions are never
loaded: `always_load_extensions` stays off), and we walk the ancestors
ourselves, naming each base through the module's imports *before* loading
anything, so a chain that reaches `torch.nn.Module` stops at our data instead
of parsing torch (one such load costs ~10 s here). Every lookup has a time
budget and a depth limit, and answers are memoized per qualified name.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

# Packages whose classes our data already describes (or that never hold models):
# never parsed with astroid.
_KNOWN_ROOTS = frozenset(
    {
        "torch",
        "torchvision",
        "torchaudio",
        "lightning",
        "pytorch_lightning",
        "sklearn",
        "transformers",
        "keras",
        "tensorflow",
        "numpy",
        "jax",
        "flax",
        "typing_extensions",
        "pydantic",
        "attr",
        "attrs",
        "builtins",
    }
) | frozenset(getattr(sys, "stdlib_module_names", ()))

Verdict = Callable[[str], "bool | None"]


class ExternalBases:
    """Answers "does this installed class derive from a model base?" within a budget."""

    def __init__(self, per_query_s: float = 1.5, total_s: float = 5.0, max_depth: int = 6) -> None:
        self.per_query_s = per_query_s
        self.remaining_s = total_s
        self.max_depth = max_depth
        self._memo: dict[str, str | None] = {}
        self._modules: dict[str, Any] = {}
        self._builder: Any = None

    def model_base(self, qualified: str, known: Verdict) -> str | None:
        """The known model base `qualified` derives from (e.g. "torch.nn.Module"), or None."""
        if qualified in self._memo:
            return self._memo[qualified]
        root = qualified.split(".", 1)[0]
        if root in _KNOWN_ROOTS or "." not in qualified or self.remaining_s <= 0:
            return None
        try:
            self._manager_instance()  # importing astroid is start-up cost, not query cost
        except Exception:
            return None
        started = time.perf_counter()
        deadline = started + min(self.per_query_s, self.remaining_s)
        try:
            result = self._walk(qualified, known, deadline, 0, set())
        except Exception:  # astroid can fail on any source; no answer is the safe answer
            result = None
        self.remaining_s -= time.perf_counter() - started
        self._memo[qualified] = result
        return result

    def _manager_instance(self) -> Any:
        """An astroid builder that applies no transforms and infers nothing at build time.

        astroid's brain plugins infer bases (the enum plugin does), which would load torch
        for any class deriving from it. And after building a module astroid infers the
        target of every `self.x = ...` to record instance attributes, which loads each
        module those values come from: 5.0 of the 5.5 s spent in astroid over the
        benchmark corpus. We read only module names and class bases, never attributes."""
        if self._builder is None:
            from astroid.builder import AstroidBuilder
            from astroid.manager import AstroidManager

            class BasesOnlyBuilder(AstroidBuilder):
                def delayed_assattr(self, node: Any) -> None:
                    return None

            manager = AstroidManager()
            manager.always_load_extensions = False  # never dlopen a C extension
            self._builder = BasesOnlyBuilder(manager, apply_transforms=False)
        return self._builder

    def _module(self, name: str) -> Any:
        """The parsed source of an installed module, or None (C extensions included)."""
        if name in self._modules:
            return self._modules[name]
        from astroid import modutils

        module = None
        try:
            path = modutils.file_from_modpath(name.split("."))
        except Exception:  # not found (astroid's finder never imports)
            path = None
        if path and path.endswith((".py", ".pyi")):
            try:
                module = self._manager_instance().file_build(path, name)
            except Exception:
                module = None
        self._modules[name] = module
        return module

    def _walk(
        self, qualified: str, known: Verdict, deadline: float, depth: int, seen: set[str]
    ) -> str | None:
        if depth > self.max_depth or qualified in seen or time.perf_counter() > deadline:
            return None
        seen.add(qualified)
        verdict = known(qualified)
        if verdict is not None:
            return qualified if verdict else None
        if qualified.split(".", 1)[0] in _KNOWN_ROOTS:
            return None
        cls = self._class_node(qualified, deadline)
        if cls is None:
            return None
        for base in self._base_names(cls):
            found = self._walk(base, known, deadline, depth + 1, seen)
            if found:
                return found
        return None

    def _class_node(self, qualified: str, deadline: float, hops: int = 0) -> Any:
        """The ClassDef `qualified` names, following re-exports (`from .x import Y`)."""
        from astroid import nodes

        module_name, _, name = qualified.rpartition(".")
        if not module_name or hops > 4 or time.perf_counter() > deadline:
            return None
        module = self._module(module_name)
        if module is None:
            return None
        found = module.locals.get(name)
        if not found:
            return None
        node = found[0]
        if isinstance(node, nodes.ClassDef):
            return node
        if isinstance(node, nodes.ImportFrom):
            source = _absolute(node, module)
            real = node.real_name(name)
            return self._class_node(f"{source}.{real}", deadline, hops + 1)
        return None

    @staticmethod
    def _base_names(cls: Any) -> list[str]:
        """Qualified names of a class's bases, from its module's imports, loading nothing."""
        from astroid import nodes

        module = cls.root()
        names: list[str] = []
        for base in cls.bases:
            if isinstance(base, nodes.Subscript):
                base = base.value
            dotted = base.as_string()
            head, _, rest = dotted.partition(".")
            suffix = f".{rest}" if rest else ""
            bound = module.locals.get(head)
            if not bound:
                continue
            node = bound[0]
            if isinstance(node, nodes.ImportFrom):
                names.append(f"{_absolute(node, module)}.{node.real_name(head)}{suffix}")
            elif isinstance(node, nodes.Import):
                names.append(f"{node.real_name(head)}{suffix}")
            elif isinstance(node, nodes.ClassDef):
                names.append(f"{module.name}.{dotted}")
        return names


def _absolute(node: Any, module: Any) -> str:
    if node.level:
        return str(module.relative_to_absolute_name(node.modname, node.level))
    return str(node.modname)
