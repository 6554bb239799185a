"""One builder per dataset across processes and machines sharing a cache folder (local disk or NFS), and cleaning of
build folders whose builder died.

The lock is flock() on `<cache>/.lock-<dataset>`: the kernel (or the NFS server, via POSIX locks) drops it when
its holder dies, however it dies, so a lock is never stale. The holder removes the file before releasing it;
a waiter that then wins the lock on the removed file notices the path changed and locks the new one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

BUILDING_PREFIX = ".building-"
LOCK_PREFIX = ".lock-"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def lock_path(root: Path, name: str) -> Path:
    return Path(root) / f"{LOCK_PREFIX}{name}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def exclusive(path: Path, *, wait: bool = True, on_wait=None) -> Iterator[bool]:
    """Hold the lock file `path`; yields True when held. With wait=False yields False at once if another process
    holds it. On a filesystem without locks it yields None after saying so (the atomic rename still protects
    readers; two builders then only waste work). `on_wait()` is called once if we have to wait."""
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    yield False
                    return
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCKS:
                raise
            print(f"note: {path.parent} does not support file locks ({err.strerror}); preparing without one",
                  file=sys.stderr)
            yield None
            return
        if _same_file(fd, path):
            break
        os.close(fd)  # the previous holder removed the file after we opened it: lock the current one
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def shareable(path: Path) -> Path:
    """Give a folder or file made by mkdtemp/mkstemp (private: 0700/0600) the permissions of an ordinary one (0777 or
    0666 minus the umask), so other users and nodes sharing the cache can read it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~mask)
    return Path(path)


def building_folders(root: Path, name: str | None = None) -> list[Path]:
    """Build folders under root, of dataset `name` or of any dataset."""
    pattern = f"{BUILDING_PREFIX}{name}-*" if name else f"{BUILDING_PREFIX}*"
    return sorted(p for p in Path(root).glob(pattern) if p.is_dir())


def dataset_of(building: Path) -> str:
    """'.building-synthetic-0123abcd-x7f2' -> 'synthetic-0123abcd' (mkdtemp's suffix has no '-')."""
    return building.name[len(BUILDING_PREFIX):].rsplit("-", 1)[0]


def remove_stale_builds(root: Path, holding: str) -> list[Path]:
    """Remove build folders left by builders that died. Folders of `holding` (whose lock we hold) are stale by
    definition; another dataset's are stale when its lock is free. Returns what was removed."""
    removed = []
    for folder in building_folders(root):
        name = dataset_of(folder)
        if name == holding:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            continue
        with exclusive(lock_path(root, name), wait=False) as free:
            if free:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed
