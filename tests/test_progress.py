"""rapidrag.progress: a bar on terminals only, and the long commands' use of it."""

from __future__ import annotations

import io

from rapidrag.progress import Progress
from rapidrag.retriever import Retriever, evaluate
from rapidrag.tuning import tune


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_and_silent_elsewhere() -> None:
    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        with Progress(3, "work", unit="queries", stream=stream) as bar:
            for done in range(1, 4):
                bar.update(done, "note")
    assert "work [" in tty.getvalue() and "3/3 queries, note" in tty.getvalue() and tty.getvalue().endswith("\n")
    assert pipe.getvalue() == ""
    erased = Terminal()
    with Progress(1, "row", stream=erased, erase=True) as bar:
        bar.update(1)
    assert erased.getvalue().endswith("\r\x1b[K")  # the printed result takes the bar's place
    forced = io.StringIO()
    Progress(1, "forced", enabled=True, stream=forced).update(1)
    assert "forced" in forced.getvalue()


def test_eval_and_tune_draw_on_a_terminal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    r = Retriever()
    r.add([{"id": f"d{i}", "text": f"document {i} about topic{i % 3}"} for i in range(30)])
    queries = {f"q{i}": f"topic{i % 3}" for i in range(6)}
    qrels = {f"q{i}": {f"d{i % 3}": 1} for i in range(6)}
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    evaluate(r, queries, qrels, mode="lexical", progress="lexical")
    assert "lexical [" in stderr.getvalue() and "6/6 queries" in stderr.getvalue()
    stderr.seek(0)
    stderr.truncate()
    tune(r, queries, qrels, progress=None)
    assert "tuning bm25 [" in stderr.getvalue() and "/10 settings" in stderr.getvalue()
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)  # not a terminal: nothing drawn
    evaluate(r, queries, qrels, mode="lexical", progress="lexical")
    tune(r, queries, qrels, progress=None)
    assert pipe.getvalue() == ""
