"""Reading documents from disk for indexing: a folder of .txt, .md, .html and .jsonl files, or a BEIR corpus.

Each document gets metadata from its source: jsonl fields (all but id/_id, title and text, or its "metadata"
object), Markdown front matter (YAML between ``---`` lines: ``tags: [a, b]`` is a list, ``date: 2024-01-31`` a
date), the HTML ``<title>``, and always ``source`` (the path relative to the folder, with ``:line`` for jsonl) and
``modified`` (the file's modification date, ISO 8601). Files of other types, files that cannot be read as UTF-8
text, documents with no text (an empty file, a jsonl line whose text is blank) and malformed jsonl lines are
skipped and reported (with their line number); front matter that is not YAML and metadata fields that filters
could not use are dropped and reported, their document ingested. ``Ingest.problems`` lists both, ``Ingest.skipped``
counts what was left out, and ``Ingest.unread`` names the files that could not be read in full (what
``rapidrag index --update --prune`` does not take for gone).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .beir import read_jsonl
from .documents import Document
from .filters import check_metadata

__all__ = ["Ingest", "SUFFIXES"]

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".jsonl.gz")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".jsonl.gz" if name.endswith(".jsonl.gz") else path.suffix.lower()


@dataclass
class Ingest:
    """Documents from ``src`` (a folder or one file), read lazily by iterating; ``problems`` fills as it goes:
    what was skipped (files, jsonl lines, repeated ids: ``skipped`` counts them) and what was dropped from a document
    still ingested (a front matter, a metadata field)."""

    src: Path
    problems: list[str] = field(default_factory=list)
    files: int = 0
    skipped: int = 0
    unread: set[str] = field(default_factory=set)  # files (as ``source`` names them) not read in full

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        if not self.src.exists():
            raise FileNotFoundError(f"no such file or folder: {self.src}")

    def __iter__(self) -> Iterator[Document]:
        if self.src.is_file():
            if _suffix(self.src) not in SUFFIXES:
                raise ValueError(f"{self.src}: expected one of {', '.join(SUFFIXES)} or a folder of them")
            yield from self._file(self.src, self.src.name)
            return
        every = sorted(p for p in self.src.rglob("*") if p.is_file())
        files = [p for p in every if _suffix(p) in SUFFIXES]
        if not files:
            raise ValueError(f"{self.src}: no {', '.join(SUFFIXES)} files in this folder")
        for path in every:
            if _suffix(path) not in SUFFIXES:
                self.files += 1
                self._skip(f"{path.relative_to(self.src)}: not a type rapidrag reads ({_suffix(path) or 'no suffix'})")
                continue
            yield from self._file(path, str(path.relative_to(self.src)))

    def unique(self) -> Iterator[Document]:
        """The documents, each id once: a later document with an id already read is skipped and reported (what
        ``rapidrag index`` indexes, in one process or through Ray)."""
        seen: set[str] = set()
        for doc in self:
            if doc.id in seen:
                self._skip(f"{doc.metadata.get('source', doc.id)}: duplicate id {doc.id!r} skipped")
                continue
            seen.add(doc.id)
            yield doc

    def _skip(self, message: str, unread: str | None = None) -> None:
        """A file, line or document left out, and why; ``unread``: the file, when it could not be read in full."""
        self.problems.append(message)
        self.skipped += 1
        if unread is not None:
            self.unread.add(unread)

    def _drop(self, message: str) -> None:
        """Part of a document left out (the document is ingested), and why."""
        self.problems.append(message)

    def _usable(self, meta: dict[str, Any], where: str) -> dict[str, Any]:
        """``meta`` less the fields that filters could not use (each reported), so that one odd field does not
        keep a document out of the index."""
        for key in list(meta):
            try:
                check_metadata({key: meta[key]})
            except TypeError as e:
                self._drop(f"{where}: {e}; that field dropped")
                del meta[key]
        return meta

    def _file(self, path: Path, name: str) -> Iterator[Document]:
        self.files += 1
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat(timespec="seconds")
        kind = _suffix(path)
        if kind in (".jsonl", ".jsonl.gz"):
            yield from self._jsonl(path, name, modified)
            return
        try:
            raw = path.read_bytes()
        except OSError as e:
            self._skip(f"{name}: cannot read ({e.strerror})", name)
            return
        if b"\x00" in raw[:8192]:
            self._skip(f"{name}: binary file", name)
            return
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            self._skip(f"{name}: not UTF-8 text (byte {e.start})", name)
            return
        meta: dict[str, Any] = {}
        title = ""
        if kind in (".md", ".markdown"):
            match = _FRONT_MATTER.match(text)
            if match:
                try:
                    meta.update(_front_matter(match.group(1)))
                except ValueError as e:
                    self._drop(f"{name}: front matter ignored: {e}")
                text = text[match.end() :]
                title = str(meta.pop("title", "") or "")
        elif kind in (".html", ".htm"):
            title, text = _html_text(text)
        if not text.strip() and not title.strip():
            self._skip(f"{name}: no text")
            return
        meta.update(source=name, modified=modified)
        yield Document(name, f"{title}\n\n{text}" if title else text, self._usable(meta, name), title)

    def _jsonl(self, path: Path, name: str, modified: str) -> Iterator[Document]:
        for lineno, obj in read_jsonl(path, label=name, on_error=lambda message: self._skip(message, name)):
            try:
                doc = Document.from_dict(obj, lineno)
            except ValueError as e:
                self._skip(f"{name}:{lineno}: {str(e).split(': ', 1)[-1]}", name)
                continue
            if not doc.text.strip():
                self._skip(f"{name}:{lineno}: no text (document {doc.id!r})")
                continue
            meta = dict(doc.metadata)
            meta.setdefault("source", f"{name}:{lineno}")
            meta.setdefault("modified", modified)
            yield Document(doc.id, doc.text, self._usable(meta, f"{name}:{lineno}"), doc.title)


def _front_matter(block: str) -> dict[str, Any]:
    """The YAML front matter as a dict (PyYAML's safe loader: lists, numbers, booleans and dates typed); a block
    that is not YAML, or not a mapping, raises ValueError."""
    import yaml  # type: ignore[import-untyped]

    try:
        value = yaml.safe_load(block)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 2}" if where is not None else ""  # +2: 0-based, after the opening ---
        raise ValueError(f"not valid YAML{line} ({getattr(e, 'problem', None) or e})") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected key: value lines, got a YAML {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


class _TextOfHtml(HTMLParser):
    SKIP = {"script", "style", "noscript", "template"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.stack.append(tag)
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if any(t in self.SKIP for t in self.stack):
            return
        if "title" in self.stack:
            self.title.append(data)
        else:
            self.parts.append(data)


def _html_text(html: str) -> tuple[str, str]:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    text = re.sub(r" ?\n[ \n]*\n", "\n\n", text).strip()
    return " ".join("".join(parser.title).split()), text
