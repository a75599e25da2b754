"""rapidrag.filters: every operator against a plain-Python evaluation, kinds kept apart, and errors that point."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pytest

from rapidrag.filters import FilterError, MetadataIndex, filter_notes

ROWS: list[dict[str, Any] | None] = [
    {"category": "cardiology", "year": 2019, "open": True, "date": "2019-05-01", "source": "pubmed"},
    {"category": "oncology", "year": 2021, "open": False, "date": "2021-12-31T23:00:00Z", "source": "pmc"},
    {"category": "cardiology", "year": 2024, "open": True, "date": datetime(2024, 2, 1, tzinfo=timezone.utc)},
    {"category": "neurology", "year": "2020", "score": 0.5, "date": date(2020, 1, 1)},
    None,
    {"category": None, "year": 2019.0, "open": 1, "tags": ["a", "b"]},
]


@pytest.fixture(scope="module")
def index() -> MetadataIndex:
    meta = MetadataIndex()
    meta.add(ROWS[:3])
    meta.add(ROWS[3:])  # appended in two parts: columns grow
    return meta


def rows(index: MetadataIndex, spec: dict[str, Any]) -> list[int]:
    return np.flatnonzero(index.mask(spec)).tolist()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"category": "cardiology"}, [0, 2]),
        ({"category": "cardiology", "year": 2024}, [2]),
        ({"year": 2019}, [0, 5]),  # 2019 and 2019.0 are the same number
        ({"year": "2020"}, [3]),  # a str is not a number
        ({"open": True}, [0, 2]),  # True is not 1
        ({"open": 1}, [5]),
        ({"category": None}, [5]),
        ({"year": {"$gte": 2020}}, [1, 2]),
        ({"year": {"$gt": 2019, "$lt": 2024}}, [1]),
        ({"year": {"$lte": 2019}}, [0, 5]),
        ({"year": {"$ne": 2019}}, [1, 2, 3, 4]),  # absent fields match $ne
        ({"source": {"$in": ["pubmed", "pmc"]}}, [0, 1]),
        ({"source": {"$nin": ["pubmed"]}}, [1, 2, 3, 4, 5]),
        ({"source": {"$eq": "pmc"}}, [1]),
        ({"date": {"$gt": "2020-01-01"}}, [1, 2]),  # str, datetime and date values compare as dates
        ({"date": {"$gte": "2020-01-01"}}, [1, 2, 3]),
        ({"date": {"$lt": datetime(2021, 12, 31, 23, 30, tzinfo=timezone.utc)}}, [0, 1, 3]),
        ({"date": "2020-01-01"}, [3]),  # an ISO date str equals the same date, however given
        ({"date": "2019-05-01T00:00:00Z"}, [0]),
        ({"date": {"$in": ["2024-02-01", "2019-05-01"]}}, [0, 2]),
        ({"date": date(2021, 12, 31)}, []),  # 23:00 that day is another instant
        ({"category": {"$gt": "m"}}, [1, 3]),  # strings compare lexicographically
        ({"$or": [{"category": "oncology"}, {"year": 2024}]}, [1, 2]),
        ({"$and": [{"category": "cardiology"}, {"$or": [{"year": 2019}, {"open": False}]}]}, [0]),
        ({"tags": "a"}, [5]),  # a list matches when any element does
        ({"tags": {"$in": ["b", "z"]}}, [5]),
        ({"tags": {"$nin": ["a"]}}, [0, 1, 2, 3, 4]),  # no element matches
        ({"tags": {"$ne": "b"}}, [0, 1, 2, 3, 4]),
        ({"tags": {"$gt": "a"}}, [5]),  # some element is greater
        ({"missing_field": "x"}, []),
        ({"missing_field": {"$ne": "x"}}, [0, 1, 2, 3, 4, 5]),
        ({}, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_operators(index: MetadataIndex, spec: dict[str, Any], expected: list[int]) -> None:
    assert rows(index, spec) == expected


@pytest.mark.parametrize(
    ("spec", "notes"),
    [
        ({"category": "cardiology", "year": {"$gte": 2020}}, []),
        ({"catgory": "cardiology"}, ["no document has the field 'catgory' (fields: category, date, open, score, "]),
        ({"year": "2019"}, []),  # (one document's year is the str "2020": a str can match)
        ({"score": "high"}, ["the field 'score' holds numbers, so 'high' matches nothing"]),
        ({"open": {"$in": [True, "yes"]}}, ["the field 'open' holds true/false and numbers, so 'yes' matches nothing"]),
        ({"open": {"$ne": "yes"}}, []),  # what a value of another kind does not equal, it does not hold either
        ({"tags": 3}, ["the field 'tags' holds strings, so 3 matches nothing"]),  # a list's elements
        ({"date": "2020-01-01"}, []),
        ({"date": {"$gt": 5}}, ["the field 'date' holds strings and dates, so 5 matches nothing"]),
        ({"$or": [{"year": 2024}, {"$and": [{"yr": 1}, {"yr": 2}]}]}, ["no document has the field 'yr'"]),
    ],
)
def test_filter_notes_say_why_a_filter_may_select_less_than_meant(
    index: MetadataIndex, spec: dict[str, Any], notes: list[str]
) -> None:
    got = filter_notes(spec, index.kinds())
    assert len(got) == len(notes) and all(g.startswith(n) for g, n in zip(got, notes, strict=True)), got
    assert filter_notes({"x": 1}, {}) == ["no document has the field 'x'"]  # (an index without metadata)


def test_cleared_rows_match_nothing_but_absence(index: MetadataIndex) -> None:
    meta = MetadataIndex()
    meta.add(ROWS)
    meta.clear(0)
    assert rows(meta, {"category": "cardiology"}) == [2]
    assert 0 in rows(meta, {"category": {"$ne": "cardiology"}})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"year": {"$gt": 1, "$foo": 2}}, r"filter\['year'\]\['\$foo'\]: unknown operator"),
        ({"$nor": []}, r"filter\['\$nor'\]: unknown operator"),
        ({"$or": []}, r"filter\['\$or'\]: \$or takes a non-empty list"),
        ({"$and": [{"a": 1}, 3]}, r"filter\['\$and'\]\[1\]: each item"),
        ({"source": {"$in": "pubmed"}}, r"filter\['source'\]\['\$in'\]: \$in takes a list"),
        ({"source": {"$in": ["a", {"x": 1}]}}, r"filter\['source'\]\['\$in'\]\[1\]: values are"),
        ({"year": {"$gt": None}}, r"\$gt compares numbers"),
        ({"year": {"$lt": True}}, r"\$lt compares numbers"),
        ({"year": float("nan")}, "NaN"),
        ({"tags": ["a"]}, r"filter\['tags'\]: values are"),
        ({"tags": ["a"]}, r"to match any of several values, use \{'\$in'"),
    ],
)
def test_malformed_filters_point_at_the_bad_part(index: MetadataIndex, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        index.mask(spec)


def test_non_dict_inputs(index: MetadataIndex) -> None:
    with pytest.raises(FilterError, match="must be a dict"):
        index.mask([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="row 1"):
        MetadataIndex().add([{}, "not a dict"])  # type: ignore[list-item]
    held = MetadataIndex()
    held.add([{"a": 1}])
    for bad in ([{"a": 2}, "not a dict"], [{"a": 2}, {"b": {1, 2}}]):
        with pytest.raises(TypeError):
            held.add(bad)  # type: ignore[arg-type]
        assert held.n == 1 and rows(held, {"a": 2}) == [] and rows(held, {"a": 1}) == [0]  # nothing stored
    assert issubclass(FilterError, ValueError)


def test_lists_and_nested_dicts() -> None:
    """Lists of any scalar kind match element-wise (numbers, dates, None too), nested dicts by dotted paths, and
    a cleared row's elements match nothing."""
    meta = MetadataIndex()
    meta.add(
        [
            {"years": [2019, 2021], "author": {"name": "Curie", "born": 1867}, "when": [date(2020, 1, 1)]},
            {"years": [2024], "author": {"name": "Bohr"}, "tags": []},
            {"years": 2021, "tags": [None, "x"]},
        ]
    )
    assert rows(meta, {"years": 2021}) == [0, 2]
    assert rows(meta, {"years": {"$gte": 2022}}) == [1]
    assert rows(meta, {"years": {"$gt": 2019, "$lt": 2021}}) == [0]  # each condition by some element, as MongoDB
    assert rows(meta, {"author.name": "Curie"}) == [0] and rows(meta, {"author.born": {"$lt": 1900}}) == [0]
    assert rows(meta, {"when": {"$gt": "2019-06-01"}}) == [0]
    assert rows(meta, {"tags": None}) == [2] and rows(meta, {"tags": {"$ne": "x"}}) == [0, 1]
    meta.clear(0)
    assert rows(meta, {"years": 2021}) == [2] and rows(meta, {"author.name": "Curie"}) == []
    meta.add([{"years": [2021, 2030]}])
    assert rows(meta, {"years": 2021}) == [2, 3]


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"rows": [[1, 2]]}, r"metadata 'rows'\[0\] is a list"),
        ({"people": [{"name": "a"}]}, r"metadata 'people'\[0\] is a dict"),
        ({"a": {"b": {1, 2}}}, r"metadata 'a.b' is a set"),
        ({"a.b": 1, "a": {"b": 2}}, r"'a.b' is given twice"),
    ],
)
def test_metadata_that_cannot_be_filtered_is_refused(meta: dict[str, Any], message: str) -> None:
    from rapidrag.filters import check_metadata

    with pytest.raises(TypeError, match=message):
        check_metadata(meta)
    with pytest.raises(TypeError, match=message):
        MetadataIndex().add([meta])


