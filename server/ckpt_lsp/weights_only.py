"""The weights-only catalog: which values the default `torch.load` refuses, as data.

data/weights_only.toml lists kinds of values (a numpy scalar, a Namespace, a whole module...),
the calls, types and methods that produce them, what loads instead and the one quick fix
whose result certainly loads. tests/test_catalog_truth.py proves every entry at runtime.
Read once and validated here: a malformed entry is a ValueError naming it, at import of the
data, never a wrong finding later.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10
    import tomli as tomllib

DATA_FILE = Path(__file__).parent / "data" / "weights_only.toml"
# The quick fixes the fix engine knows how to write.
FIXES = frozenset({"", "item", "state_dict", "vars", "str", "to_container"})
ANY_RECEIVER = "*"
SPREAD_KEYWORDS = "**"  # among a call's keywords as written: a `**kw` spread passes some
# the key suffix under which a `no_args` method's result given arguments rides in the methods
# table (`arr.mean(axis=0)` is an array where `arr.mean()` is a scalar)
WITH_ARGS = "(...)"
# the key suffix under which a `sized` method's result without a size rides in the methods
# table (`rng.integers(5, 20)` is one numpy integer where `rng.integers(0, 5, size=3)` is an array)
UNSIZED = "(unsized)"
# what a sized method returns without a size when its first argument is a list or tuple of
# numbers or strings (`rng.choice([8, 16])` is one numpy item, `rng.choice(5)` a Python int)
UNSIZED_SEQUENCE = "(unsized sequence)"
# what a method returns given number arguments only (`s.quantile(0.05)`; `s.quantile([..])`
# is a Series)
WITH_NUMBERS = "(numbers)"
# the key suffix of what an item read with a slice gives, where it differs from one item
# (`counts.index[:20]` is an Index, `counts.index[0]` one label)
SLICED = "(slice)"


@dataclass(frozen=True)
class Refused:
    """A value the default `torch.load` (weights_only=True, torch >= 2.6) refuses."""

    kind: str  # the catalog kind ("numpy-scalar", "namespace", "module", ...)
    what: str  # noun phrase: "a numpy scalar"
    loadable: str  # what loads instead: "a Python number (`.item()`)"
    fix: str  # a certain quick fix (see FIXES), "" when none is certain
    stateful: bool = False  # Fabric.save converts it to its state_dict() itself
    # the project class it is an instance of (qualified), "" for library values: a
    # registration with add_safe_globals names it
    type_name: str = ""
    # for a `nested` kind built from a dict/list display (`OmegaConf.create({...})`): that
    # display, so `cfg.optim` is judged by what the key holds; not part of the identity
    shape: ast.expr | None = field(default=None, compare=False, hash=False, repr=False)
    # for an instance of a project class: the call that built it, so an attribute its
    # `__init__` sets is judged with what the call passes; not part of the identity
    built: ast.Call | None = field(default=None, compare=False, hash=False, repr=False)
    # for a pandas frame built from a dict display: the columns known to hold numbers (their
    # max and items are numpy scalars; a string column's are str); not part of the identity
    number_columns: frozenset[str] = field(
        default=frozenset(), compare=False, hash=False, repr=False
    )
    # for such a frame: the columns built from dates (`pd.date_range(...)`), whose max and
    # items are Timestamps
    time_columns: frozenset[str] = field(default=frozenset(), compare=False, hash=False, repr=False)
    # a container the project filled item by item (`self.cache["k"] = v`) holding such a
    # value: refused whole, yet none of its items is known to be of this kind
    holder: bool = field(default=False, compare=False, hash=False, repr=False)
    # for a dataclass instance: the fields the call that built it passes a refused value for,
    # judged with that call's locals (`BestConfig(score=score, **params)` in a search loop),
    # and (None) those it leaves to a literal default; part of the identity, so that two
    # constructions a name may hold are both kept (local_flow.collapse merges them)
    fields: tuple[tuple[str, Refused | None], ...] = field(default=(), repr=False)
    # for an instance of a project class: what the call that built it gives each `__init__`
    # parameter (what it passes, judged with that call's locals, else the default), so the
    # attributes `__init__` sets from them are known; a possibility of the local flow each
    # (object: the flow's types live above this module); empty when not known
    # part of the identity, so that two constructions a name may hold are both kept
    passed: tuple[tuple[str, object], ...] = field(default=(), repr=False)
    # for an instance of whichever of several project classes a registry key picks: each
    # class's instance (an attribute is what every class that sets it holds there); not part
    # of the identity
    options: tuple[Refused, ...] = field(default=(), compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class CallEntry:
    kind: str
    fix_args: int = -1  # the fix is certain with at most this many positional args; -1: always
    min_args: int = 0  # the kind holds only with at least this many positional arguments
    # the kind holds only when a positional argument is a numpy value (`round(x, 2)`, `max(a, b)`
    # keep numpy scalars)
    numpy_args: bool = False
    # the kind holds only when the call passes this keyword, as written (`average=None`:
    # sklearn's per-class scores are an array, the averaged ones a Python float)
    keyword: str = ""
    # for a call returning a tuple (`codes, uniques = pd.factorize(col)`): each element's kind,
    # so unpacked names are typed; empty when the result is no tuple of known length
    items: tuple[str, ...] = ()
    # the kind holds only when the call passes a size, as `size=` or positional argument N
    # (`np.random.randint(0, 9, size=3)` is an array, `np.random.randint(0, 9)` an int); -1: always
    sized: int = -1
    # a ufunc: an array for an array first argument, a numpy scalar for a number
    elementwise: bool = False
    # the keyword's value as written is the library's default: a call that does not pass the
    # keyword at all also returns the kind (`precision_recall_fscore_support` defaults to
    # `average=None`)
    keyword_default: bool = False
    # the function itself, passed as a value (`pool=torch.sum`), is a global the default load
    # refuses; false for the few that load (`set`, `Counter`)
    reference: bool = True


@dataclass(frozen=True)
class WeightsOnlyCatalog:
    kinds: Mapping[str, Refused]
    types: Mapping[str, str]  # qualified type -> kind
    calls: Mapping[str, CallEntry]  # qualified callable -> entry (types are calls too)
    values: Mapping[str, str]  # qualified name whose value is of a kind
    prefixes: tuple[tuple[str, str, frozenset[str]], ...]  # (prefix, kind, except)
    # (kind, method name) -> (kind returned, read as an attribute, only without arguments,
    # the position of a `size` argument it needs to return the kind, -1 when it needs none)
    methods: Mapping[tuple[str, str], tuple[str, bool, bool, int]]
    # kinds that only type a method's receiver: torch.save itself fails on them
    receiver_only: frozenset[str] = frozenset()
    # kinds that add_safe_globals cannot make loadable (a defaultdict with items)
    unregistrable: frozenset[str] = frozenset()
    # kind -> the globals whose registration makes it load (its types and `safe_globals`)
    registrations: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # kinds whose sums and differences are of the kind too (datetimes and timedeltas)
    sums: frozenset[str] = frozenset()
    # kinds whose nested dicts and lists are of the kind too (a DictConfig's sub-configs)
    nested: frozenset[str] = frozenset()
    # qualified class factory (`collections.namedtuple`) -> the kind of the instances of a
    # module-level class it builds
    factories: Mapping[str, str] = field(default_factory=dict)
    # qualified callables that return a Python number (`sklearn.metrics.log_loss`): loadable
    # themselves, and numpy again when combined with a numpy value
    numbers: frozenset[str] = frozenset()

    def kind(self, name: str) -> Refused | None:
        return self.kinds.get(name)

    def for_type(self, qualified: str) -> Refused | None:
        """The refusal of a value of the type `qualified` (an annotation, a constructor)."""
        kind = self.types.get(qualified) or self._prefix_kind(qualified)
        return self.kinds.get(kind) if kind else None

    def for_call(
        self, qualified: str, positional: int = 0, keywords: frozenset[str] = frozenset()
    ) -> CallEntry | None:
        """What calling `qualified` with `positional` arguments and `keywords` (as written,
        `average=None`) returns, if refused."""
        entry = self.calls.get(qualified)
        if entry is None:
            kind = self.types.get(qualified) or self._prefix_kind(qualified)
            entry = CallEntry(kind) if kind else None
        if entry is None or positional < entry.min_args:
            return None
        if entry.keyword and entry.keyword not in keywords and not _left_default(entry, keywords):
            return None
        if entry.sized >= 0 and not _given_size(entry.sized, positional, keywords):
            return None
        return entry

    def for_value(self, qualified: str) -> Refused | None:
        """What the object named `qualified` is, read and not called (`np.mean`)."""
        kind = self.values.get(qualified)
        if kind is None:
            called = self.calls.get(qualified)
            kind = "callable" if called is not None and called.reference else None
        return self.kinds.get(kind) if kind else None

    def size_position(self, kind: str, name: str) -> int:
        """Where the `size` a method needs to return its kind goes (`rng.normal(size=3)` is
        an array, `rng.normal()` a float); -1 when it needs none."""
        found = self.methods.get((kind, name))
        return found[3] if found is not None else -1

    def method(self, kind: str, name: str, attribute: bool, has_args: bool) -> str | None:
        """The kind a method call (or attribute read) on a value of `kind` returns; None
        when unknown. "" means a value that loads."""
        for receiver in (kind, ANY_RECEIVER):
            found = self.methods.get((receiver, name))
            if found is None:
                continue
            returns, is_attribute, no_args, _ = found
            if no_args and has_args and not is_attribute:
                given = self.methods.get((receiver, name + WITH_ARGS))
                return given[0] if given is not None else None
            if is_attribute != attribute:
                return None
            return returns
        return None

    def is_prefixed_class(self, qualified: str) -> bool:
        """Whether `qualified` names a class under a [[prefix]] module (`torch.nn.Linear`)."""
        return bool(self._prefix_kind(qualified))

    def _prefix_kind(self, qualified: str) -> str:
        """A capitalized class directly under a listed module (`torch.nn.Linear`)."""
        best = ("", "")
        for prefix, kind, excluded in self.prefixes:
            if not qualified.startswith(prefix) or qualified in excluded:
                continue
            rest = qualified[len(prefix) :].split(".")
            if prefix == "sklearn.":
                ok = len(rest) >= 2 and rest[-1][:1].isupper() and not rest[0].startswith("_")
            else:
                ok = len(rest) == 1 and rest[0][:1].isupper()
            if ok and len(prefix) > len(best[0]):
                best = (prefix, kind)
        return best[1]


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{DATA_FILE.name}: {where}: {message}")


def _kinds(data: Mapping[str, Any]) -> tuple[dict[str, Refused], dict[str, str]]:
    kinds: dict[str, Refused] = {}
    types: dict[str, str] = {}
    for entry in data.get("kind", []):
        name = str(entry.get("name", ""))
        for key in ("name", "what", "loadable", "probe", "loadable_probe"):
            if not str(entry.get(key, "")).strip():
                raise _fail(f"kind {name!r}", f"missing {key}")
        fix = str(entry.get("fix", ""))
        if fix not in FIXES:
            raise _fail(f"kind {name!r}", f"unknown fix {fix!r}")
        kinds[name] = Refused(
            name, str(entry["what"]), str(entry["loadable"]), fix, bool(entry.get("stateful"))
        )
        for type_name in entry.get("types", []):
            types[str(type_name)] = name
    return kinds, types


def _left_default(entry: CallEntry, keywords: frozenset[str]) -> bool:
    """The call leaves the entry's keyword out (no `**` spread may pass it), and the entry's
    value is the default."""
    name = entry.keyword.partition("=")[0] + "="
    if not entry.keyword_default or SPREAD_KEYWORDS in keywords:
        return False
    return not any(k.startswith(name) for k in keywords)


def _given_size(position: int, positional: int, keywords: frozenset[str]) -> bool:
    """Whether a call passes a size: positionally at `position`, or as `size=` (not None)."""
    return positional > position or any(
        k.startswith("size=") and k != "size=None" for k in keywords
    )


def parse(data: Mapping[str, Any]) -> WeightsOnlyCatalog:
    """The catalog from the TOML's tables; raises ValueError for an entry that is wrong."""
    kinds, types = _kinds(data)

    def known(where: str, kind: str, any_ok: bool = False) -> str:
        if kind not in kinds and not (any_ok and kind == ANY_RECEIVER):
            raise _fail(where, f"unknown kind {kind!r}")
        return kind

    calls = {
        str(e["name"]): CallEntry(
            known(f"call {e['name']!r}", str(e["kind"])),
            int(e.get("fix_args", -1)),
            int(e.get("min_args", 0)),
            bool(e.get("numpy_args", False)),
            str(e.get("keyword", "")),
            tuple(known(f"call {e['name']!r} items", str(k)) for k in e.get("items", [])),
            int(e.get("sized", -1)),
            elementwise=bool(e.get("elementwise", False)),
            keyword_default=bool(e.get("keyword_default", False)),
            reference=bool(e.get("reference", True)),
        )
        for e in data.get("call", [])
    }
    values = {
        str(e["name"]): known(f"value {e['name']!r}", str(e["kind"])) for e in data.get("value", [])
    }
    prefixes = tuple(
        (
            str(e["name"]),
            known(f"prefix {e['name']!r}", str(e["kind"])),
            frozenset(e.get("except", [])),
        )
        for e in data.get("prefix", [])
    )
    methods: dict[tuple[str, str], tuple[str, bool, bool, int]] = {}
    for e in data.get("method", []):
        where = f"method {e.get('kind')}.{e.get('name')}"
        returns = str(e.get("returns", ""))
        if returns:
            known(where, returns)
        key = (known(where, str(e["kind"]), any_ok=True), str(e["name"]))
        no_args, sized = bool(e.get("no_args")), int(e.get("sized", -1))
        methods[key] = (returns, bool(e.get("attribute")), no_args, sized)
        if e.get("unsized"):  # what a `sized` method returns without a size
            unsized = known(where, str(e["unsized"]))
            methods[(key[0], key[1] + UNSIZED)] = (unsized, False, False, -1)
        if e.get("unsized_sequence"):
            over = known(where, str(e["unsized_sequence"]))
            methods[(key[0], key[1] + UNSIZED_SEQUENCE)] = (over, False, False, -1)
        if e.get("with_numbers"):
            methods[(key[0], key[1] + WITH_NUMBERS)] = (
                known(where, str(e["with_numbers"])),
                False,
                False,
                -1,
            )
        if e.get("with_args"):  # what the method returns given arguments rides in the table
            methods[(key[0], key[1] + WITH_ARGS)] = (
                known(where, str(e["with_args"])),
                False,
                False,
                -1,
            )
    _inherit_methods(data, methods, known)
    receiver_only = frozenset(
        str(e["name"])
        for e in data.get("kind", [])
        if e.get("receiver_only") or e.get("shape_only")
    )
    unregistrable = frozenset(
        str(e["name"]) for e in data.get("kind", []) if e.get("registrable", True) is False
    )
    registrations = {
        str(e["name"]): frozenset(str(n) for n in [*e.get("types", []), *e.get("safe_globals", [])])
        for e in data.get("kind", [])
    }
    sums = frozenset(str(e["name"]) for e in data.get("kind", []) if e.get("sums"))
    nested = frozenset(str(e["name"]) for e in data.get("kind", []) if e.get("nested"))
    factories = {
        str(e["name"]): known(f"factory {e['name']!r}", str(e["kind"]))
        for e in data.get("factory", [])
    }
    return WeightsOnlyCatalog(
        kinds,
        types,
        calls,
        values,
        prefixes,
        methods,
        receiver_only,
        unregistrable,
        registrations,
        sums,
        nested,
        factories,
        frozenset(str(e["name"]) for e in data.get("number", [])),
    )


