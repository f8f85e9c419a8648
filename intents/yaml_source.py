"""The one loader for the YAML files people edit by hand.

Grading rules, simulator personas, WeCom offers, compliance profiles and the Rasa project
files the script lint reads all come through here. ruamel.yaml's round-trip loader keeps
the line and column of every key and list item, so a mistake is reported at the key that
is wrong: `file:line:col: path: what is wrong`. A key written twice is refused (plain YAML
would silently keep the last one, and a writer would wonder why an edit has no effect).

A file's shape is a pydantic (v1) model. Every problem in the file is reported at once,
the first as the error's message and the rest in its details, so a file is fixed in one
pass. Validators word their own problems: raise `ValueError` for the field being checked,
`At(message, *path)` for something below it, or collect several in `Problems`.

This module lives in `intents`, the lowest layer, because all three layers read YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeVar, Union

from pydantic import BaseModel, ValidationError
from pydantic import errors as pydantic_errors
from pydantic.error_wrappers import ErrorWrapper
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from intents.errors import InputError

Key = Union[str, int]
Loc = tuple[Any, ...]  # keys and list indexes from the document root, as pydantic gives them
Model = TypeVar("Model", bound=BaseModel)
T = TypeVar("T")

# pydantic's own steps in a location that are not keys of the document.
_NOT_IN_DOCUMENT = ("__root__", "__key__")
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)"')
_MISSING = object()


# ---- errors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem in a file, where it is (1-based line and column, when known) and what it is."""

    source: str
    line: int | None
    column: int | None
    message: str

    @property
    def where(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column}" if self.column else f"{self.source}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class YamlError(InputError):
    """A YAML file cannot be used. The message is the first problem (`file:line:col: …`),
    `details` the others; `findings` has them all with their positions."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        super().__init__(str(self.findings[0]), details=[str(f) for f in self.findings[1:]])

    @property
    def problems(self) -> list[str]:
        """Every problem as one `file:line:col: message` line, the first included."""
        return [str(f) for f in self.findings]


class YamlSyntaxError(YamlError):
    """The text does not parse as YAML; `problem` is the parser's own words, `finding` where."""

    def __init__(self, finding: Finding, problem: str) -> None:
        super().__init__([finding])
        self.finding = finding
        self.problem = problem


class At(ValueError):
    """A problem a validator found at `path` below the field it checks, in its own words."""

    def __init__(self, message: str, *path: Key) -> None:
        super().__init__(message)
        self.path: Loc = path


class Problems(ValueError):
    """Several problems from one validator. pydantic keeps only a validator's first
    exception, so a validator that finds several collects them here and raises them once."""

    def __init__(self) -> None:
        super().__init__("several problems")
        self.found: list[At] = []
        self.nested: list[tuple[Loc, ValidationError]] = []  # a part checked against a model of its own

    def __bool__(self) -> bool:
        return bool(self.found or self.nested)

    def add(self, message: str, *path: Key) -> None:
        self.found.append(At(message, *path))

    def attempt(self, check: Callable[[Any], T], value: Any, *path: Key) -> T | None:
        """`check(value)`, or None with its problems kept (at `path`) so the caller goes on
        to check the rest: a container whose parts are checked one by one reports them all."""
        try:
            return check(value)
        except ValidationError as exc:
            self.nested.append((path, exc))
        except Problems as exc:
            self.found += [At(str(at), *path, *at.path) for at in exc.found]
            self.nested += [((*path, *loc), error) for loc, error in exc.nested]
        except At as exc:
            self.add(str(exc), *path, *exc.path)
        except (ValueError, TypeError) as exc:
            self.add(str(exc), *path)
        return None

    def raise_any(self) -> None:
        if self:
            raise self


# ---- reading ---------------------------------------------------------------------------------------


