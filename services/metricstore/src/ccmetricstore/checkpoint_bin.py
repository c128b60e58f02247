"""Binary snapshot files (`<from>.bin`, spec §12.4), as upstream's WAL mode writes them.

```
u32 magic 0xCC5B0001 | i64 from | i64 to | level
level: u32 num_metrics, num_metrics × (u16 name_len, name, i64 frequency, i64 start,
                                        u32 num_values, num_values × f32)
       u32 num_children, num_children × (u16 name_len, name, level)
```

Little-endian throughout; NaN = missing. Child levels carry no from/to. Names are written sorted
(upstream writes Go map order; readers must not depend on it). Decoding copies each value array
once into an aligned, writable float32 array (restored chunks may be overwritten later).
"""

from __future__ import annotations

import struct

import numpy as np

from .snapshot import SeriesSnapshot, Snapshot

__all__ = ["MAGIC", "encode_bin", "decode_bin"]

MAGIC = 0xCC5B0001
_MAX_DEPTH = 64

_HEAD = struct.Struct("<Iqq")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_SERIES = struct.Struct("<qqI")  # frequency, start, num_values


def _name(name: str) -> bytes:
    raw = name.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"name longer than 65535 bytes: {name[:40]!r}...")
    return _U16.pack(len(raw)) + raw


def _encode_level(snap: Snapshot, out: list[bytes]) -> None:
    out.append(_U32.pack(len(snap.metrics)))
    for name in sorted(snap.metrics):
        s = snap.metrics[name]
        values = np.asarray(s.data, dtype="<f4")
        if len(values) > 0xFFFFFFFF:
            raise ValueError(f"metric {name!r}: too many values for the binary format")
        out.append(_name(name) + _SERIES.pack(int(s.frequency), int(s.start), len(values)))
        out.append(values.tobytes())
    out.append(_U32.pack(len(snap.children)))
    for name in sorted(snap.children):
        out.append(_name(name))
        _encode_level(snap.children[name], out)


def encode_bin(snap: Snapshot) -> bytes:
    """The snapshot file's bytes."""
    out = [_HEAD.pack(MAGIC, int(snap.from_), int(snap.to))]
    _encode_level(snap, out)
    return b"".join(out)


_F4 = np.dtype("<f4")
_unpack_u32 = _U32.unpack_from
_unpack_u16 = _U16.unpack_from
_unpack_series = _SERIES.unpack_from


def _truncated(data: bytes, pos: int, what: str) -> ValueError:
    return ValueError(f"truncated binary snapshot: {what} at offset {pos} (file has {len(data)} bytes)")


def _read_name(data: bytes, pos: int, what: str) -> tuple[str, int]:
    try:
        (n,) = _unpack_u16(data, pos)
    except struct.error:
        raise _truncated(data, pos, f"{what} name") from None
    end = pos + 2 + n
    if end > len(data):
        raise _truncated(data, pos, f"{what} name")
    try:
        return data[pos + 2 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise ValueError(f"corrupt binary snapshot: {what} name at offset {pos} is not UTF-8") from None


class _Parser:
    """Walks the level tree; value arrays are collected as views (one per byte alignment of the
    file) and copied in one `np.concatenate` at the end, which is several times cheaper than a
    copy per metric."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.views = [np.frombuffer(data, _F4, (len(data) - r) // 4, r) for r in range(4)]
        self.parts: list[np.ndarray] = []
        self.pending: list[tuple[dict[str, SeriesSnapshot], str, int, int, int]] = []

    def level(self, pos: int, depth: int) -> tuple[Snapshot, int]:
        if depth > _MAX_DEPTH:
            raise ValueError("corrupt binary snapshot: levels nested too deeply")
        data, size, views = self.data, self.size, self.views
        parts, pending = self.parts, self.pending
        metrics: dict[str, SeriesSnapshot] = {}
        try:
            (count,) = _unpack_u32(data, pos)
        except struct.error:
            raise _truncated(data, pos, "metric count") from None
        pos += 4
        for _ in range(count):
            try:
                (nlen,) = _unpack_u16(data, pos)
                npos = pos + 2
                pos = npos + nlen
                freq, start, n = _unpack_series(data, pos)
            except struct.error:
                raise _truncated(data, pos, "metric header") from None
            try:
                name = data[npos:pos].decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(
                    f"corrupt binary snapshot: metric name at offset {npos} is not UTF-8"
                ) from None
            pos += 20
            end = pos + 4 * n
            if end > size:
                raise _truncated(data, pos, f"{n} values of metric {name!r}")
            k = pos >> 2
            parts.append(views[pos & 3][k : k + n])
            pending.append((metrics, name, freq, start, n))
            pos = end
        children: dict[str, Snapshot] = {}
        try:
            (count,) = _unpack_u32(data, pos)
        except struct.error:
            raise _truncated(data, pos, "child count") from None
        pos += 4
        for _ in range(count):
            name, pos = _read_name(data, pos, "child")
            children[name], pos = self.level(pos, depth + 1)
        return Snapshot(metrics=metrics, children=children), pos

    def finish(self) -> None:
        """Copy all value arrays into one aligned, writable float32 array and hand out slices."""
        if not self.parts:
            return
        values = np.concatenate(self.parts).astype(np.float32, copy=False)
        a = 0
        for metrics, name, freq, start, n in self.pending:
            metrics[name] = SeriesSnapshot(freq, start, values[a : a + n])
            a += n


def decode_bin(data: bytes) -> Snapshot:
    """Parse a snapshot file; ValueError naming the problem for a wrong magic or a corrupt or
    truncated file."""
    data = bytes(data)
    if len(data) < _HEAD.size:
        raise ValueError(f"truncated binary snapshot: {len(data)} bytes, header needs {_HEAD.size}")
    magic, from_, to = _HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise ValueError(f"not a binary snapshot: magic 0x{magic:08X}, expected 0x{MAGIC:08X}")
    parser = _Parser(data)
    snap, end = parser.level(_HEAD.size, 0)
    if end != len(data):
        raise ValueError(
            f"corrupt binary snapshot: {len(data) - end} unexpected bytes after the data (offset {end})"
        )
    parser.finish()
    snap.from_, snap.to = from_, to
    return snap
