"""The checkpoint directory layout (spec §12.1, §12.6): where snapshot files go and which to load.

```
<root>/<cluster>/<host>/<from>.json | <from>.bin | <from>.bin.tmp | current.wal
```

Files are written atomically (`<name>.tmp`, fsync, rename, fsync of the directory), so a crash
never leaves a half-written `<from>.json` behind, unlike upstream which writes in place.
Deviation from upstream, on purpose: a `.json`/`.bin` file whose base name is not an integer,
and stray files at the cluster and host levels, are logged and skipped instead of aborting the
start.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .checkpoint_bin import decode_bin, encode_bin
from .checkpoint_json import decode_json, encode_json
from .snapshot import Snapshot

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "SNAPSHOT_SUFFIXES",
    "make_dirs",
    "fsync_dir",
    "write_file_atomic",
    "write_snapshot_file",
    "list_host_dirs",
    "snapshot_files",
    "select_restore_files",
    "select_cleanup_files",
    "load_snapshot_file",
    "restore_host_files",
]

log = logging.getLogger("metricstore")

FILE_MODE = 0o644
DIR_MODE = 0o755
SNAPSHOT_SUFFIXES = (".json", ".bin")
_TIMESTAMP = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.ParseInt accepts


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """Create missing directories with mode 0755 (exactly, not narrowed by the umask)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write `path` as `<path>.tmp`, fsync, rename over `path`, fsync the directory; mode 0644."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_snapshot_file(
    dirpath: str | os.PathLike[str],
    cluster: str,
    host: str,
    from_: int,
    snap: Snapshot,
    fmt: Literal["json", "bin"],
) -> Path:
    """Write one host's snapshot as `<dirpath>/<cluster>/<host>/<from>.<fmt>`; returns the path."""
    for part in (cluster, host):
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise ValueError(f"unsafe name for a checkpoint directory: {part!r}")
    if fmt == "json":
        data = encode_json(snap)
    elif fmt == "bin":
        data = encode_bin(snap)
    else:
        raise ValueError(f"unknown checkpoint format {fmt!r} (use 'json' or 'bin')")
    path = Path(dirpath) / cluster / host / f"{int(from_)}.{fmt}"
    write_file_atomic(path, data)
    return path


def list_host_dirs(root: str | os.PathLike[str]) -> list[tuple[str, str, Path]]:
    """(cluster, host, path) of every `<root>/<cluster>/<host>` directory, sorted.

    A missing root gives []. Files where directories belong are logged and skipped (upstream
    refuses to start).
    """
    root = Path(root)
    out: list[tuple[str, str, Path]] = []
    try:
        clusters = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for c in clusters:
        if not c.is_dir():
            log.warning("checkpoint directory %s: %s is not a directory, ignored", root, c.name)
            continue
        try:
            hosts = sorted(os.scandir(c.path), key=lambda e: e.name)
        except OSError as e:
            log.error("checkpoint directory %s cannot be read: %s", c.path, e)
            continue
        for h in hosts:
            if not h.is_dir():
                log.warning("checkpoint directory %s: %s is not a directory, ignored", c.path, h.name)
                continue
            out.append((c.name, h.name, Path(h.path)))
    return out


def snapshot_files(host_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(timestamp, path) of the `.json`/`.bin` files of a host directory, ascending.

    `.tmp` files, `current.wal`, sub-directories and other files are ignored; a snapshot file
    whose base name is not an integer is logged and skipped.
    """
    host_dir = Path(host_dir)
    out: list[tuple[int, Path]] = []
    for e in os.scandir(host_dir):
        name = e.name
        suffix = next((s for s in SNAPSHOT_SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            continue
        base = name[: -len(suffix)]
        if not _TIMESTAMP.fullmatch(base):
            log.warning("checkpoint file %s: name is not <timestamp>%s, skipped", host_dir / name, suffix)
            continue
        if not e.is_file():
            continue
        out.append((int(base), Path(e.path)))
    out.sort(key=lambda t: (t[0], t[1].name))
    return out


def select_restore_files(host_dir: str | os.PathLike[str], window_start: int) -> list[Path]:
    """Files to load at start (spec §12.6), ascending: name timestamp ≥ `window_start`, plus
    the last file before it if the next file is after it (its interval reaches into the window).
    An unreadable directory is logged and gives [] (upstream refuses to start).
    """
    try:
        files = snapshot_files(host_dir)
    except OSError as e:
        log.error("checkpoint directory %s cannot be read, nothing restored from it: %s", host_dir, e)
        return []
    out: list[Path] = []
    for i, (ts, path) in enumerate(files):
        if ts >= window_start:
            out.append(path)
        elif i + 1 < len(files) and files[i + 1][0] > window_start:
            out.append(path)
    return out


def select_cleanup_files(host_dir: str | os.PathLike[str], cutoff: int) -> list[Path]:
    """Files old enough for cleanup (spec §12.7): name timestamp ≤ `cutoff` and not 0."""
    return [p for ts, p in snapshot_files(host_dir) if ts <= cutoff and ts != 0]


def load_snapshot_file(path: str | os.PathLike[str]) -> Snapshot:
    """Read and decode a `.json` or `.bin` snapshot file (ValueError if it is corrupt)."""
    path = Path(path)
    if path.suffix == ".json":
        decode = decode_json
    elif path.suffix == ".bin":
        decode = decode_bin
    else:
        raise ValueError(f"{path}: not a checkpoint file (.json or .bin)")
    with open(path, "rb") as f:
        data = f.read()
    return decode(data)


def restore_host_files(
    host_dir: str | os.PathLike[str], window_start: int
) -> Iterator[tuple[Path, Snapshot | Exception]]:
    """Decode the files `select_restore_files` picks, in order; files whose `to` is non-zero and
    before the window are dropped. A file that cannot be read yields its exception instead."""
    for path in select_restore_files(host_dir, window_start):
        try:
            snap = load_snapshot_file(path)
        except (OSError, ValueError) as e:
            yield path, e
            continue
        if snap.to and snap.to < window_start:
            continue
        yield path, snap