def _inherit_methods(
    data: Mapping[str, Any],
    methods: dict[tuple[str, str], tuple[str, bool, bool, int]],
    known: Any,
) -> None:
    """A kind `like` another has its methods too, unless it lists its own (a frame indexed by
    time is a frame whose `index` is a DatetimeIndex)."""
    for e in data.get("kind", []):
        if not e.get("like"):
            continue
        name, like = str(e["name"]), known(f"kind {e['name']!r} like", str(e["like"]))
        for (kind, method), found in list(methods.items()):
            if kind == like and (name, method) not in methods:
                methods[(name, method)] = found


@lru_cache(maxsize=1)
def weights_only_catalog() -> WeightsOnlyCatalog:
    """The catalog shipped with the package, read once."""
    with DATA_FILE.open("rb") as fh:
        return parse(tomllib.load(fh))


def registration_names(refused: Refused) -> frozenset[str]:
    """The qualified globals whose registration with `add_safe_globals` makes a refused value
    load: its project class, else its kind's types; none for a kind registration cannot fix."""
    catalog = weights_only_catalog()
    if refused.kind in catalog.unregistrable:
        return frozenset()
    if refused.type_name:
        return frozenset({refused.type_name})
    return catalog.registrations.get(refused.kind, frozenset())


class Refusal(str):
    """The phrase for a refused value ("a numpy scalar") that keeps the globals whose
    registration makes it load: a phrase built on it ("a container holding ...") is excused
    by the same registration."""

    types: frozenset[str]

    def __new__(cls, what: str, types: frozenset[str] = frozenset()) -> Refusal:
        phrase = super().__new__(cls, what)
        phrase.types = types
        return phrase

    @classmethod
    def of(cls, refused: Refused) -> Refusal:
        return cls(refused.what, registration_names(refused))

    def within(self, before: str = "", after: str = "") -> Refusal:
        """The phrase put in a longer one, keeping the globals."""
        return Refusal(f"{before}{self}{after}", self.types)


def registration_names_of(what: str) -> frozenset[str]:
    """The globals whose registration excuses a phrase: none when it does not say."""
    return what.types if isinstance(what, Refusal) else frozenset()


__all__ = [
    "SLICED",
    "UNSIZED",
    "CallEntry",
    "Refusal",
    "Refused",
    "WeightsOnlyCatalog",
    "parse",
    "registration_names",
    "registration_names_of",
    "weights_only_catalog",
]