def load_yaml(path: Path | str) -> Any:
    """The file's YAML tree: mappings and lists know their line and column (see `locate`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlError([Finding(str(path), None, None, "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise YamlError(
            [
                Finding(
                    str(path), None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8"
                )
            ]
        ) from None
    except OSError as exc:
        raise YamlError([Finding(str(path), None, None, f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """`text` as a YAML tree; `source` names it in problems (a file name)."""
    try:
        return YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        raise YamlError([_duplicate_key(exc, source)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise YamlSyntaxError(Finding(source, line, column, f"not valid YAML: {problem}"), problem) from None
    except YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise YamlSyntaxError(Finding(source, None, None, f"not valid YAML: {problem}"), problem) from None


def _duplicate_key(exc: DuplicateKeyError, source: str) -> Finding:
    named = _DUPLICATE_KEY.search(exc.problem or "")
    key = named.group(1) if named else "a key"
    mark = exc.problem_mark
    message = f"duplicate key '{key}': it is already set above in this mapping; keep one of the two"
    return Finding(source, mark.line + 1 if mark else None, mark.column + 1 if mark else None, message)


def plain(node: Any) -> Any:
    """The tree as plain dicts, lists, str, int, float and bool: for JSON, PyYAML and signatures,
    which do not know ruamel's position-carrying subclasses."""
    if isinstance(node, dict):
        return {plain(key): plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


# ---- positions -------------------------------------------------------------------------------------


class Position(NamedTuple):
    line: int  # 1-based, as editors count
    column: int


def locate(node: Any, *loc: Key) -> Position | None:
    """Where the key or list item at `loc` (keys and indexes from `node`) is written;
    `node` itself when `loc` is empty; None when the path is not in the tree or the tree
    was not read from YAML (a plain dict)."""
    found, steps = _walk(node, loc)
    return found if steps == len([part for part in loc if part not in _NOT_IN_DOCUMENT]) else None


def line_of(node: Any, *loc: Key) -> int | None:
    """The 1-based line of the key or item at `loc` (see `locate`)."""
    position = locate(node, *loc)
    return position.line if position else None


def where(source: str, node: Any, *loc: Key) -> str:
    """`file:line:col` of the key or item at `loc`, or the nearest enclosing one found."""
    found, _ = _walk(node, loc)
    return Finding(source, found.line if found else None, found.column if found else None, "").where


def _walk(node: Any, loc: Loc) -> tuple[Position | None, int]:
    """(position of the deepest key or item of `loc` that exists, how many steps were found)."""
    found = _start(node)
    steps = 0
    for part in loc:
        if part in _NOT_IN_DOCUMENT:
            continue
        if isinstance(node, CommentedMap) and _has_key(node, part):
            found, node = Position(*(n + 1 for n in node.lc.key(part))), node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            found, node = Position(*(n + 1 for n in node.lc.item(part))), node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, str) and part in node:
            # A list of texts read as text → weight: its items are named by their text.
            index = node.index(part)
            found, node = Position(*(n + 1 for n in node.lc.item(index))), node[index]
        elif isinstance(node, (dict, list)) and not isinstance(node, (CommentedMap, CommentedSeq)):
            return None, steps  # a plain tree: no positions below here
        else:
            break
        steps += 1
    return found, steps


def _has_key(mapping: dict, key: Any) -> bool:
    try:
        return key in mapping
    except TypeError:  # an unhashable key from pydantic's location
        return False


def _start(node: Any) -> Position | None:
    lc = getattr(node, "lc", None)
    return Position(lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else None


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        if part in _NOT_IN_DOCUMENT:
            continue
        if isinstance(data, dict) and _has_key(data, part):
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def dotted(loc: Loc, tree: Any = None) -> str:
    """`audiences.default.incentives[0].name`: a location as a writer would name it. With
    the tree, a number is an index only in a list (`answer_by_hour.19` is a key)."""
    text = ""
    node = tree
    for part in loc:
        if part in _NOT_IN_DOCUMENT:
            continue
        index = isinstance(node, list) if node is not None else isinstance(part, int) and not isinstance(part, bool)
        text += f"[{part}]" if index else f".{part}"
        node = _value_at(node, (part,)) if node is not None else None
        node = None if node is _MISSING else node
    return text.lstrip(".")


# ---- models ----------------------------------------------------------------------------------------


class YamlModel(BaseModel):
    """Base of the models of hand-edited files: an unknown key is a mistake (a typo, most often)."""

    class Config:
        extra = "forbid"


def validate(path: Path | str, model: type[Model]) -> Model:
    """The file read as `model`; YamlError lists every problem with file:line:col."""
    return check(load_yaml(path), model, str(path))


def check(data: Any, model: type[Model], source: str, *, positions: Any = None) -> Model:
    """`data` (a YAML tree, or plain dicts) read as `model`. Problems name `source` and the
    line and column found in `positions` (by default `data` itself, when read by this module)."""
    positions = data if positions is None else positions
    if not isinstance(data, dict):
        keys = ", ".join(_field_names(model))
        raise YamlError([_finding(source, positions, (), f"expected a mapping with the keys {keys}")])
    try:
        return model.parse_obj(data)
    except ValidationError as exc:
        findings = [
            _finding(source, positions, loc, _message(data, loc, error, owner))
            for loc, error, owner in _flatten(exc.raw_errors, (), exc.model)
        ]
        raise YamlError(_in_file_order(findings)) from None


def _flatten(errors: Sequence[Any], loc: Loc, owner: Any) -> Iterator[tuple[Loc, Exception, Any]]:
    """(location, error, the model it was found in) for every problem pydantic collected."""
    for error in errors:
        if isinstance(error, (list, tuple)):
            yield from _flatten(error, loc, owner)
            continue
        assert isinstance(error, ErrorWrapper)
        here = loc + error.loc_tuple()
        exc = error.exc
        if isinstance(exc, ValidationError):
            yield from _flatten(exc.raw_errors, here, exc.model)
        elif isinstance(exc, Problems):
            for found in exc.found:
                yield here + found.path, found, owner
            for loc_below, nested in exc.nested:
                yield from _flatten(nested.raw_errors, here + loc_below, nested.model)
        elif isinstance(exc, At):
            yield here + exc.path, exc, owner
        else:
            yield here, exc, owner


def _message(data: Any, loc: Loc, error: Exception, owner: Any) -> str:
    """The problem in words: `path: what is wrong`, with the value found when it helps."""
    if isinstance(error, pydantic_errors.ExtraError):
        allowed = ", ".join(_field_names(owner))
        return _prefixed(loc[:-1], f"unknown key '{loc[-1]}'; allowed: {allowed}", data)
    if isinstance(error, pydantic_errors.MissingError):
        field = owner.__fields__.get(loc[-1]) if loc else None
        hint = field.field_info.extra.get("hint") if field is not None else None
        return f"missing `{dotted(loc, data)}`" + (f": {hint}" if hint else "")
    if isinstance(error, pydantic_errors.PydanticErrorMixin):
        value = _value_at(data, loc)
        got = "" if value is _MISSING else f"; got {_shown(value)}"
        return _prefixed(loc, _pydantic_words(error) + got, data)
    return _prefixed(loc, str(error), data)


def _pydantic_words(error: Exception) -> str:
    if isinstance(error, pydantic_errors.WrongConstantError):
        return "must be one of: " + ", ".join(str(p) for p in error.permitted)  # type: ignore[attr-defined]
    for kinds, words in _PYDANTIC_WORDS:
        if isinstance(error, kinds):
            return words
    return str(error)


_PYDANTIC_WORDS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((pydantic_errors.NoneIsNotAllowedError,), "must not be empty"),
    ((pydantic_errors.DictError,), "must be a mapping (key: value)"),
    (
        (pydantic_errors.ListError, pydantic_errors.TupleError, pydantic_errors.SequenceError),
        "must be a list like [a, b]",
    ),
    ((pydantic_errors.StrError,), "must be text"),
    ((pydantic_errors.BoolError, pydantic_errors.StrictBoolError), "must be true or false"),
    ((pydantic_errors.IntegerError,), "must be a whole number"),
    ((pydantic_errors.FloatError, pydantic_errors.NumberNotFiniteError), "must be a number"),
)


