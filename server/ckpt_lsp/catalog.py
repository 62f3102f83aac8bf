"""The hazard catalog: data (data/hazards.toml) read once into lookup tables.

Every entry maps a qualified name to a rule, a short noun phrase for messages and
the save paths it breaks; each is backed by a measured row of the truth table or
a runtime probe (tests/test_catalog_truth.py). Users extend it with
`extend-hazards` in their config.

Beside the hazards, the same file holds facts about libraries that decide whether a value
keeps one (`[library]`: consuming holders, generator methods, descriptors...), read and
checked by `library_facts()`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ckpt_lsp.rules import RULES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10
    import tomli as tomllib

DATA_FILE = Path(__file__).parent / "data" / "hazards.toml"
ALL_PATHS = ("pickle", "torch.save", "spawn", "deepcopy")


@dataclass(frozen=True)
class Hazard:
    """What a value is and which save paths it breaks."""

    rule: str
    what: str
    breaks: tuple[str, ...]
    returns: str = ""  # type name whose methods the catalog may list
    # keyword arguments that make the value harmless: tqdm(disable=True) keeps no stream
    safe_when: tuple[tuple[str, object], ...] = ()
    elements: str = ""  # what iterating it yields, when that does not pickle either
    # how __getstate__/__setstate__ can fix it: "recreate" (from its expression when it can),
    # "reset" (to None: re-creating it in the same process fails, e.g. lmdb), "none" (it does
    # not live in the instance __dict__: a child module, a registered hook)
    fix: str = "recreate"
    # a hazard only once the stored value has been called (np.vectorize with otypes)
    when_called: bool = False
    # methods whose bound form holds the value (`struct.Struct(fmt).unpack`)
    methods: tuple[str, ...] = ()
    # a factory's hazard that depends on its arguments (analysis.conditions.When), and the
    # (path, row, column) of the return that makes it
    when: tuple[tuple[Any, ...], ...] = ()
    origin: tuple[str, int, int] = ("", 0, 0)

    @property
    def fine(self) -> tuple[str, ...]:
        return tuple(p for p in ALL_PATHS if p not in self.breaks) + ("state_dict",)


@dataclass(frozen=True)
class Catalog:
    calls: Mapping[str, Hazard]  # calling the name yields a hazard
    values: Mapping[str, Hazard]  # referencing the name is a hazard
    holders: frozenset[str]  # calls whose result keeps its arguments
    object_array: frozenset[str]  # numpy constructors that take a dtype
    # hazards only when the first argument is a function (torch.compile(fn), not (module))
    function_arg: Mapping[str, Hazard] = field(default_factory=dict)
    # hazards only when a string argument ends with a suffix (np.load of an .npz)
    suffix_arg: Mapping[str, tuple[str, Hazard]] = field(default_factory=dict)
    # hazards only when a keyword argument is given (np.vectorize(f, otypes=...))
    keyword_arg: Mapping[str, tuple[str, Hazard]] = field(default_factory=dict)
    typed: Mapping[str, str] = field(default_factory=dict)  # harmless call -> its type
    methods_like: Mapping[str, str] = field(default_factory=dict)  # type -> module it mirrors

    def method(self, type_name: str, method: str) -> Hazard | None:
        """The hazard a method of a value of `type_name` returns, if the catalog knows one."""
        found = self.calls.get(f"{type_name}.{method}")
        if found is None and type_name in self.methods_like:
            found = self.calls.get(f"{self.methods_like[type_name]}.{method}")
        return found

    def extended(self, extra: Mapping[str, str]) -> Catalog:
        """A catalog with the user's `extend-hazards` (qualified name -> rule code) added."""
        if not extra:
            return self
        calls = dict(self.calls)
        for name, code in extra.items():
            rule = RULES[code]
            calls[name] = Hazard(code, f"a `{name}` result ({rule.name})", ALL_PATHS)
        return replace(self, calls=calls)


def _hazard(entry: Mapping[str, object]) -> Hazard:
    breaks = entry.get("breaks", list(ALL_PATHS))
    assert isinstance(breaks, list)
    safe = entry.get("safe_when", {})
    assert isinstance(safe, dict)
    return Hazard(
        rule=str(entry["rule"]),
        what=str(entry["what"]),
        breaks=tuple(str(b) for b in breaks),
        returns=str(entry.get("returns", "")),
        safe_when=tuple(sorted(safe.items())),
        elements=str(entry.get("elements", "")),
        fix=str(entry.get("fix", "recreate")),
        when_called=bool(entry.get("when_called", False)),
        methods=tuple(str(m) for m in entry.get("methods", [])),  # type: ignore[attr-defined]
    )


def parse_catalog(data: Mapping[str, object]) -> Catalog:
    calls: dict[str, Hazard] = {}
    values: dict[str, Hazard] = {}
    for entry in data.get("hazard", []):  # type: ignore[attr-defined]
        table = values if entry.get("kind", "call") == "value" else calls
        table[str(entry["name"])] = _hazard(entry)
    conditional = data.get("conditional_hazard", [])
    function_arg = {
        str(entry["name"]): _hazard(entry)
        for entry in conditional  # type: ignore[attr-defined]
        if entry.get("when_arg") == "function"
    }
    suffix_arg = {
        str(entry["name"]): (str(entry["when_arg"]).partition(":")[2], _hazard(entry))
        for entry in conditional  # type: ignore[attr-defined]
        if str(entry.get("when_arg", "")).startswith("suffix:")
    }
    keyword_arg = {
        str(entry["name"]): (str(entry["when_arg"]).partition(":")[2], _hazard(entry))
        for entry in conditional  # type: ignore[attr-defined]
        if str(entry.get("when_arg", "")).startswith("keyword:")
    }
    holders = frozenset(str(h["name"]) for h in data.get("holder", []))  # type: ignore[attr-defined]
    arrays = data.get("object_array", {})
    constructors = arrays.get("constructors", []) if isinstance(arrays, dict) else []
    typed_entries = data.get("typed", [])
    return Catalog(
        calls,
        values,
        holders,
        frozenset(str(c) for c in constructors),
        function_arg,
        suffix_arg,
        keyword_arg,
        typed={str(t["name"]): str(t["returns"]) for t in typed_entries},  # type: ignore[attr-defined]
        methods_like={
            str(t["returns"]): str(t["methods_like"])
            for t in typed_entries  # type: ignore[attr-defined]
            if "methods_like" in t
        },
    )


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return parse_catalog(_load_data())


