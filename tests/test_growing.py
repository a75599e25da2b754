"""rapidrag.growing: arrays that rows are appended to without copying the rows they hold."""

from __future__ import annotations

import numpy as np

from rapidrag.chunks import ChunkTable
from rapidrag.filters import MetadataIndex
from rapidrag.growing import GrowingArray


def test_appends_keep_earlier_views_and_writes() -> None:
    grown = GrowingArray(np.arange(4, dtype=np.int64), fill=-1)
    views, moves = [], 0
    for i in range(4, 200):
        before = grown.array
        moves += not np.shares_memory(before, grown.append([i]))
        views.append((before, before.copy()))
    assert moves <= 12  # 4 -> 200 rows growing by half: about log(50) / log(1.5) = 10 moves, not one per append
    assert all(np.array_equal(view, copy) for view, copy in views)  # appends never change what a reader holds
    for i in range(200, 400):  # a write through the view (as a delete marks a row) survives the moves after it
        grown.array[i - 200] *= 10
        grown.append([i])
    assert np.array_equal(grown.array, np.r_[np.arange(200) * 10, np.arange(200, 400)])


def test_new_rows_are_the_fill_and_it_never_shortens() -> None:
    grown = GrowingArray(np.zeros((0, 3), dtype=np.float32))
    grown.append(np.ones((2, 3), dtype=np.float32))
    assert np.array_equal(grown.resize(5), np.r_[np.ones((2, 3)), np.zeros((3, 3))])
    assert grown.resize(1).shape == (5, 3)
    flags = GrowingArray(np.ones(3, dtype=np.int8), fill=-1)
    flags.resize(10)
    flags.resize(40)  # past the first buffer's room: the rows exposed later are the fill too
    assert flags.array.tolist() == [1, 1, 1] + [-1] * 37


def test_a_document_at_a_time_moves_the_chunk_table_and_metadata_rarely() -> None:
    # Before GrowingArray, each append copied every column of the table and of the metadata index (O(rows) a
    # write); now they move only when their buffer is full.
    table, metadata = ChunkTable(), MetadataIndex()
    metadata.add([{"lang": "en", "year": 0}])
    moves = 0
    for d in range(500):
        held = (table.doc, table.start, metadata.columns["lang"].held("codes"), metadata.columns["year"].held("num"))
        table.append(np.array([d, d]), np.array([0, 1]), np.array([0, 5]), np.array([5, 9]))
        metadata.add([{"lang": "en", "year": d}, {"lang": "fr", "year": d}])
        now = (table.doc, table.start, metadata.columns["lang"].held("codes"), metadata.columns["year"].held("num"))
        moves += sum(not np.shares_memory(a, b) for a, b in zip(held, now, strict=True))
    assert moves <= 4 * 20  # four arrays, each moved about log(1000) / log(1.5) times, not 500
    table.kill(np.array([0, 1]))
    assert table.doc[:4].tolist() == [-1, -1, 1, 1] and table.end[-2:].tolist() == [5, 9]
    assert np.flatnonzero(metadata.mask({"year": {"$gte": 498}})).tolist() == [997, 998, 999, 1000]
    assert np.flatnonzero(metadata.mask({"lang": "fr"}))[:3].tolist() == [2, 4, 6]
