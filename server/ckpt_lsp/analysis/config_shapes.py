"""What an OmegaConf config holds where: the shape (dict and list displays) it was built from.

`cfg.data.augment` of `OmegaConf.create(DEFAULT_CFG)` is a ListConfig when the YAML text says
`augment: [rotate_z, jitter]` (a leaf's value is a plain Python value that loads). The shape is
the config's display (`OmegaConf.create({...})`), the YAML text of a string literal or of a
module-level string constant (read by a small block-YAML reader: anything it does not know
makes the whole text unknown), or, for `OmegaConf.merge(a, b, ...)`, its arguments' shapes
laid over one another (an argument whose shape is not known, `from_dotlist(...)`, changes
values, not which keys hold containers).

A structured config (`OmegaConf.structured(TrainConfig)`) is typed by its dataclass: a field
annotated with an Enum or a `Path` hands back the member or the path (also after a merge
gives it a string), and `OmegaConf.to_container` keeps them; measured with omegaconf 2.4,
torch 2.13. Such a field is a `RefusedLeaf` of the shape, and the shape a `StructuredDict`
that names the dataclass (`OmegaConf.to_object` builds it).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ckpt_lsp.weights_only import Refused

_SHAPES = (ast.Dict, ast.List, ast.Tuple)
_CREATE = "omegaconf.OmegaConf.create"
_STRUCTURED = "omegaconf.OmegaConf.structured"
# annotations OmegaConf makes a ListConfig (a TupleConfig) or a DictConfig of
_LISTS = frozenset(
    {"typing.List", "builtins.list", "typing.Tuple", "builtins.tuple", "typing.Sequence"}
    | {"collections.abc.Sequence"}
)
_DICTS = frozenset({"typing.Dict", "builtins.dict", "typing.Mapping", "collections.abc.Mapping"})
_MERGES = frozenset({"omegaconf.OmegaConf.merge", "omegaconf.OmegaConf.unsafe_merge"})
YAML_LOADERS = frozenset({"yaml.safe_load", "yaml.full_load", "yaml.load"})
# PyYAML's implicit timestamps (YAML 1.1), unquoted: a date, or a date and time
_YAML_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}$|^\d{4}-\d{1,2}-\d{1,2}(?:[Tt]|[ \t]+)\d{1,2}:\d{2}:\d{2}"
    r"(?:\.\d*)?(?:[ \t]*(?:Z|[-+]\d{1,2}(?::\d{2})?))?$"
)
_KEY = re.compile(r"""^(?P<key>[A-Za-z_][\w.-]*|"[^"]*"|'[^']*')\s*:(?:\s+(?P<value>.*))?$""")
# YAML features the reader leaves alone: anchors, aliases, tags, merge keys, documents
_UNKNOWN = re.compile(r"(^|\s)[&*!]|<<|^(---|\.\.\.)\s*\S|^%")

Shape = ast.expr
ShapeOf = Callable[[ast.expr], "Shape | None"]


class RefusedLeaf(ast.expr):
    """A typed field of a structured config whose value the default load refuses."""

    _fields = ()

    def __init__(self, refused: Refused) -> None:
        super().__init__()
        self.refused = refused


class StructuredDict(ast.Dict):
    """The shape of a structured config: its fields, and the dataclass that types them."""

    def __init__(self, keys: list[ast.expr | None], values: list[ast.expr], type_name: str):
        super().__init__(keys=keys, values=values)
        self.type_name = type_name


def config_shape(
    qualified: str,
    call: ast.Call,
    shape_of: ShapeOf,
    module_text: Callable[[ast.expr], str | None],
    class_shape: ShapeOf,
) -> Shape | None:
    """The shape of the config `call` builds; None when not known."""
    if qualified in _MERGES:  # `merge(*parts)`: the shape of the configs the list holds
        return _merged([shape_of(a.value if isinstance(a, ast.Starred) else a) for a in call.args])
    yaml = qualified in YAML_LOADERS  # `yaml.load(text, Loader=...)` takes a keyword
    if len(call.args) != 1 or (call.keywords and not yaml):
        return None
    given = call.args[0]
    if qualified == _STRUCTURED:  # `OmegaConf.structured(TrainConfig)` of a dataclass
        return class_shape(given)
    if isinstance(given, _SHAPES) and not yaml:
        return given
    if qualified != _CREATE and not yaml:  # `OmegaConf.load(path)`: the text is a file's name
        return None
    if qualified == _CREATE and isinstance(given, ast.Call):
        return shape_of(given)  # `OmegaConf.create(yaml.safe_load(TEXT))`
    text = None
    if isinstance(given, ast.Constant) and isinstance(given.value, str):
        text = given.value
    elif isinstance(given, (ast.Name, ast.Subscript)):
        text = module_text(given)  # `DEFAULT_YAML`, `TASK_CONFIGS[task]`
    return yaml_shape(text) if text is not None else None