def _prefixed(loc: Loc, message: str, data: Any) -> str:
    path = dotted(loc, data)
    return f"{path}: {message}" if path else message


def _shown(value: Any) -> str:
    return repr(plain(value))


def _field_names(model: Any) -> list[str]:
    return [field.alias for field in model.__fields__.values()]


def _finding(source: str, positions: Any, loc: Loc, message: str) -> Finding:
    found, _ = _walk(positions, loc)
    return Finding(source, found.line if found else None, found.column if found else None, message)


def _in_file_order(findings: list[Finding]) -> list[Finding]:
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (f.line or 0, f.column or 0))


# ---- value types -----------------------------------------------------------------------------------
# Field types that check hand-written values strictly. Subclass them to set bounds, e.g.
# `class Weight(Number): gt = 0` — a class is a type for both pydantic and mypy.


class Number(float):
    """A YAML number, optionally bounded. Not pydantic's float: that would take `true` and
    quoted text ("1") as numbers, which in a hand-edited file are mistakes."""

    ge: ClassVar[float | None] = None
    gt: ClassVar[float | None] = None
    le: ClassVar[float | None] = None

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], float]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> float:
        return float(_bounded(value, False, cls.ge, cls.gt, cls.le))


class WholeNumber(int):
    """A YAML whole number (never true/false, 1.5 or text), optionally bounded."""

    ge: ClassVar[int | None] = None
    le: ClassVar[int | None] = None

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], int]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> int:
        return int(_bounded(value, True, cls.ge, None, cls.le))


def _bounded(value: Any, whole: bool, ge: float | None, gt: float | None, le: float | None) -> float:
    is_number = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
    if is_number and (ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le):
        return value
    what = "a whole number" if whole else "a number"
    if ge is not None and le is not None:
        what += f" between {ge:g} and {le:g}"
    elif gt is not None:
        what += f" above {gt:g}"
    elif ge is not None:
        what += f" ≥ {ge:g}"
    elif le is not None:
        what += f" ≤ {le:g}"
    raise ValueError(f"must be {what}; got {_shown(value)}")


class Probability(Number):
    ge, le = 0.0, 1.0


class Text(str):
    """Text that is not empty or only spaces (read stripped), optionally of limited length."""

    max_chars: ClassVar[int | None] = None

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], str]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be a non-empty text; got {_shown(value)}")
        if cls.max_chars is not None and len(value.strip()) > cls.max_chars:
            raise ValueError(f"{len(value.strip())} characters; at most {cls.max_chars}")
        return str(value).strip()
