"""Cleanup of old checkpoint files (spec §12.7): delete them, archive them to Parquet, or zip them.

A candidate is a `.json`/`.bin` file of a host directory whose name timestamp is ≤ the cutoff
(and not 0); `current.wal` and `.tmp` files are never touched. The functions block (file I/O,
decoding, compression); the daemon runs them in a worker thread.

Parquet (current upstream): one file per cluster, `<archive>/<cluster>/<cutoff>.parquet`, zstd,
one row group per host, one row per non-NaN value with the columns of `PARQUET_SCHEMA`; rows of
a host sorted by metric, then timestamp. Candidate files are deleted only once the cluster's file
is complete; a file that cannot be decoded is skipped and kept; hosts without rows keep their
files (tried again next time); a cluster whose directory cannot be read, or whose Parquet file
cannot be written, keeps all its files and gets no Parquet file.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .files import FILE_MODE, fsync_dir, load_snapshot_file, make_dirs, select_cleanup_files
from .snapshot import Snapshot

__all__ = ["PARQUET_SCHEMA", "parse_scope", "cleanup_delete", "cleanup_parquet", "cleanup_zip"]

log = logging.getLogger("metricstore")

PARQUET_SCHEMA = pa.schema(
    [
        pa.field("cluster", pa.string(), nullable=False),
        pa.field("hostname", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("scope", pa.string(), nullable=False),
        pa.field("scope_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("frequency", pa.int64(), nullable=False),
        pa.field("value", pa.float32(), nullable=False),
    ]
)

# prefix of a child level's name → scope; the first match followed by a digit wins
_SCOPE_PREFIXES = (
    ("socket", "socket"),
    ("memoryDomain", "memoryDomain"),
    ("core", "core"),
    ("hwthread", "hwthread"),
    ("cpu", "hwthread"),
    ("accelerator", "accelerator"),
)


def parse_scope(name: str) -> tuple[str, str]:
    """Child level name → (scope, scope_id): `socket12` → ("socket", "12"), `cpu0` →
    ("hwthread", "0"); a name without a known prefix followed by a digit → (name, "")."""
    for prefix, scope in _SCOPE_PREFIXES:
        if len(name) > len(prefix) and name.startswith(prefix) and "0" <= name[len(prefix)] <= "9":
            return scope, name[len(prefix) :]
    return name, ""


def _cluster_dirs(checkpoint_dir: Path) -> Iterator[tuple[str, Path]]:
    try:
        entries = sorted(os.scandir(checkpoint_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for e in entries:
        if e.is_dir():
            yield e.name, Path(e.path)


def _host_dirs(cluster_dir: Path) -> list[tuple[str, Path]]:
    """Host directories of a cluster (OSError if the cluster directory cannot be read)."""
    entries = sorted(os.scandir(cluster_dir), key=lambda e: e.name)
    return [(e.name, Path(e.path)) for e in entries if e.is_dir()]


# ----------------------------------------------------------------------------- delete


def cleanup_delete(checkpoint_dir: str | os.PathLike[str], cutoff: int) -> int:
    """Delete every candidate file; returns how many were deleted."""
    total = 0
    for cluster, cdir in _cluster_dirs(Path(checkpoint_dir)):
        deleted = errors = 0
        try:
            hosts = _host_dirs(cdir)
        except OSError as e:
            log.error("cleanup: cannot read %s: %s", cdir, e)
            continue
        for _host, hdir in hosts:
            try:
                candidates = select_cleanup_files(hdir, cutoff)
            except OSError as e:
                log.error("cleanup: cannot read %s: %s", hdir, e)
                errors += 1
                continue
            for path in candidates:
                try:
                    path.unlink()
                    deleted += 1
                except OSError as e:
                    log.error("cleanup: cannot delete %s: %s", path, e)
                    errors += 1
        if deleted or errors:
            log.info("cleanup: cluster %s: %d checkpoint files deleted, %d errors", cluster, deleted, errors)
        total += deleted
    return total


# ----------------------------------------------------------------------------- parquet


class _HostRows:
    """Column pieces of one host, gathered series by series, turned into one Arrow table."""

    def __init__(self) -> None:
        self.timestamps: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.counts: list[int] = []
        self.frequencies: list[int] = []
        self.metrics: list[str] = []
        self.scopes: list[tuple[str, str]] = []

    def add_level(self, snap: Snapshot, scope: tuple[str, str]) -> None:
        for name in sorted(snap.metrics):
            s = snap.metrics[name]
            data = np.asarray(s.data, dtype=np.float32)
            keep = np.flatnonzero(~np.isnan(data))
            if not len(keep):
                continue
            freq = int(s.frequency)
            self.timestamps.append(int(s.start) + keep.astype(np.int64) * freq)
            self.values.append(data[keep])
            self.counts.append(len(keep))
            self.frequencies.append(freq)
            self.metrics.append(name)
            self.scopes.append(scope)
        for name in sorted(snap.children):
            self.add_level(snap.children[name], parse_scope(name))

    def table(self, cluster: str, host: str) -> pa.Table | None:
        if not self.counts:
            return None
        counts = np.array(self.counts, dtype=np.int64)
        n = int(counts.sum())
        metric_names = sorted(set(self.metrics))
        code = {m: i for i, m in enumerate(metric_names)}
        metric_idx = np.repeat(np.array([code[m] for m in self.metrics], dtype=np.int32), counts)
        scope_names = sorted(set(self.scopes))
        scode = {s: i for i, s in enumerate(scope_names)}
        scope_idx = np.repeat(np.array([scode[s] for s in self.scopes], dtype=np.int32), counts)
        timestamps = np.concatenate(self.timestamps)
        order = np.lexsort((timestamps, metric_idx))  # stable: ties keep level order
        metric_idx = metric_idx[order]
        scope_idx = scope_idx[order]
        columns = [
            pa.repeat(pa.scalar(cluster, pa.string()), n),
            pa.repeat(pa.scalar(host, pa.string()), n),
            pa.array(metric_names, pa.string()).take(pa.array(metric_idx)),
            pa.array([s for s, _ in scope_names], pa.string()).take(pa.array(scope_idx)),
            pa.array([i for _, i in scope_names], pa.string()).take(pa.array(scope_idx)),
            pa.array(timestamps[order]),
            pa.array(np.repeat(np.array(self.frequencies, dtype=np.int64), counts)[order]),
            pa.array(np.concatenate(self.values)[order]),
        ]
        return pa.Table.from_arrays(columns, schema=PARQUET_SCHEMA)


def _archive_host(host_dir: Path, cutoff: int) -> tuple[_HostRows, list[Path]]:
    """Rows of a host's decodable candidate files, and those files (OSError if unreadable)."""
    rows = _HostRows()
    used: list[Path] = []
    for path in select_cleanup_files(host_dir, cutoff):
        try:
            snap = load_snapshot_file(path)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            log.warning("cleanup: skipping unreadable checkpoint %s: %s", path, e)
            continue
        rows.add_level(snap, ("node", ""))
        used.append(path)
    return rows, used


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def cleanup_parquet(
    checkpoint_dir: str | os.PathLike[str], archive_dir: str | os.PathLike[str], cutoff: int
) -> int:
    """Archive candidate files into `<archive_dir>/<cluster>/<cutoff>.parquet`, then delete them.

    Returns the number of checkpoint files archived and deleted.
    """
    total = 0
    for cluster, cdir in _cluster_dirs(Path(checkpoint_dir)):
        target = Path(archive_dir) / cluster / f"{int(cutoff)}.parquet"
        tmp = target.with_name(target.name + ".tmp")
        writer: pq.ParquetWriter | None = None
        archived: list[Path] = []
        nrows = 0
        failed = False
        try:
            for host, hdir in _host_dirs(cdir):
                try:
                    rows, used = _archive_host(hdir, cutoff)
                except OSError as e:
                    log.error("cleanup: cannot read checkpoints of %s/%s: %s", cluster, host, e)
                    failed = True
                    break
                table = rows.table(cluster, host)
                if table is None:
                    continue  # nothing but NaN (or nothing readable): the files stay
                if writer is None:
                    make_dirs(target.parent)
                    writer = pq.ParquetWriter(tmp, PARQUET_SCHEMA, compression="zstd")
                writer.write_table(table, row_group_size=table.num_rows)
                nrows += table.num_rows
                archived.extend(used)
            if writer is not None:
                writer.close()
                writer = None
        except (OSError, pa.ArrowException) as e:
            log.error("cleanup: writing %s failed: %s", target, e)
            failed = True
        finally:
            if writer is not None:
                try:
                    writer.close()
                except (OSError, pa.ArrowException):
                    pass
        if failed or nrows == 0:
            _remove(tmp)
            if failed:
                log.error("cleanup: cluster %s not archived; its checkpoint files are kept", cluster)
            continue
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        deleted = 0
        for path in archived:
            try:
                path.unlink()
                deleted += 1
            except OSError as e:
                log.warning("cleanup: could not remove archived checkpoint %s: %s", path, e)
        log.info(
            "cleanup: cluster %s: %d rows from %d checkpoint files archived to %s",
            cluster,
            nrows,
            deleted,
            target,
        )
        total += deleted
    return total


