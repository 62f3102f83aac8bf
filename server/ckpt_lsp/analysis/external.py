"""Bases from installed packages we have no data for, read from their source, bounded.

`class Net(MessagePassing)` (torch_geometric) or `class Head(SomeLibLayer)`:
the base is an `nn.Module` several classes up, in a package's source. astroid's
module finder locates installed source without importing it (nor any package
above it; C extensions are never loaded), and the file is read into the same
module facts as project files (stdlib `ast`, imports and class headers only:
astroid's own tree builder took 0.37 s per process over the benchmark corpus, and
each worker process pays it). We walk the ancestors ourselves, naming each base
through the module's imports *before* loading anything, so a chain that reaches
`torch.nn.Module` stops at our data instead of parsing torch (one such load costs
~10 s here). Every lookup has a time budget and a depth limit, and answers are
memoized per qualified name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ckpt_lsp.analysis.stdlib import STDLIB_MODULES
from ckpt_lsp.source import SourceError, decode_source, read_bytes

if TYPE_CHECKING:
    from ckpt_lsp.analysis.facts import ClassFacts, ModuleFacts

# Packages whose classes our data already describes (or that never hold models):
# never parsed with astroid.
_KNOWN_ROOTS = (
    frozenset(
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
    )
    | STDLIB_MODULES
)

Verdict = Callable[[str], "bool | None"]


class ExternalBases:
    """Answers "does this installed class derive from a model base?" within a budget."""

    def __init__(self, per_query_s: float = 1.5, total_s: float = 5.0, max_depth: int = 6) -> None:
        self.per_query_s = per_query_s
        self.remaining_s = total_s
        self.max_depth = max_depth
        self._memo: dict[str, str | None] = {}
        self._modules: dict[str, ModuleFacts | None] = {}

    def model_base(self, qualified: str, known: Verdict) -> str | None:
        """The known model base `qualified` derives from (e.g. "torch.nn.Module"), or None."""
        if qualified in self._memo:
            return self._memo[qualified]
        root = qualified.split(".", 1)[0]
        if root in _KNOWN_ROOTS or "." not in qualified or self.remaining_s <= 0:
            return None
        started = time.perf_counter()
        deadline = started + min(self.per_query_s, self.remaining_s)
        try:
            result = self._walk(qualified, known, deadline, 0, set())
        except Exception:  # any source may surprise a reader; no answer is the safe answer
            result = None
        self.remaining_s -= time.perf_counter() - started
        self._memo[qualified] = result
        return result

    def _module(self, name: str) -> ModuleFacts | None:
        """The facts of an installed module's source, or None (not found, a C extension,
        unreadable). Found by astroid's finder, which never imports."""
        if name in self._modules:
            return self._modules[name]
        from astroid import modutils

        from ckpt_lsp.analysis.facts import module_facts

        module = None
        try:
            path = modutils.file_from_modpath(name.split("."))
        except Exception:  # not found
            path = None
        if path and path.endswith((".py", ".pyi")):
            try:
                module = module_facts(path, name, decode_source(read_bytes(path)))
            except (SourceError, OSError, ValueError):
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
        found = self._class_node(qualified, deadline)
        if found is None:
            return None
        for base in _base_names(*found):
            result = self._walk(base, known, deadline, depth + 1, seen)
            if result:
                return result
        return None

    def _class_node(
        self, qualified: str, deadline: float, hops: int = 0
    ) -> tuple[ModuleFacts, ClassFacts] | None:
        """The class `qualified` names, following re-exports (`from .x import Y`, and
        `from .x import *`)."""
        module_name, _, name = qualified.rpartition(".")
        if not module_name or hops > 4 or time.perf_counter() > deadline:
            return None
        module = self._module(module_name)
        if module is None:
            return None
        cls = _own_class(module, name)
        if cls is not None:
            return module, cls
        target = _imported(module, name)
        if target:
            return self._class_node(target, deadline, hops + 1)
        cls = module.classes.get(name)
        if cls is not None:
            return module, cls
        if name in module.module_names or name in module.functions or name in module.assigns:
            return None
        for star in module.star_imports:
            found = self._class_node(f"{star}.{name}", deadline, hops + 1)
            if found is not None:
                return found
        return None


def _own_class(module: ModuleFacts, name: str) -> ClassFacts | None:
    """A class the module defines at top level. One defined in an `if`/`try` comes after
    an import of the same name: `try: from x import Y` / `except ImportError: class Y`
    binds the import first (and `if __name__ == "__main__": from .m import Y` in m itself
    comes after its class Y)."""
    cls = module.classes.get(name)
    return cls if cls is not None and cls.parsed.block.kind == "class" else None


def _imported(module: ModuleFacts, name: str) -> str:
    """What a `from x import name` binds (a module bound by `import x` is no class)."""
    target = module.imports.get(name, "")
    return "" if name in module.module_names else target


def _base_names(module: ModuleFacts, cls: ClassFacts) -> list[str]:
    """Qualified names of a class's bases, from its module's imports, loading nothing."""
    names: list[str] = []
    for dotted in cls.bases:
        if not dotted:
            continue
        head, _, rest = dotted.partition(".")
        suffix = f".{rest}" if rest else ""
        target = module.imports.get(head)
        if _own_class(module, head) is not None:
            names.append(f"{module.module}.{dotted}")
        elif target is not None:
            names.append(f"{target}{suffix}")
        elif head in module.classes:
            names.append(f"{module.module}.{dotted}")
        elif module.star_imports and head not in module.assigns:
            names += [f"{star}.{dotted}" for star in module.star_imports]
    return names