def _merged(shapes: list[Shape | None]) -> Shape | None:
    """Later dict shapes laid over earlier ones; unknown arguments left out. A typed field
    stays typed (a string merged into an Enum field becomes its member), and a structured
    first shape types the result."""
    known = [s for s in shapes if isinstance(s, ast.Dict)]
    if not known:
        return None
    partial = len(known) < len(shapes) or any(partly_known(s) for s in known)
    merged: dict[str, ast.expr] = {}
    for shape in known:
        for key, value in zip(shape.keys, shape.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None  # `**other`: which keys it brings is not known
            before = merged.get(key.value)
            if isinstance(before, ast.Dict) and isinstance(value, ast.Dict):
                value = _merged([before, value]) or value
            elif isinstance(before, RefusedLeaf) and isinstance(value, ast.Constant):
                value = before
            merged[key.value] = value
    first = known[0]
    shape = _display(merged, first.type_name if isinstance(first, StructuredDict) else "")
    if partial:
        shape.partly_known = True  # type: ignore[attr-defined]
    return shape


def partly_known(shape: ast.expr) -> bool:
    """Whether a merge laid a part of unknown shape over this one: it may change any leaf."""
    return bool(getattr(shape, "partly_known", False))


def _display(items: dict[str, ast.expr], type_name: str = "") -> ast.Dict:
    keys: list[ast.expr | None] = [ast.Constant(k) for k in items]
    if type_name:
        return StructuredDict(keys, list(items.values()), type_name)
    return ast.Dict(keys=keys, values=list(items.values()))


def yaml_shape(text: str) -> Shape | None:
    """The mapping a block-YAML text holds, as a display: nested mappings as dicts, sequences
    as lists, scalars as constants; None when the text uses what this reader does not know."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        line = _uncommented(raw).rstrip()
        if not line.strip():
            continue
        if lines and _unclosed(lines[-1][1]):  # a flow sequence or mapping goes on here
            lines[-1] = (lines[-1][0], lines[-1][1] + " " + line.strip())
            continue
        if "\t" in line[: len(line) - len(line.lstrip())] or _UNKNOWN.search(line.strip()):
            return None
        lines.append((len(line) - len(line.lstrip()), line.strip()))
    if lines and _unclosed(lines[-1][1]):
        return None
    if not lines:
        return None
    found, end = _mapping(lines, 0, lines[0][0])
    return found if end == len(lines) else None


def _unclosed(text: str) -> bool:
    """Whether a line opens more `[`/`{` than it closes, outside quotes (`phases: [a, b,`
    whose items go on over the next lines)."""
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth > 0


def _uncommented(line: str) -> str:
    """The line without a comment (a `#` at its start or after a space, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _mapping(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[ast.Dict | None, int]:
    items: dict[str, ast.expr] = {}
    while at < len(lines) and lines[at][0] == indent:
        matched = _KEY.match(lines[at][1])
        if matched is None:
            return None, at
        key, value = matched.group("key").strip("\"'"), matched.group("value")
        at += 1
        if value is None:
            node, at = _block(lines, at, indent)
        elif value[:1] in "|>":
            node = ast.Constant(value)  # a block scalar: its text is more indented
            while at < len(lines) and lines[at][0] > indent:
                at += 1
        else:
            node = _flow(value)
        if node is None:
            return None, at
        items[key] = node
    if at < len(lines) and lines[at][0] > indent:
        return None, at
    return _display(items), at


def _block(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[ast.expr | None, int]:
    """The value of `key:` with nothing after it: what the following lines nest (a null when
    none do; a sequence may sit at the key's own indent)."""
    if at >= len(lines):
        return ast.Constant(None), at
    inner, text = lines[at]
    if text.startswith("- ") or text == "-":
        if inner < indent:
            return ast.Constant(None), at
        return _sequence(lines, at, inner)
    if inner <= indent:
        return ast.Constant(None), at
    return _mapping(lines, at, inner)


def _sequence(lines: list[tuple[int, str]], at: int, indent: int) -> tuple[ast.List | None, int]:
    """A block sequence: whether each item is a container or a scalar, from its dash line
    (`- {noise: 0.3}` and `- name: a` are mappings; the keys of a block one are not read)."""
    items: list[ast.expr] = []
    while at < len(lines) and lines[at][0] >= indent:
        text = lines[at][1]
        if lines[at][0] == indent and not (text.startswith("- ") or text == "-"):
            break  # the next key of the mapping the items sit at the indent of
        if lines[at][0] == indent:
            items.append(_item(text[1:].strip()))
        at += 1
    return ast.List(elts=items, ctx=ast.Load()), at


def _item(text: str) -> ast.expr:
    """One sequence item from the rest of its dash line; an unknown one reads as a mapping
    with no keys known (a container, which is what `list(cfg.items)` is judged by)."""
    if not text:
        return _display({})  # `-` alone: the item nests below it
    if text[:1] in "[{":
        return _flow(text) or _display({})
    return _display({}) if _KEY.match(text) else ast.Constant(text)


def _flow(value: str) -> ast.expr | None:
    """A value on the key's own line: a flow sequence or mapping, or a scalar."""
    if value.startswith("["):
        if not value.endswith("]"):
            return None
        parts = [p.strip() for p in _top_level_split(value[1:-1]) if p.strip()]
        return ast.List(elts=[_flow(p) or _display({}) for p in parts], ctx=ast.Load())
    if value.startswith("{"):
        return _flow_mapping(value) if value.endswith("}") else None
    return ast.Constant(value)


def _flow_mapping(value: str) -> ast.Dict | None:
    """`{lr: 0.1, betas: [0.9, 0.99]}`: its keys and what each holds."""
    items: dict[str, ast.expr] = {}
    for part in _top_level_split(value[1:-1]):
        if not part.strip():
            continue
        key, colon, rest = part.partition(":")
        if not colon or not key.strip():
            return None
        node = _flow(rest.strip())
        if node is None:
            return None
        items[key.strip().strip("\"'")] = node
    return _display(items)


def _top_level_split(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def fields_shape(
    type_name: str,
    fields: list[tuple[str, ast.expr, ast.expr | None]],
    qualified: Callable[[ast.expr], str],
    nested: Callable[[str], Shape | None],
    typed: Callable[[ast.expr], Refused | None],
) -> ast.Dict:
    """A structured config's shape from its dataclass fields (name, annotation, default): a
    list or tuple is a list, a dict a dict, a project dataclass its own fields (`nested`), a
    field `typed` refuses (an Enum, a `Path`) a `RefusedLeaf` when its default gives it a value;
    anything else (`Optional[...]`, a union, a plain type) a plain leaf."""
    items: dict[str, ast.expr] = {}
    for name, annotation, default in fields:
        outer = annotation.value if isinstance(annotation, ast.Subscript) else annotation
        named = qualified(outer)
        if named in _LISTS:  # `List[Path]`: a list of such values
            element = _element(annotation, typed)
            items[name] = ast.List(elts=[element] if element else [], ctx=ast.Load())
        elif named in _DICTS:
            items[name] = ast.Dict(keys=[], values=[])
        elif isinstance(annotation, ast.Subscript):
            items[name] = ast.Constant(None)
        else:
            inner = nested(named)
            refused = typed(annotation) if inner is None and _valued(default) else None
            leaf = RefusedLeaf(refused) if refused is not None else ast.Constant(None)
            items[name] = inner if inner is not None else leaf
    return _display(items, type_name)


def _element(
    annotation: ast.expr, typed: Callable[[ast.expr], Refused | None]
) -> RefusedLeaf | None:
    """The typed element of `List[Path]` (`Tuple[Path, ...]`), when the default load refuses it."""
    inner = annotation.slice if isinstance(annotation, ast.Subscript) else None
    if isinstance(inner, ast.Tuple) and inner.elts:
        inner = inner.elts[0]
    refused = typed(inner) if isinstance(inner, (ast.Name, ast.Attribute)) else None
    return RefusedLeaf(refused) if refused is not None else None


def _valued(default: ast.expr | None) -> bool:
    """A field default that gives the field a value: not None, not `MISSING` (`???`)."""
    if default is None:
        return False
    if isinstance(default, ast.Constant):
        return default.value not in (None, "???")
    named = default.id if isinstance(default, ast.Name) else getattr(default, "attr", "")
    return named != "MISSING"


def dated(shape: Shape, date: Refused) -> Shape:
    """A YAML document's shape as PyYAML reads it: its unquoted timestamps are `date`
    leaves (datetime.date and datetime.datetime, which the default load refuses)."""
    if isinstance(shape, ast.Constant) and isinstance(shape.value, str):
        return RefusedLeaf(date) if _YAML_TIMESTAMP.match(shape.value) else shape
    if isinstance(shape, ast.Dict):
        return ast.Dict(keys=shape.keys, values=[dated(v, date) for v in shape.values])
    if isinstance(shape, (ast.List, ast.Tuple)):
        return ast.List(elts=[dated(e, date) for e in shape.elts], ctx=ast.Load())
    return shape


def refused_leaves(shape: Shape | None, enum_to_str: bool = False) -> list[tuple[str, Refused]]:
    """The typed fields of a config's shape whose values `OmegaConf.to_container` keeps and
    the default load refuses, by dotted key, in order (`enum_to_str=True` turns members into
    their names)."""
    found: list[tuple[str, Refused]] = []
    if isinstance(shape, ast.List):  # a list of typed values, under the empty key
        return [("", e.refused) for e in shape.elts[:1] if isinstance(e, RefusedLeaf)]
    if not isinstance(shape, ast.Dict):
        return found
    for key, value in zip(shape.keys, shape.values):
        if not isinstance(key, ast.Constant):
            continue
        name = str(key.value)
        if isinstance(value, RefusedLeaf):
            if not (enum_to_str and value.refused.kind == "enum-member"):
                found.append((name, value.refused))
        elif isinstance(value, (ast.Dict, ast.List)):
            inner = refused_leaves(value, enum_to_str)
            found += [(f"{name}.{k}" if k else name, r) for k, r in inner]
    return found
