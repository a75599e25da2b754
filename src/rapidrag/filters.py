"""Mongo-style metadata filters, evaluated column-wise to a boolean mask over the documents.

A filter is a dict::

    {"category": "cardiology"}                              equality (several keys: all must hold)
    {"year": {"$gte": 2019, "$lt": 2024}}                    $eq $ne $gt $gte $lt $lte
    {"source": {"$in": ["pubmed", "pmc"]}}                  $in $nin
    {"date": {"$gt": "2024-01-31"}}                          ISO dates compare (and equal) as dates
    {"$or": [{"category": "a"}, {"$and": [{...}, {...}]}]}   $and $or

Values are str, int, float, bool or None, or ISO dates (a ``datetime``/``date``, or a str such as "2024-01-31" or
"2024-01-31T08:00:00Z"). Comparisons hold only between values of the same kind: a number never equals a str, a
bool is not a number; an ISO date str equals and compares with a date, however given. A document without the
field matches ``$ne`` and ``$nin`` and nothing else. A malformed filter raises FilterError, whose message shows the
path to the bad part; a well-formed one that can match nothing as written (a field no document has, a value of a
kind its field never holds) is not an error, and ``filter_notes`` says so.

Metadata values may also be lists of such values and dicts of them. A list matches when any of its elements
matches, as in MongoDB and Qdrant: ``{"tags": "bone"}`` and ``{"tags": {"$in": ["bone", "iron"]}}`` find
``{"tags": ["bone", "vitamin"]}``, and ``$ne`` / ``$nin`` hold when no element matches. A dict's fields are
filtered by their dotted path: ``{"author.name": "Curie"}``. Lists of lists or of dicts cannot be filtered and
are refused when stored (``check_metadata``).

The module runs past 500 lines because a filter is one concern from end to end: the metadata index it runs over
(``MetadataIndex``: a column per field, each kind of value in an array of its own, saved with the index), the
filter's check (every error names its path) and evaluation over those columns, and the notes on what it cannot
match; they must agree on every kind of value (numbers, strings, dates, booleans, lists, dotted fields).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import FilterError
from .growing import GrowingArray

__all__ = ["FilterError", "MetadataIndex", "check_metadata", "filter_notes", "flatten_metadata"]

Mask = npt.NDArray[np.bool_]
_COMPARE = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}
_FIELD_OPS = {"$eq", "$ne", "$in", "$nin", *_COMPARE}
# Each by-row array of a column: its fill (no value) and dtype.
_FILLS: dict[str, tuple[Any, Any]] = {
    "num": (np.nan, np.float64),
    "codes": (-1, np.int32),
    "flag": (-1, np.int8),
    "when": (np.nan, np.float64),
    "null": (False, np.bool_),
}
# The kinds a value is stored as, by its type; bool before int (a bool is an int), datetime before date.
_KIND: dict[type, str] = {
    list: "list",
    tuple: "list",
    bool: "flag",
    int: "num",
    float: "num",
    str: "str",
    datetime: "date",
    date: "date",
}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def _as_date(value: Any) -> float | None:
    """Seconds since the epoch for a date, datetime or ISO date str (naive times are UTC); None otherwise."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and _ISO_DATE.match(value):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class _Column:
    """One field's values, split by kind so that every operator is one numpy expression. A column ends at the last
    row given a value for it (an add grows only the fields it sets): rows past its end hold no value.

    By row, each over a GrowingArray (rows added one document at a time copy none of the others) and made when the
    first value of its kind comes (a field of one kind holds one array, not five): ``num`` int and float values
    (not bool); ``codes`` str values, dictionary-encoded (-1 absent); ``flag`` bool values as 0/1 (-1 absent);
    ``when`` dates, from datetime/date values and ISO strings; ``null`` the value None."""

    def __init__(self, n: int) -> None:
        self.n = n  # rows
        self._by_row: dict[str, GrowingArray] = {}
        self.strings: list[str] = []
        self.string_codes: dict[str, int] = {}
        self._string_when = GrowingArray(np.zeros(0, dtype=np.float64))  # by code: the str as a date (NaN: not one)
        # List values: their elements in a column of their own, each with the row it belongs to (-1 once cleared).
        self.elements: _Column | None = None
        self._element_row = GrowingArray(np.zeros(0, dtype=np.int64))
        self.element_row = self._element_row.array

    def grow(self, n: int) -> None:
        if n > self.n:
            self.n = n
            for array in self._by_row.values():
                array.resize(n)

    def kinds(self) -> set[str]:
        """The kinds of value ever given to the field, its lists' elements included."""
        out = set(self._by_row)
        if self.elements is not None:
            out |= self.elements.kinds()
        return out

    def held(self, kind: str) -> npt.NDArray[Any] | None:
        """The array of ``kind`` ("num", "codes", "flag", "when", "null"), or None if no value of it was given."""
        array = self._by_row.get(kind)
        return None if array is None else array.array

    def _writable(self, kind: str) -> npt.NDArray[Any]:
        array = self._by_row.get(kind)
        if array is None:
            fill, dtype = _FILLS[kind]
            array = self._by_row[kind] = GrowingArray(np.full(self.n, fill, dtype=dtype), fill)
        return array.array

    def set_many(self, rows: list[int], values: list[Any]) -> None:
        """Set each of ``rows`` (new rows, set once) to its value: sorted by kind in one pass, then an array
        assignment per kind (a str is parsed as a date once, when first seen)."""
        kinds: dict[str, tuple[list[int], list[Any]]] = {}
        nulls = []
        for row, value in zip(rows, values, strict=True):
            if isinstance(value, np.generic):
                value = value.item()
            kind = _KIND.get(type(value))
            if kind is None and value is not None:  # a subclass: by isinstance, in the order of _KIND
                kind = next((k for t, k in _KIND.items() if isinstance(value, t)), None)
                if kind is None:
                    raise TypeError(f"metadata value {value!r} cannot be filtered (see check_metadata)")
            if kind is None:
                nulls.append(row)
            else:
                at, given = kinds.setdefault(kind, ([], []))
                at.append(row)
                given.append(value)
        if nulls:
            _put(self._writable("null"), nulls, [True] * len(nulls))
        for kind, (at, given) in kinds.items():
            if kind in ("num", "flag"):
                _put(self._writable(kind), at, given)
            elif kind == "str":
                codes = [self._code(v) for v in given]
                new = self.strings[len(self._string_when.array) :]
                if new:
                    self._string_when.append([np.nan if (w := _as_date(v)) is None else w for v in new])
                _put(self._writable("codes"), at, codes)
                when = self._string_when.array[codes]
                if not np.isnan(when).all():
                    _put(self._writable("when"), at, when)
            elif kind == "date":
                _put(self._writable("when"), at, [_as_date(v) for v in given])
            else:
                self._set_lists(at, given)

    def state(self, prefix: str, arrays: dict[str, npt.NDArray[Any]]) -> dict[str, Any]:
        """What ``from_state`` needs: the JSON part returned, the arrays (copies) put in ``arrays`` under
        ``prefix``."""
        info: dict[str, Any] = {"n": self.n, "kinds": list(self._by_row), "strings": list(self.strings)}
        for kind, array in self._by_row.items():
            arrays[prefix + kind] = array.array.copy()
        arrays[prefix + "string_when"] = self._string_when.array.copy()
        if self.elements is not None:
            arrays[prefix + "element_row"] = self.element_row.copy()
            info["elements"] = self.elements.state(prefix + "e.", arrays)
        return info

    @classmethod
    def from_state(cls, info: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]], prefix: str) -> _Column:
        """The column ``state`` saved, checked (ValueError names what does not hold)."""
        n, strings = int(info["n"]), info["strings"]
        if n < 0 or not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise ValueError(f"metadata column {prefix!r}: a bad row count or string table")
        column = cls(n)
        column.strings = list(strings)
        column.string_codes = {s: code for code, s in enumerate(strings)}
        if len(column.string_codes) != len(strings):
            raise ValueError(f"metadata column {prefix!r}: a string is listed twice")
        column._string_when = GrowingArray(_saved(arrays, prefix + "string_when", np.float64, len(strings)))
        for kind in info["kinds"]:
            if kind not in _FILLS:
                raise ValueError(f"metadata column {prefix!r}: unknown kind {kind!r}")
            fill, dtype = _FILLS[kind]
            column._by_row[kind] = GrowingArray(_saved(arrays, prefix + kind, dtype, n), fill)
        codes = column.held("codes")
        if codes is not None and len(codes) and (codes.min() < -1 or codes.max() >= len(strings)):
            raise ValueError(f"metadata column {prefix!r}: a string code outside its table")
        if info.get("elements") is not None:
            elements = cls.from_state(info["elements"], arrays, prefix + "e.")
            row = _saved(arrays, prefix + "element_row", np.int64, elements.n)
            if len(row) and (row.min() < -1 or row.max() >= n):
                raise ValueError(f"metadata column {prefix!r}: a list element of a row outside the column")
            column.elements, column._element_row = elements, GrowingArray(row)
            column.element_row = column._element_row.array
        return column

    def _code(self, value: str) -> int:
        """``value``'s code, a new one (its str appended to ``strings``) if it is new."""
        code = self.string_codes.get(value)
        if code is None:
            code = self.string_codes[value] = len(self.strings)
            self.strings.append(value)
        return code

    def _set_lists(self, rows: list[int], lists: list[Sequence[Any]]) -> None:
        if self.elements is None:
            self.elements = _Column(0)
        first = len(self.element_row)
        counts = [len(values) for values in lists]
        self.element_row = self._element_row.append(np.repeat(np.asarray(rows, dtype=np.int64), counts))
        self.elements.grow(len(self.element_row))
        self.elements.set_many(list(range(first, len(self.element_row))), [v for values in lists for v in values])

    def _rows_of(self, element_hit: Mask) -> Mask:
        """Rows with at least one element in ``element_hit``."""
        out = np.zeros(self.n, dtype=bool)
        rows = self.element_row[element_hit]
        out[rows[rows >= 0]] = True
        return out

    def clear(self, row: int) -> None:
        if row < self.n:  # (rows past the column's end hold no value)
            for kind, array in self._by_row.items():
                array.array[row] = _FILLS[kind][0]
        if self.elements is not None:
            for element in np.flatnonzero(self.element_row == row).tolist():
                self.elements.clear(element)
                self.element_row[element] = -1

    def equals(self, value: Any) -> Mask:
        hit = self._equals(value)
        if self.elements is not None:
            hit |= self._rows_of(self.elements.equals(value))
        return hit

    def compare(self, op: str, value: Any) -> Mask:
        hit = self._compare(op, value)
        if self.elements is not None:
            hit |= self._rows_of(self.elements.compare(op, value))
        return hit

    def _equals(self, value: Any) -> Mask:
        target: Any
        if value is None:
            kind, target = "null", True
        elif isinstance(value, bool):
            kind, target = "flag", int(value)
        elif isinstance(value, (int, float)):
            kind, target = "num", float(value)
        elif isinstance(value, str):
            kind, target = "codes", self.string_codes.get(value, -2)
            when = _as_date(value)
            if when is not None and self.held("when") is not None:  # an ISO date equals the same date, however given
                return self._kind_equals("codes", target) | self._kind_equals("when", when)
        else:
            kind, target = "when", _as_date(value)
        return self._kind_equals(kind, target)

    def _kind_equals(self, kind: str, target: Any) -> Mask:
        array = self.held(kind)
        return np.zeros(self.n, dtype=bool) if array is None else np.asarray(array == target, dtype=bool)

    def _compare(self, op: str, value: Any) -> Mask:
        fn = _COMPARE[op]
        when = _as_date(value)
        kind = "when" if when is not None else "codes" if isinstance(value, str) else "num"
        array = self.held(kind)
        if array is None:
            return np.zeros(self.n, dtype=bool)
        with np.errstate(invalid="ignore"):
            if when is not None:
                return np.asarray(fn(array, when), dtype=bool)  # NaN (absent) compares False
            if isinstance(value, str):
                # Compare each distinct string once; code -1 (no str) maps to the appended False.
                hits = np.array([bool(fn(s, value)) for s in self.strings] + [False], dtype=bool)
                out: Mask = hits[array]
                return out
            return np.asarray(fn(array, float(value)), dtype=bool)