def test_rows_added_at_once_one_by_one_or_in_parts_hold_the_same() -> None:
    # add() sorts each field's values by kind and sets a kind at a time: the rows must end where they belong,
    # whatever the batches, and equality must follow the kinds as a plain-Python reading of the values does.
    rng = np.random.default_rng(7)
    choices: list[Any] = [
        "a", "b", "2021-03-04", "2021-03-04T10:00:00Z", True, False, 0, 1, 1.0, 2.5, None,
        np.int64(1), np.float32(2.5), np.bool_(True), date(2021, 3, 4), datetime(2020, 1, 1, tzinfo=timezone.utc),
    ]  # fmt: skip

    def value() -> Any:
        if rng.random() < 0.2:
            return [choices[i] for i in rng.integers(0, len(choices), rng.integers(0, 4))]
        return choices[rng.integers(0, len(choices))]

    metas: list[dict[str, Any] | None] = [
        None if rng.random() < 0.1 else {f: value() for f in ("x", "y", "n.z") if rng.random() < 0.7}
        for _ in range(300)
    ]
    at_once, one_by_one, in_parts = MetadataIndex(), MetadataIndex(), MetadataIndex()
    at_once.add(metas)
    for meta in metas:
        one_by_one.add([meta])
    for a in range(0, 300, 37):
        in_parts.add(metas[a : a + 37])

    def plain(v: Any) -> Any:
        return v.item() if isinstance(v, np.generic) else v

    def instant(x: Any) -> float | None:
        if isinstance(x, str) and x[:4].isdigit():
            x = datetime.fromisoformat(x.replace("Z", "+00:00"))
        if isinstance(x, date) and not isinstance(x, datetime):
            x = datetime(x.year, x.month, x.day)
        if not isinstance(x, datetime):
            return None
        return (x if x.tzinfo else x.replace(tzinfo=timezone.utc)).timestamp()

    def equal(v: Any, q: Any) -> bool:
        v = plain(v)
        if isinstance(v, list):
            return any(equal(e, q) for e in v)
        if isinstance(q, bool) or isinstance(v, bool):
            return type(q) is type(v) and v == q
        if q is None or v is None:
            return v is q
        if isinstance(q, str) and instant(q) is not None and instant(v) is not None:
            return v == q or instant(v) == instant(q)  # an ISO date str equals the same date, however given
        if isinstance(v, str) or isinstance(q, str):
            return isinstance(v, str) and isinstance(q, str) and v == q
        if isinstance(v, (int, float)) and isinstance(q, (int, float)):
            return float(v) == float(q)
        return False  # a date equals no number, bool or None, nor a str that is not an ISO date

    for field in ("x", "y", "n.z"):
        for q in ["a", "2021-03-04", True, False, 0, 1, 2.5, None]:
            expected = [i for i, m in enumerate(metas) if m is not None and field in m and equal(m[field], q)]
            for index in (at_once, one_by_one, in_parts):
                assert np.flatnonzero(index.mask({field: q})).tolist() == expected, (field, q)
        for spec in ({field: {"$gte": "2021-01-01"}}, {field: {"$lt": 2}}, {field: {"$ne": "b"}}):
            masks = [index.mask(spec) for index in (at_once, one_by_one, in_parts)]
            assert np.array_equal(masks[0], masks[1]) and np.array_equal(masks[0], masks[2]), spec


