"""Atomic file and folder writes: a hidden temporary sibling, fsynced, then renamed into place.

    with atomic_file("cache/x.safetensors") as tmp:     # write to tmp; on success it becomes the file
        save_file(tensors, tmp)
    write_text("runs/timings.json", text)
    with atomic_folder("runs/ckpt/model") as staging:   # a whole folder, swapped in at once
        ...

`os.replace` is atomic on POSIX filesystems, so readers see the old file or the new one, never half of either; a
writer killed mid-write leaves only a hidden `.<name>.<pid>.tmp` that globs for the real names do not match. The
containing folder is fsynced after the rename so the rename itself survives a power loss. On any exception the
temporary file or folder is removed and the old one is left as it was.

The project's caches (model/data/visual_cache.py, analysis/neighbours.py, analysis/projection.py) are written
atomically and read back alike, each in its own loader: a missing file is a miss, and a file that cannot be read is a
miss too, reported with a warning that names it; the cache is then rebuilt.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_folder(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, fsync it and rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; when the block succeeds, fsync its files and swap it in for
    `path` (an old folder there is moved aside first, then removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield staging
        for file in staging.rglob("*"):
            if file.is_file():
                with open(file, "rb+") as handle:
                    os.fsync(handle.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(staging, path)
        fsync_folder(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
