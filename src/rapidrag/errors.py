"""The exception hierarchy: every rapidrag error is a RapidragError and also the matching built-in."""

from __future__ import annotations

__all__ = [
    "DataFormatError", "FilterError", "IndexConflictError", "IndexFormatError", "IndexOptionError", "ModelError",
    "ModelMismatchWarning", "RapidragError", "ShardUnavailableError", "VocabularyError",
]  # fmt: skip


class RapidragError(Exception):
    """Base class of the errors rapidrag raises on purpose."""


class VocabularyError(RapidragError, ValueError):
    """A vocabulary or tokenizer file is missing something or is malformed; the message names file and line."""


class DataFormatError(RapidragError, ValueError):
    """An input data file (jsonl, qrels) is malformed; the message names file and line."""


class ModelError(RapidragError, ValueError):
    """A model file that cannot be used: corrupt, or without the inputs and outputs rapidrag needs."""


class IndexFormatError(RapidragError, ValueError):
    """A saved index that cannot be loaded: missing, truncated, corrupted, or of another format version."""


class IndexConflictError(RapidragError):
    """A save or reload that would lose changes: the folder was saved by another writer since this copy of the
    index was loaded from it or last saved there (a save would drop that writer's changes), or a reload would drop
    this copy's unsaved ones."""


class IndexOptionError(RapidragError, ValueError):
    """A setting of the dense index that is unknown, out of range, or that a built index cannot change."""


class FilterError(RapidragError, ValueError):
    """A malformed metadata filter; the message names the path to the bad part."""


class ShardUnavailableError(RapidragError):
    """A shard of an index split in shards has no live replica left for what was asked (a change, or a search
    with no shard at all): the index cannot answer now, which no change of the request mends."""


class ModelMismatchWarning(UserWarning):
    """A loaded index was given a model (``role``: "embedder" or "reranker") whose weights are not the file that
    built it: searches run, but vectors it adds are not comparable with the index's (``rapidrag index --update``
    refuses such an embedder)."""

    def __init__(self, message: str, role: str) -> None:
        super().__init__(message)
        self.role = role
