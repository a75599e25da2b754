"""Atomic, checksummed snapshots of an index in a directory.

Layout of a saved index at ``path``::

    path/MANIFEST.json      format, version, configuration, and the size and SHA-256 of every data file
    path/<generation>/...   the data files of the snapshot the manifest names
    path/.lock              taken (flock) while a save runs

A save writes a new generation folder (each file fsynced, then the folder), then a new manifest beside the old
one, fsyncs it and renames it over ``MANIFEST.json`` (atomic on POSIX), fsyncs ``path``, and only then removes
the older generations. A crash at any point leaves ``MANIFEST.json`` naming a complete generation: the old one
until the rename, the new one after. Loading checks the manifest's own checksum and every file's size and
SHA-256 before parsing it, so a truncated or corrupted file is an error that names it, not a crash inside a
parser (FAISS aborts on some malformed input) or a silently wrong answer.

Several writers of one folder (a service saving what it was sent, ``rapidrag index --update`` run beside it) lose
nothing: each copy of an index remembers the generation it loaded or last saved in each folder (``Lineage``), and a
save into a folder that another writer has saved since is refused (``IndexConflictError``; checked under the
lock), rather than replacing that writer's snapshot with one that lacks its changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import IndexConflictError, IndexFormatError

__all__ = [
    "IndexFormatError", "Lineage", "Snapshot", "Written", "check_destination", "check_generation",
    "current_generation", "read_snapshot", "sha256_file", "write_snapshot",
]  # fmt: skip

MANIFEST = "MANIFEST.json"
FORMAT = "rapidrag-index"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_file_mode() -> int:
    """The mode ``open`` gives a new file under the process's umask (temporary files get 0600 instead)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read in blocks (model files are 10^7-10^8 bytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_checksum(body: Mapping[str, Any]) -> str:
    return _digest(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def check_destination(path: str | os.PathLike[str]) -> None:
    """Raise FileExistsError unless ``path`` can take a snapshot: new, an empty folder, or a saved index (the
    same check ``write_snapshot`` makes, for callers that want to refuse before doing the work)."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder")
    if not root.is_dir():
        return
    stray = [p.name for p in root.iterdir() if p.name not in (MANIFEST, ".lock") and not _is_part(p.name)]
    if stray and not (root / MANIFEST).exists():
        raise FileExistsError(
            f"{root}: the folder holds other files ({', '.join(sorted(stray)[:3])}...) and no saved index; "
            "save into an empty or new folder"
        )


class Written(NamedTuple):
    """A snapshot written: its folder, and the generation its manifest names."""

    path: Path
    generation: str


def current_generation(path: str | os.PathLike[str]) -> str | None:
    """The generation the manifest at ``path`` names now: None where there is no manifest, "" where it cannot be
    read (a corrupted manifest is not a snapshot anyone loaded)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ""
    generation = manifest.get("generation") if isinstance(manifest, dict) else None
    return generation if isinstance(generation, str) else ""


def check_generation(path: str | os.PathLike[str], expect: str | None) -> None:
    """Raise IndexConflictError if the folder ``path`` holds a snapshot other than generation ``expect`` (None:
    no check; a folder with no manifest holds nothing to lose)."""
    if expect is None:
        return
    now = current_generation(path)
    if now is not None and now != expect:
        raise IndexConflictError(
            f"{path}: saved by another writer since this index was loaded from it or last saved there (generation "
            f"{expect}, now {now or 'unreadable'}); saving would lose that save's changes. Reload the index "
            "(reload(), POST /reload) and make the changes again, save to another folder, or replace it (force=True)"
        )


def write_snapshot(
    path: str | os.PathLike[str],
    files: Mapping[str, bytes],
    config: Mapping[str, Any],
    *,
    version: int,
    expect: str | None = None,
    after_file: Callable[[str], None] | None = None,
) -> Written:
    """Write ``files`` (name -> bytes) and ``config`` as a new snapshot at ``path``, atomically.

    ``path`` is created if missing; an existing folder must be empty or hold a saved index (anything else is
    refused, so that a wrong path never has its contents mixed with an index). ``expect``: the generation the
    folder must hold (``check_generation``, under the lock), None for any. ``after_file`` is called after
    each data file is written (tests use it to stop a save in the middle).
    """
    root = Path(path)
    check_destination(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        check_generation(root, expect)
        generation = f"gen-{time.time_ns():x}-{secrets.token_hex(4)}"
        folder = root / generation
        folder.mkdir()
        entries = {}
        for name, data in files.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"bad snapshot file name {name!r}")
            _write_file(folder / name, data)
            entries[name] = {"bytes": len(data), "sha256": _digest(data)}
            if after_file is not None:
                after_file(name)
        _fsync_dir(folder)
        body = {
            "format": FORMAT,
            "version": version,
            "generation": generation,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": dict(config),
            "files": entries,
        }
        manifest = {**body, "checksum": _manifest_checksum(body)}
        staged = root / f".{MANIFEST}.{generation}.tmp"
        _write_file(staged, json.dumps(manifest, indent=1, sort_keys=True).encode())
        if after_file is not None:
            after_file(MANIFEST)
        os.replace(staged, root / MANIFEST)
        _fsync_dir(root)
        for old in root.iterdir():  # earlier generations, and the leftovers of interrupted saves
            if old.name != generation and (_is_generation(old.name) or old.name.startswith(f".{MANIFEST}.")):
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
    return Written(root, generation)


class Lineage:
    """The generations one copy of an index loaded or saved, by folder; a save into one of those folders
    (``saving``) expects the generation it knows there (``write_snapshot``'s ``expect``), so that it never replaces
    a snapshot another writer saved since. ``origin``: the folder last loaded from or saved to (what a reload
    opens again). Saves of one copy run one at a time (two saves of one service are not a conflict)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._known: dict[Path, str] = {}
        self.origin: Path | None = None

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> Path:
        return Path(path).resolve()

    def seen(self, path: str | os.PathLike[str], generation: str) -> None:
        """Record that this copy holds generation ``generation`` of ``path`` (loaded, or saved)."""
        key = self._key(path)
        self._known[key] = generation
        self.origin = key

    def known(self, path: str | os.PathLike[str]) -> str | None:
        """The generation of ``path`` this copy loaded or last saved (None: it never did)."""
        return self._known.get(self._key(path))

    def holds(self, path: str | os.PathLike[str], generation: str) -> bool:
        """Whether this copy holds generation ``generation`` of ``path`` now (its last load or save)."""
        key = self._key(path)
        return key == self.origin and self._known.get(key) == generation

    @property
    def generation(self) -> str | None:
        """The generation of ``origin`` this copy holds."""
        return self._known.get(self.origin) if self.origin is not None else None

    @contextlib.contextmanager
    def swapping(self) -> Iterator[None]:
        """Hold this copy's saves back while it takes another snapshot (a reload) and records its generation, so
        that a save never expects the generation being replaced."""
        with self._mutex:
            yield

    @contextlib.contextmanager
    def saving(self, path: str | os.PathLike[str], *, force: bool = False) -> Iterator[str | None]:
        """Hold this copy's other saves back while one runs; yields the generation a save into ``path`` expects
        to find there (``write_snapshot``'s ``expect``): the one this copy knows, None with ``force`` or for a
        folder it never loaded or saved. The save records what it wrote with ``seen``."""
        with self._mutex:
            yield None if force else self.known(path)


def _is_generation(name: str) -> bool:
    return name.startswith("gen-")


PART_PREFIX = "part-"  # the folder of a part of an index made of parts (a shard): a snapshot of its own


def _is_part(name: str) -> bool:
    """Whether ``name`` belongs to a saved index: a generation, or a part written before the index's manifest."""
    return _is_generation(name) or name.startswith(PART_PREFIX)


class Snapshot:
    """A loaded manifest; ``read(name)`` returns a data file's bytes after checking its size and checksum."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.version: int = manifest["version"]
        self.config: dict[str, Any] = manifest["config"]
        self.files: dict[str, dict[str, Any]] = manifest["files"]
        self.generation: str = str(manifest["generation"])
        self.folder: Path = root / self.generation

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def read(self, name: str) -> bytes:
        entry = self.files.get(name)
        if entry is None:
            raise IndexFormatError(f"{self.root}: the index has no file {name!r}")
        file: Path = self.folder / name
        try:
            data = file.read_bytes()
        except OSError as e:
            raise IndexFormatError(f"{file}: cannot read ({e.strerror}); the index is incomplete") from None
        if len(data) != entry["bytes"]:
            raise IndexFormatError(f"{file}: {len(data)} bytes where {entry['bytes']} were saved (truncated?)")
        if _digest(data) != entry["sha256"]:
            raise IndexFormatError(f"{file}: checksum mismatch, the file is corrupted")
        return data

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexFormatError(f"{self.folder / name}: not valid JSON ({e})") from None

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        try:
            with np.load(io.BytesIO(self.read(name)), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except IndexFormatError:
            raise
        except Exception as e:  # numpy raises several types for malformed archives
            raise IndexFormatError(f"{self.folder / name}: not a valid array archive ({e})") from None


def read_snapshot(path: str | os.PathLike[str], *, version: int | tuple[int, ...]) -> Snapshot:
    """Open the snapshot at ``path``: the manifest is read and checked; data files are checked as they are read.
    ``version``: the format version, or versions, the caller reads."""
    root = Path(path)
    file = root / MANIFEST
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such index folder")
    if not file.is_file():
        raise IndexFormatError(f"{root}: no {MANIFEST}; not a saved rapidrag index (or its first save never finished)")
    try:
        manifest = json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexFormatError(f"{file}: not valid JSON ({e}); the manifest is corrupted") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{file}: not a rapidrag index manifest")
    checksum = manifest.pop("checksum", None)
    if checksum != _manifest_checksum(manifest):
        raise IndexFormatError(f"{file}: checksum mismatch, the manifest is corrupted")
    versions = (version,) if isinstance(version, int) else version
    if manifest.get("version") not in versions:
        readable = " or ".join(map(str, versions))
        raise IndexFormatError(
            f"{file}: index format version {manifest.get('version')!r}; this rapidrag reads version {readable}"
        )
    return Snapshot(root, manifest)


def save_arrays(**arrays: np.ndarray) -> bytes:
    """An uncompressed .npz archive of ``arrays`` (no pickled objects)."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()
