"""Snapshots in shared object storage, so that a member on another machine restores a partition
from a snapshot plus the tail instead of replaying it from its start.

The files are the local ones (``_snapshot``), byte for byte, under keys that mirror the local
layout: ``<prefix>/<topic>/<partition>/<fingerprint>-<offset>.snap``. A background thread uploads
each new local snapshot (only the newest waiting one per partition: a newer one replaces it) and
then deletes all but the newest :data:`~fraudstream.stream._snapshot.KEEP` of its partition and
fingerprint; a failure is logged and the partition's next snapshot tries again, the consuming
thread never waits for it. A restore lists a partition's snapshots and downloads one to the
local directory (a temporary file, then renamed), calling ``keep_alive`` while it waits so the
member stays in its group however long the transfer takes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from fraudstream._s3 import S3Location, s3_client
from fraudstream.stream._snapshot import KEEP, snapshot_offsets

__all__ = ["SharedSnapshots", "open_shared"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often a waiting restore calls ``keep_alive``.
KEEP_ALIVE_S = 0.2


class SharedSnapshots:
    """Snapshot files below ``location`` (see the module docstring), through ``client`` (boto3)."""

    def __init__(self, location: S3Location, client: Any, *, keep: int = KEEP) -> None:
        self.location = location
        self.client = client
        self.keep = keep
        self._pending: dict[tuple[str, int], tuple[IO[bytes], str]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()  # the current uploader's

    def key(self, topic: str, partition: int, name: str = "") -> str:
        """The key of snapshot file ``name`` of ``topic[partition]`` (``""``: the folder/)."""
        return self.location.key(f"{topic}/{partition}/{name}")

    # -- writing (any thread submits, the uploader thread uploads) ---------------------------

    def publish(self, path: Path, topic: str, partition: int) -> None:
        """Upload the local snapshot ``path`` in the background. The file is opened now, so
        that a local prune meanwhile does not take it away; a waiting older one of the same
        partition is dropped."""
        try:
            f = path.open("rb")
        except OSError as exc:
            log.warning("snapshot %s not uploaded: %s", path, exc)
            return
        with self._wake:
            old = self._pending.pop((topic, partition), None)
            self._pending[(topic, partition)] = (f, path.name)
            if self._thread is None:
                self._closing = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._closing,), name="snapshot-uploader", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        if old is not None:
            old[0].close()

    def close(self, timeout_s: float = 30.0) -> bool:
        """Finish the waiting uploads (at most ``timeout_s``) and stop the uploader (a later
        :meth:`publish` starts another); ``False`` if some were left undone (logged)."""
        thread = self._thread
        with self._wake:
            self._closing.set()
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout_s)
        with self._wake:
            left = [f"{t}[{p}]" for t, p in self._pending]
            for f, _ in self._pending.values():
                f.close()
            self._pending.clear()
            self._thread = None
        if left or (thread is not None and thread.is_alive()):
            log.warning(
                "snapshot upload to %s unfinished after %.0f s at shutdown (%s): the newer "
                "snapshots of those partitions stay local",
                self.location.describe(),
                timeout_s,
                ", ".join(left) or "one in flight",
            )
            return False
        return True

    def _run(self, closing: threading.Event) -> None:
        while True:
            with self._wake:
                while not self._pending and not closing.is_set():
                    self._wake.wait()
                if not self._pending:
                    return
                (topic, partition), (f, name) = next(iter(self._pending.items()))
                del self._pending[(topic, partition)]
            with f:
                self._upload(f, topic, partition, name)

    def _upload(self, f: IO[bytes], topic: str, partition: int, name: str) -> None:
        key = self.key(topic, partition, name)
        started = time.monotonic()
        try:
            self.client.upload_fileobj(f, self.location.bucket, key)
            self.prune(topic, partition, name.rsplit("-", 1)[0])
        except Exception as exc:  # botocore's errors share no useful base class
            log.warning(
                "snapshot %s not uploaded to s3://%s/%s: %s; the partition's next snapshot "
                "tries again",
                name,
                self.location.bucket,
                key,
                exc,
            )
            return
        log.info(
            "snapshot uploaded to s3://%s/%s in %.2f s",
            self.location.bucket,
            key,
            time.monotonic() - started,
        )

    def prune(self, topic: str, partition: int, fingerprint: str) -> None:
        """Delete all but the newest ``keep`` snapshots of ``fingerprint`` of the partition."""
        for _, name in sorted(self.listing(topic, partition, fingerprint))[: -self.keep]:
            self.client.delete_object(
                Bucket=self.location.bucket, Key=self.key(topic, partition, name)
            )

    # -- reading (a restore) --------------------------------------------------------------

    def listing(
        self,
        topic: str,
        partition: int,
        fingerprint: str,
        keep_alive: Callable[[], object] | None = None,
    ) -> list[tuple[int, str]]:
        """Offsets and file names of the partition's snapshots of ``fingerprint``."""

        def keys() -> list[PurePosixPath]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self.key(topic, partition, f"{fingerprint}-")
            )
            return [PurePosixPath(o["Key"]) for page in pages for o in page.get("Contents", ())]

        return [(offset, p.name) for offset, p in snapshot_offsets(call_alive(keys, keep_alive))]

    def fetch(
        self,
        topic: str,
        partition: int,
        name: str,
        folder: Path,
        keep_alive: Callable[[], object] | None = None,
    ) -> Path:
        """Download snapshot ``name`` of the partition into ``folder`` (to a temporary file,
        then renamed) and return its path; ``keep_alive`` is called while it downloads."""
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / name
        tmp = dest.with_name(f".{name}.download")
        started = time.monotonic()
        try:
            call_alive(
                lambda: self.client.download_file(
                    self.location.bucket, self.key(topic, partition, name), str(tmp)
                ),
                keep_alive,
            )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        log.info(
            "downloaded snapshot %s of %s[%d] (%.1f MB) from %s in %.2f s",
            name,
            topic,
            partition,
            dest.stat().st_size / 1e6,
            self.location.describe(),
            time.monotonic() - started,
        )
        return dest


def call_alive(fn: Callable[[], T], keep_alive: Callable[[], object] | None) -> T:
    """``fn()`` run on a helper thread while this one calls ``keep_alive`` every
    :data:`KEEP_ALIVE_S`; returns its result or raises its exception."""
    if keep_alive is None:
        return fn()
    with ThreadPoolExecutor(1, thread_name_prefix="snapshot-transfer") as pool:
        future = pool.submit(fn)
        while True:
            try:
                return future.result(timeout=KEEP_ALIVE_S)
            except TimeoutError:
                keep_alive()


def open_shared(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> SharedSnapshots:
    """Shared snapshots at ``url`` (``s3://bucket/prefix``). Transfers time out in seconds, not
    botocore's minutes: an unreachable store must not hold up a restore's fallback."""
    from botocore.config import Config

    config = Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
    )
    return SharedSnapshots(S3Location.parse(url), s3_client(endpoint_url, region, config=config))
