"""Versioned binary snapshots of one partition's feature state, on local disk.

A snapshot holds a partition's whole engine state (its arrays, raw), the engine's sweep
bookkeeping and the event-time guard's watermark, as of an **offset**: the next record to read,
so the state is the function of the partition's records below it. It is written only when that
offset is committed (the detector drains its sink worker first), so it never covers a record
whose outputs are not durable. Restore loads the newest valid snapshot at or below the committed
offset and replays the tail (``_restore``).

File layout (little endian)::

    b"FSSNAP\\0\\0" | u32 version | u32 header length | header (JSON) | arrays | u32 CRC-32

The header names the engine's fingerprint, topic, partition, offset, the record just below the
offset (its broker timestamp and CRC-32 of its value: a restore reads it back to check the topic
is the one the snapshot was taken from, not a re-created one) and each array's name, dtype and
shape; the CRC covers everything before it. No pickle: a file is numbers and JSON only. Files
live in ``<dir>/<topic>/<partition>/<fingerprint>-<offset>.snap``, written to a temporary file
then renamed, the newest :data:`KEEP` per partition and fingerprint kept. With shared
snapshots (``_shared``), each new file is also uploaded to object storage, and a restore takes
the newest usable one of the local and the shared files (a shared one is downloaded first).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
from confluent_kafka import Message

from fraudstream.features._state import SavedPartition

if TYPE_CHECKING:
    from fraudstream.stream._shared import SharedSnapshots

__all__ = [
    "FORMAT_VERSION",
    "KEEP",
    "RecordMark",
    "Snapshot",
    "SnapshotStore",
    "mark_of",
    "snapshot_name",
    "snapshot_offsets",
]

log = logging.getLogger(__name__)

P = TypeVar("P", bound=PurePath)

MAGIC: Final = b"FSSNAP\0\0"
#: Bumped whenever the file layout changes: files of another version are not loaded.
FORMAT_VERSION: Final = 1
#: Snapshots kept per partition: the newest may be ahead of a committed offset (a commit lost
#: after it was written), the one before is then used.
KEEP: Final = 2
_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class RecordMark:
    """A record of the source topic, enough to recognise it: offset, broker timestamp and the
    CRC-32 of its value."""

    offset: int
    timestamp_ms: int
    value_crc: int


def mark_of(msg: Message) -> RecordMark:
    """The :class:`RecordMark` of a consumed message."""
    return RecordMark(msg.offset() or 0, msg.timestamp()[1], zlib.crc32(msg.value() or b""))


@dataclass(frozen=True)
class Snapshot:
    """A partition's state as of ``offset`` (the next record to read)."""

    topic: str
    partition: int
    offset: int
    fingerprint: str
    last: RecordMark  # the record at ``offset - 1``
    state: SavedPartition
    guard_watermark_ms: int | None


def snapshot_name(fingerprint: str, offset: int) -> str:
    """The file name of a snapshot (its offset zero-padded: names sort by offset)."""
    return f"{fingerprint}-{offset:020d}.snap"


class SnapshotStore:
    """Snapshots under ``root`` (see the module docstring), also in ``shared`` if given."""

    def __init__(self, root: Path, shared: SharedSnapshots | None = None) -> None:
        self.root = Path(root)
        self.shared = shared

    def _dir(self, topic: str, partition: int) -> Path:
        return self.root / topic / str(partition)

    def save(self, snap: Snapshot) -> Path:
        """Write ``snap`` (atomically: a crash leaves the older files) and prune older ones."""
        started = time.monotonic()
        folder = self._dir(snap.topic, snap.partition)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / snapshot_name(snap.fingerprint, snap.offset)
        tmp = path.with_suffix(".tmp")
        arrays = {k: np.ascontiguousarray(a) for k, a in snap.state.arrays.items()}
        header = json.dumps(
            {
                "topic": snap.topic,
                "partition": snap.partition,
                "offset": snap.offset,
                "fingerprint": snap.fingerprint,
                "last": [snap.last.offset, snap.last.timestamp_ms, snap.last.value_crc],
                "watermark_ms": snap.state.watermark_ms,
                "swept_ms": snap.state.swept_ms,
                "guard_watermark_ms": snap.guard_watermark_ms,
                "arrays": [[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()],
            }
        ).encode()
        crc = 0
        size = 0
        with tmp.open("wb") as f:
            for part in (_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)), header):
                f.write(part)
                crc = zlib.crc32(part, crc)
            for a in arrays.values():
                view = a.data.cast("B")
                f.write(view)
                crc = zlib.crc32(view, crc)
                size += a.nbytes
            f.write(_CRC.pack(crc))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        self._prune(folder, snap.fingerprint)
        log.info(
            "snapshot of %s[%d] at offset %d: %.1f MB in %.2f s",
            snap.topic,
            snap.partition,
            snap.offset,
            size / 1e6,
            time.monotonic() - started,
        )
        if self.shared is not None:
            self.shared.publish(path, snap.topic, snap.partition)
        return path

    def close(self) -> None:
        """Finish the shared uploads still waiting (with a time limit)."""
        if self.shared is not None:
            self.shared.close()

    def _prune(self, folder: Path, fingerprint: str) -> None:
        for old in sorted(folder.glob(f"{fingerprint}-*.snap"))[:-KEEP]:
            old.unlink(missing_ok=True)

    def newest(
        self,
        topic: str,
        partition: int,
        fingerprint: str,
        max_offset: int,
        *,
        keep_alive: Callable[[], object] | None = None,
    ) -> Snapshot | None:
        """The newest valid snapshot of ``partition`` with an offset at most ``max_offset`` (the
        committed offset) taken by an engine of ``fingerprint``, local or shared (downloaded
        first, ``keep_alive`` called meanwhile); ``None`` if there is none. A file that is
        corrupt, truncated, of another version or another fingerprint is skipped with a
        warning, as is a shared one that cannot be listed or downloaded."""
        folder = self._dir(topic, partition)
        local: dict[int, list[Path]] = {}  # every fingerprint's files (another's is warned of)
        mine = f"{fingerprint}-"
        for offset, file in snapshot_offsets(folder.glob("*.snap")) if folder.is_dir() else ():
            local.setdefault(offset, []).append(file)
        remote = self._shared_names(topic, partition, fingerprint, keep_alive)
        for offset in sorted(local.keys() | remote.keys(), reverse=True):
            if offset > max_offset:
                continue  # ahead of the committed offset: covers uncommitted records
            where = (topic, partition, offset)
            for file in sorted(local.get(offset, ()), key=lambda p: not p.name.startswith(mine)):
                if snap := _checked(file, where, fingerprint):
                    return snap
            if offset in remote and (
                path := self._download(topic, partition, remote[offset], keep_alive)
            ):
                if snap := _checked(path, where, fingerprint):
                    return snap
                path.unlink(missing_ok=True)  # a bad download: not left to be tried again
        return None

    def _shared_names(
        self,
        topic: str,
        partition: int,
        fingerprint: str,
        keep_alive: Callable[[], object] | None,
    ) -> dict[int, str]:
        """Offsets and names of the partition's shared snapshots (none when it cannot list)."""
        if self.shared is None:
            return {}
        try:
            return dict(self.shared.listing(topic, partition, fingerprint, keep_alive))
        except Exception as exc:  # botocore's errors share no useful base class
            log.warning(
                "cannot list the shared snapshots of %s[%d] in %s: %s; local ones only",
                topic,
                partition,
                self.shared.location.describe(),
                exc,
            )
            return {}

    def _download(
        self, topic: str, partition: int, name: str, keep_alive: Callable[[], object] | None
    ) -> Path | None:
        assert self.shared is not None
        try:
            return self.shared.fetch(
                topic, partition, name, self._dir(topic, partition), keep_alive
            )
        except Exception as exc:  # botocore's errors share no useful base class
            log.warning(
                "cannot download shared snapshot %s of %s[%d]: %s; trying an older one",
                name,
                topic,
                partition,
                exc,
            )
            return None