def _saved(arrays: Mapping[str, npt.NDArray[Any]], name: str, dtype: Any, n: int) -> npt.NDArray[Any]:
    """The saved array ``name``, checked to hold ``n`` values of ``dtype``; writable (a clear writes into it)."""
    array = arrays.get(name)
    if array is None:
        raise ValueError(f"metadata array {name!r} is missing")
    if array.dtype != dtype or array.shape != (n,):
        raise ValueError(f"metadata array {name!r} is {array.dtype}{list(array.shape)}, not {np.dtype(dtype)}[{n}]")
    return array if array.flags.writeable else array.copy()


def _put(array: npt.NDArray[Any], rows: list[int], values: Sequence[Any] | npt.NDArray[Any]) -> None:
    """``array[rows] = values``; one row by item assignment (a fancy-index assignment costs some µs more, which a
    document written at a time would pay per field)."""
    if len(rows) == 1:
        array[rows[0]] = values[0]
    elif rows:
        array[rows] = values


class MetadataIndex:
    """Metadata of documents by row, stored by field for fast filter evaluation."""

    def __init__(self) -> None:
        self.n = 0
        self.columns: dict[str, _Column] = {}

    def add(self, rows: Sequence[Mapping[str, Any] | None]) -> None:
        """Append the metadata of new rows (None or {} for none); dicts are filtered by dotted paths and lists by
        their elements. Values that cannot be filtered raise TypeError (``check_metadata`` says so first)."""
        start = self.n
        by_field: dict[str, tuple[list[int], list[Any]]] = {}
        last: Any = None  # the last metadata flattened, and its fields: a document's rows come together
        flat: dict[str, Any] = {}
        for k, meta in enumerate(rows):
            if meta is None:
                continue
            if not isinstance(meta, Mapping):
                raise TypeError(f"metadata of row {start + k} must be a dict, not {type(meta).__name__}")
            if meta is not last:
                last, flat = meta, flatten_metadata(meta)
            for field, value in flat.items():
                entry = by_field.get(field)
                if entry is None:
                    entry = by_field[field] = ([], [])
                entry[0].append(start + k)
                entry[1].append(value)
        self.n += len(rows)  # (after every row is read: a bad one changes nothing)
        for field, (at, values) in by_field.items():
            column = self._column(field)
            column.grow(self.n)  # (only the fields given: a column ends at its last row with a value)
            column.set_many(at, values)

    def state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """The index as JSON (row count, fields in order, each field's kinds and strings) and arrays (copies, named
        by the field's position): what ``from_state`` opens without reading any document's metadata again."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        fields = [[field, column.state(f"{i}.", arrays)] for i, (field, column) in enumerate(self.columns.items())]
        return {"n": self.n, "fields": fields}, arrays

    @classmethod
    def from_state(cls, info: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> MetadataIndex:
        out = cls()
        out.n = int(info["n"])
        for i, (field, column) in enumerate(info["fields"]):
            if not isinstance(field, str) or field in out.columns:
                raise ValueError(f"metadata field {field!r}: not a str, or listed twice")
            out.columns[field] = _Column.from_state(column, arrays, f"{i}.")
            if out.columns[field].n > out.n:
                raise ValueError(f"metadata field {field!r} holds more rows than the index")
        return out

    def kinds(self) -> dict[str, set[str]]:
        """Each field's kinds of value ever given ("num", "codes", "flag", "when", "null"): what ``filter_notes``
        checks a filter against."""
        return {field: column.kinds() for field, column in self.columns.items()}

    def clear(self, row: int) -> None:
        """Forget the metadata of ``row`` (a deleted document)."""
        for column in self.columns.values():
            column.clear(row)

    def replace(self, rows: Sequence[int], meta: Mapping[str, Any]) -> None:
        """Give existing ``rows`` (one document's) the metadata ``meta``, their old values forgotten. A value
        that cannot be filtered raises TypeError before anything changes."""
        flat = flatten_metadata(meta)
        rows = list(rows)
        for row in rows:
            self.clear(row)
        for field, value in flat.items():
            column = self._column(field)
            column.grow(self.n)
            column.set_many(rows, [value] * len(rows))

    def _column(self, field: str) -> _Column:
        column = self.columns.get(field)
        if column is None:
            column = self.columns[field] = _Column(self.n)
        return column

    def mask(self, spec: Mapping[str, Any]) -> Mask:
        """The rows that ``spec`` selects: bool [n]."""
        if not isinstance(spec, Mapping):
            raise FilterError(f"a filter must be a dict, not {type(spec).__name__}: {spec!r}")
        return self._node(spec, "filter")

    def _node(self, spec: Mapping[str, Any], path: str) -> Mask:
        out = np.ones(self.n, dtype=bool)
        for key, value in spec.items():
            where = f"{path}[{key!r}]"
            if not isinstance(key, str):
                raise FilterError(f"{where}: field names are str")
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise FilterError(f"{where}: {key} takes a non-empty list of filters, got {value!r}")
                parts = []
                for i, sub in enumerate(value):
                    if not isinstance(sub, Mapping):
                        raise FilterError(f"{where}[{i}]: each item of {key} must be a dict, got {sub!r}")
                    parts.append(self._node(sub, f"{where}[{i}]"))
                out &= np.logical_and.reduce(parts) if key == "$and" else np.logical_or.reduce(parts)
            elif key.startswith("$"):
                raise FilterError(f"{where}: unknown operator {key!r} (at the top level: $and, $or)")
            else:
                out &= self._field(key, value, where)
        return out

    def _field(self, field: str, condition: Any, where: str) -> Mask:
        column = self.columns.get(field) or _Column(self.n)
        n = self.n
        if not (isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition)):
            return _fit(column.equals(_check_value(condition, where)), n)
        out = np.ones(self.n, dtype=bool)
        for op, value in condition.items():
            at = f"{where}[{op!r}]"
            if op not in _FIELD_OPS:
                raise FilterError(f"{at}: unknown operator {op!r} (known: {', '.join(sorted(_FIELD_OPS))})")
            if op in ("$in", "$nin"):
                if not isinstance(value, (list, tuple)):
                    raise FilterError(f"{at}: {op} takes a list, got {value!r}")
                hit = np.zeros(self.n, dtype=bool)
                for i, item in enumerate(value):
                    hit |= _fit(column.equals(_check_value(item, f"{at}[{i}]")), n)
                out &= hit if op == "$in" else ~hit
            elif op == "$eq":
                out &= _fit(column.equals(_check_value(value, at)), n)
            elif op == "$ne":
                out &= ~_fit(column.equals(_check_value(value, at)), n)
            else:
                value = _check_value(value, at)
                if value is None or isinstance(value, bool):
                    raise FilterError(f"{at}: {op} compares numbers, strings or dates, got {value!r}")
                out &= _fit(column.compare(op, value), n)
        return out


_KIND_NAMES = {"num": "numbers", "codes": "strings", "flag": "true/false", "when": "dates", "null": "null"}


def filter_notes(spec: Mapping[str, Any], kinds: Mapping[str, set[str]]) -> list[str]:
    """Why a filter may select less than its author meant, from the kinds of value each field holds (``kinds``:
    ``MetadataIndex.kinds``, or their union over an index's shards): a field that no document has (a misspelt name,
    say), and a value of a kind the field never holds (``{"year": "2021"}`` where years are numbers), which can
    match nothing. Empty when neither; a filter that ``mask`` refuses gives no notes."""
    notes: list[str] = []

    def node(part: Any) -> None:
        if not isinstance(part, Mapping):
            return
        for key, value in part.items():
            if key in ("$and", "$or") and isinstance(value, list):
                for sub in value:
                    node(sub)
            elif isinstance(key, str) and not key.startswith("$"):
                field_note(key, value)

    def field_note(field: str, condition: Any) -> None:
        held = kinds.get(field)
        if held is None:
            known = sorted(kinds)
            listed = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
            notes.append(f"no document has the field {field!r}" + (f" (fields: {listed})" if known else ""))
            return
        if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
            pairs = [(op, v) for op, v in condition.items() for v in (v if op in ("$in", "$nin") else [v])]
        else:
            pairs = [("$eq", condition)]
        for op, value in pairs:
            if op in ("$ne", "$nin") or not isinstance(value, (str, int, float, bool, date, type(None))):
                continue  # (what a value of another kind does not equal, it does not hold either)
            if value is None:
                could = {"null"}
            elif isinstance(value, bool):
                could = {"flag"}
            elif isinstance(value, (int, float)):
                could = {"num"}
            elif isinstance(value, str):
                could = {"codes", "when"} if _as_date(value) is not None else {"codes"}
            else:
                could = {"when"}
            if not could & held:
                has = " and ".join(_KIND_NAMES[k] for k in sorted(held)) or "no values now"
                notes.append(f"the field {field!r} holds {has}, so {value!r} matches nothing")

    node(spec)
    return list(dict.fromkeys(notes))


def _fit(hit: Mask, n: int) -> Mask:
    """A column's ``hit`` over all ``n`` rows: rows past the column's end hold no value (they match nothing)."""
    if len(hit) == n:
        return hit
    out = np.zeros(n, dtype=bool)
    out[: len(hit)] = hit
    return out


def _check_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, date, datetime)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            raise FilterError(f"{where}: NaN is not a filter value (it equals nothing)")
        return value
    hint = " (to match any of several values, use {'$in': [...]})" if isinstance(value, (list, tuple)) else ""
    raise FilterError(
        f"{where}: values are str, int, float, bool, None or dates, got {type(value).__name__} {value!r}{hint}"
    )


_SCALARS = (str, bool, int, float, date, datetime, np.bool_, np.integer, np.floating)


def flatten_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The filterable fields of ``meta``: nested dicts become dotted paths (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``);
    other values as they are. Raises TypeError for a value that cannot be filtered (see ``check_metadata``)."""
    out: dict[str, Any] = {}
    _flatten(meta, "", out)
    return out


def _flatten(meta: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in meta.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, f"{name}.", out)
            continue
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if not (item is None or isinstance(item, _SCALARS)):
                    raise TypeError(
                        f"metadata {name!r}[{i}] is a {type(item).__name__}: a list can be filtered when its items "
                        "are str, numbers, bools, None or dates (not lists or dicts)"
                    )
        elif not (value is None or isinstance(value, _SCALARS)):
            raise TypeError(
                f"metadata {name!r} is a {type(value).__name__}, which cannot be filtered or saved "
                "(use str, numbers, bools, None, dates, or lists and dicts of them)"
            )
        if name in out:
            raise TypeError(f"metadata {name!r} is given twice (as a dotted key and as a nested dict)")
        out[name] = value


def check_metadata(meta: Mapping[str, Any]) -> None:
    """Raise TypeError, naming the field, for metadata that filters could not use: values other than str,
    numbers, bools, None and dates, or lists and dicts of them (a list of lists or of dicts)."""
    flatten_metadata(meta)