@lru_cache(maxsize=1)
def _load_data() -> Mapping[str, object]:
    with DATA_FILE.open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class LibraryFacts:
    """Facts about libraries that the walker and the classifier apply beside the hazards
    (the `[library]` table and the dtype spellings of `[object_array]`)."""

    consuming: frozenset[str]  # holders that iterate their argument into a new container
    keeps_keywords: frozenset[str]  # consuming holders that also keep keyword values
    generator_methods: frozenset[str]  # nn.Module methods that return generators
    dict_views: frozenset[str]  # dict methods that return views
    descriptors: frozenset[str]  # class-level wrappers that attribute access unwraps
    caching_wrappers: frozenset[str]  # decorators that wrap a function in a new object
    context_decorators: frozenset[str]  # context objects whose call wraps a function
    returns_self: frozenset[str]  # methods that return their receiver
    unpicklable_decorators: frozenset[str]  # module-level decorators pickle cannot get past
    class_factories: frozenset[str]  # calls that create a class
    setattr_calls: frozenset[str]  # calls that set an attribute by name
    mutators: frozenset[str]  # methods that put their argument into their container
    type_aliases: Mapping[str, str]  # concrete type -> the type the catalog lists
    object_dtype_names: frozenset[str]  # qualified names that mean dtype=object
    object_dtype_strings: frozenset[str]  # strings that mean dtype=object
    dtype_positions: Mapping[str, int]  # constructor -> position of a positional dtype
    object_elements: frozenset[str] = frozenset()  # calls numpy stores as objects in a list
    string_dtype_strings: frozenset[str] = frozenset()  # spellings of numpy 2's StringDType
    string_dtype_calls: frozenset[str] = frozenset()  # calls that make a StringDType
    wrapped_whole: frozenset[str] = frozenset()  # calls whose result np.array wraps whole


class CatalogError(ValueError):
    """The catalog data is malformed."""


def _names(table: Mapping[str, object], key: str, where: str) -> frozenset[str]:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{where}.{key}: expected a non-empty list of strings")
    return frozenset(value)


def _mapping(table: Mapping[str, object], key: str, where: str, kind: type) -> dict[str, object]:
    value = table.get(key)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and type(v) is kind for k, v in value.items()
    ):
        raise CatalogError(f"{where}.{key}: expected a table of {kind.__name__} values")
    return dict(value)


_LIBRARY_KEYS = frozenset(
    {
        "consuming",
        "keeps_keywords",
        "generator_methods",
        "dict_views",
        "descriptors",
        "caching_wrappers",
        "context_decorators",
        "returns_self",
        "unpicklable_decorators",
        "class_factories",
        "setattr_calls",
        "mutators",
        "type_aliases",
    }
)


def parse_library_facts(data: Mapping[str, object]) -> LibraryFacts:
    """The `[library]` facts, checked: every key present with the right shape, none unknown."""
    library = data.get("library")
    arrays = data.get("object_array")
    if not isinstance(library, dict) or not isinstance(arrays, dict):
        raise CatalogError("the catalog needs a [library] and an [object_array] table")
    unknown = set(library) - _LIBRARY_KEYS
    if unknown:
        raise CatalogError(f"library: unknown keys {sorted(unknown)}")
    keeps = _names(library, "keeps_keywords", "library")
    consuming = _names(library, "consuming", "library")
    if not keeps <= consuming:
        raise CatalogError("library.keeps_keywords: every entry must be in library.consuming")
    return LibraryFacts(
        consuming=consuming,
        keeps_keywords=keeps,
        generator_methods=_names(library, "generator_methods", "library"),
        dict_views=_names(library, "dict_views", "library"),
        descriptors=_names(library, "descriptors", "library"),
        caching_wrappers=_names(library, "caching_wrappers", "library"),
        context_decorators=_names(library, "context_decorators", "library"),
        returns_self=_names(library, "returns_self", "library"),
        unpicklable_decorators=_names(library, "unpicklable_decorators", "library"),
        class_factories=_names(library, "class_factories", "library"),
        setattr_calls=_names(library, "setattr_calls", "library"),
        mutators=_names(library, "mutators", "library"),
        type_aliases=_mapping(library, "type_aliases", "library", str),  # type: ignore[arg-type]
        object_dtype_names=_names(arrays, "dtype_names", "object_array"),
        object_dtype_strings=_names(arrays, "dtype_strings", "object_array"),
        dtype_positions=_mapping(arrays, "dtype_positions", "object_array", int),  # type: ignore[arg-type]
        object_elements=_names(arrays, "object_elements", "object_array"),
        string_dtype_strings=_names(arrays, "string_dtype_strings", "object_array"),
        string_dtype_calls=_names(arrays, "string_dtype_calls", "object_array"),
        wrapped_whole=_names(arrays, "wrapped_whole", "object_array"),
    )


@lru_cache(maxsize=1)
def library_facts() -> LibraryFacts:
    return parse_library_facts(_load_data())