# ----------------------------------------------------------------------------- zip (legacy)


def cleanup_zip(
    checkpoint_dir: str | os.PathLike[str], archive_dir: str | os.PathLike[str], cutoff: int
) -> int:
    """Legacy archive: per host, `<archive_dir>/<cluster>/<host>/<cutoff>.zip` holding the
    candidate files under their own names; the originals are deleted once the zip is complete.

    Returns the number of checkpoint files archived and deleted.
    """
    total = 0
    for cluster, cdir in _cluster_dirs(Path(checkpoint_dir)):
        deleted = errors = 0
        try:
            hosts = _host_dirs(cdir)
        except OSError as e:
            log.error("cleanup: cannot read %s: %s", cdir, e)
            continue
        for host, hdir in hosts:
            try:
                candidates = select_cleanup_files(hdir, cutoff)
            except OSError as e:
                log.error("cleanup: cannot read %s: %s", hdir, e)
                errors += 1
                continue
            if not candidates:
                continue
            target = Path(archive_dir) / cluster / host / f"{int(cutoff)}.zip"
            tmp = target.with_name(target.name + ".tmp")
            try:
                make_dirs(target.parent)
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    for path in candidates:
                        zf.write(path, arcname=path.name)
                os.chmod(tmp, FILE_MODE)
                os.replace(tmp, target)
                fsync_dir(target.parent)
            except OSError as e:
                log.error("cleanup: writing %s failed, checkpoint files kept: %s", target, e)
                _remove(tmp)
                errors += 1
                continue
            for path in candidates:
                try:
                    path.unlink()
                    deleted += 1
                except OSError as e:
                    log.warning("cleanup: could not remove archived checkpoint %s: %s", path, e)
        if deleted or errors:
            log.info(
                "cleanup: cluster %s: %d checkpoint files zipped to %s, %d errors",
                cluster,
                deleted,
                Path(archive_dir) / cluster,
                errors,
            )
        total += deleted
    return total