def _checked(path: Path, where: tuple[str, int, int], fingerprint: str) -> Snapshot | None:
    """The snapshot in ``path`` if it is valid, of ``fingerprint`` and the one its name and
    place say (``where``: topic, partition, offset), else ``None`` with a warning."""
    try:
        snap = read_snapshot(path)
    except (OSError, ValueError) as exc:
        log.warning("ignoring snapshot %s: %s", path, exc)
        return None
    if snap.fingerprint != fingerprint:
        log.warning(
            "ignoring snapshot %s: taken by another feature engine or settings "
            "(fingerprint %s, this engine's %s)",
            path,
            snap.fingerprint,
            fingerprint,
        )
        return None
    if (snap.topic, snap.partition, snap.offset) != where:
        log.warning("ignoring snapshot %s: its header names another partition", path)
        return None
    return snap


def snapshot_offsets(paths: Iterable[P]) -> list[tuple[int, P]]:
    """The offset each snapshot file is named after (other names are skipped)."""
    out: list[tuple[int, P]] = []
    for path in paths:
        try:
            out.append((int(path.stem.rsplit("-", 1)[1]), path))
        except (IndexError, ValueError):
            log.warning("ignoring %s: not a snapshot file name", path)
    return out


def read_snapshot(path: Path) -> Snapshot:
    """The snapshot in ``path``; ``ValueError`` if it is corrupt, truncated or of another
    format version."""
    raw = path.read_bytes()
    if len(raw) < _PREFIX.size + _CRC.size:
        raise ValueError(f"truncated ({len(raw)} bytes)")
    magic, version, hlen = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError("not a fraudstream snapshot")
    if version != FORMAT_VERSION:
        raise ValueError(f"format version {version}, this build reads {FORMAT_VERSION}")
    (crc,) = _CRC.unpack_from(raw, len(raw) - _CRC.size)
    body = memoryview(raw)[: len(raw) - _CRC.size]
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch (corrupt or truncated)")
    at = _PREFIX.size + hlen
    try:
        head = json.loads(bytes(body[_PREFIX.size : at]))
        arrays = _arrays(body, at, head["arrays"])
        last = RecordMark(*(int(v) for v in head["last"]))
        return Snapshot(
            topic=str(head["topic"]),
            partition=int(head["partition"]),
            offset=int(head["offset"]),
            fingerprint=str(head["fingerprint"]),
            last=last,
            state=SavedPartition(arrays, head["watermark_ms"], head["swept_ms"]),
            guard_watermark_ms=head["guard_watermark_ms"],
        )
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"bad header: {exc}") from exc


def _arrays(body: memoryview, at: int, specs: list[Any]) -> dict[str, npt.NDArray[Any]]:
    """The arrays ``specs`` (name, dtype, shape) laid one after another from ``body[at:]``."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name, dtype, shape in specs:
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise ValueError(f"array {name} holds objects")
        count = int(np.prod(shape, dtype=np.int64))
        end = at + count * dt.itemsize
        if end > len(body):
            raise ValueError(f"array {name} runs past the end")
        out[str(name)] = np.frombuffer(body[at:end], dtype=dt).reshape(shape).copy()
        at = end
    if at != len(body):
        raise ValueError(f"{len(body) - at} bytes after the last array")
    return out