def _masks(index: MetadataIndex, specs: list[dict[str, Any]]) -> list[list[int]]:
    return [np.flatnonzero(index.mask(spec)).tolist() for spec in specs]


def test_the_state_opens_as_the_same_index_which_then_changes_as_the_original() -> None:
    # A saved index opens its metadata from this state instead of adding every document's metadata again: the
    # columns (every kind, strings and their dates, list elements, cleared rows) must come back exactly, through
    # the .npz archive the index file uses, and take further adds and clears as the original does.
    import io

    rng = np.random.default_rng(11)
    choices: list[Any] = [
        "a", "b", "2021-03-04", True, False, 0, 1, 2.5, None, date(2021, 3, 4), ["a", 1, "2020-01-01"], ["b"], [],
    ]  # fmt: skip
    metas: list[dict[str, Any] | None] = [
        None if rng.random() < 0.1 else {f: choices[rng.integers(0, len(choices))] for f in "xyz" if rng.random() < 0.6}
        for _ in range(200)
    ]
    metas += [{"x": {"deep": "a"}, "w": "only here"}]
    original = MetadataIndex()
    original.add(metas[:150])
    for row in (3, 40, 41, 149):
        original.clear(row)
    original.add(metas[150:])
    info, arrays = original.state()
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as z:
        restored = MetadataIndex.from_state(info, {k: z[k] for k in z.files})
    specs: list[dict[str, Any]] = [
        {field: q} for field in ("x", "y", "z", "x.deep", "w") for q in ["a", "b", True, 0, 1, 2.5, None, "2020-01-01"]
    ]
    specs += [{"x": {"$gte": "2021-01-01"}}, {"y": {"$lt": 2}}, {"z": {"$ne": "b"}}, {"x": {"$gt": "a"}}]
    specs += [{"$or": [{"x": "a"}, {"y": {"$nin": ["b", 1]}}]}, {"y": {"$in": [False, "2021-03-04"]}}]
    assert restored.n == original.n == 201
    assert _masks(restored, specs) == _masks(original, specs)
    assert sum(map(len, _masks(original, specs))) > 500  # the filters select rows
    for index in (original, restored):
        index.clear(7)
        index.add([{"x": "a", "y": [1, "b"]}, None, {"z": date(2021, 3, 4), "v": 5}])
        index.clear(201)
    specs.append({"v": 5})
    assert _masks(restored, specs) == _masks(original, specs)
    assert restored.state()[0] == original.state()[0]


def test_a_state_that_does_not_hold_is_refused() -> None:
    index = MetadataIndex()
    index.add([{"x": "a", "tags": ["p", "q"]}, {"x": "b", "n": 2}])
    info, arrays = index.state()
    bad = dict(arrays, **{"0.codes": np.array([0, 5], dtype=np.int32)})  # a code past the string table
    with pytest.raises(ValueError, match="string code outside"):
        MetadataIndex.from_state(info, bad)
    with pytest.raises(ValueError, match=r"'2.num' is float32\[2\], not float64\[2\]"):
        MetadataIndex.from_state(info, dict(arrays, **{"2.num": arrays["2.num"].astype(np.float32)}))
    with pytest.raises(ValueError, match="'1.element_row' is missing"):
        MetadataIndex.from_state(info, {k: v for k, v in arrays.items() if k != "1.element_row"})
    with pytest.raises(ValueError, match="a list element of a row outside"):
        MetadataIndex.from_state(info, dict(arrays, **{"1.element_row": np.array([0, 9], dtype=np.int64)}))
