"""Content hashes of source images, cached by (path, size, mtime, ctime): a re-exported folder with new mtimes hashes
to the same fingerprint (and is not prepared again), while any changed byte changes it. ctime is in the key because
a program can restore an edited file's size and mtime but not its ctime, so an edit is never missed."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

from models.files import write_text_atomic

HASH = "sha1"  # also the duplicate-image key of the split, as before: the same files give the same splits


def file_hash(data: bytes) -> str:
    return hashlib.new(HASH, data).hexdigest()


class HashCache:
    """relpath -> (size, mtime_ns, ctime_ns, hash) for the files of one source folder, kept in a JSON file under the cache.
    A missing or unreadable cache file only costs re-hashing; a read-only cache folder is used without saving."""

    def __init__(self, cache_file: Path, source_root: Path):
        self.cache_file, self.source_root = Path(cache_file), Path(source_root)
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            stored = json.loads(self.cache_file.read_text())
            if stored.get("root") == str(self.source_root) and stored.get("key") == [HASH, "size", "mtime", "ctime"]:
                self.entries = stored["files"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass

    def hash(self, relpath: str) -> str:
        path = self.source_root / relpath
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        known = self.entries.get(relpath)
        if known and known[:3] == stamp:
            return known[3]
        digest = file_hash(path.read_bytes())
        self.entries[relpath] = stamp + [digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        text = json.dumps({"root": str(self.source_root), "key": [HASH, "size", "mtime", "ctime"],
                           "files": self.entries})
        try:
            write_text_atomic(self.cache_file, text)
        except OSError:
            pass  # a read-only cache: the hashes are recomputed next time, nothing else changes
        self.changed = False


def hash_cache_file(cache_root: Path, source_root: Path) -> Path:
    key = hashlib.sha256(str(Path(source_root).resolve()).encode()).hexdigest()[:16]
    return Path(cache_root) / ".hashes" / f"{key}.json"


def content_hashes(relpaths: Sequence[str], source_root: Path, cache_root: Path,
                   progress: Callable | None = None) -> list[str]:
    """One content hash per file (same order), reading only files whose (size, mtime) the cache has not seen."""
    cache = HashCache(hash_cache_file(cache_root, source_root), Path(source_root).resolve())
    iterator = progress(relpaths) if progress else relpaths
    try:
        return [cache.hash(r) for r in iterator]
    finally:
        cache.save()
