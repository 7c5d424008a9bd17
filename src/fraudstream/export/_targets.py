"""Where exported files go: a local directory or an S3 prefix, one interface.

A file is written whole or not at all: locally to a temporary name then renamed over the old one,
on S3 by one upload (an object appears complete). Writing the same path again replaces the file,
so re-exporting a day rewrites it in place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from fraudstream._s3 import S3Location, is_missing, s3_client
from fraudstream.errors import ConfigError, FraudstreamError

__all__ = ["ExportError", "LocalTarget", "S3Target", "Target", "open_target"]


class ExportError(FraudstreamError):
    """An export could not write or read its destination."""


class Target(Protocol):
    """A destination of exported files, addressed by relative paths with ``/``."""

    def put_file(self, relpath: str, local: Path) -> None:
        """Store the finished local file ``local`` at ``relpath`` (replacing it)."""

    def read_text(self, relpath: str) -> str | None:
        """The text at ``relpath``, ``None`` when absent."""

    def write_text(self, relpath: str, text: str) -> None:
        """Store ``text`` at ``relpath`` (replacing it)."""

    def describe(self, relpath: str = "") -> str:
        """Where ``relpath`` is, for messages."""


class LocalTarget:
    """A directory on this machine (created when missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, relpath: str) -> Path:
        return self.root.joinpath(*relpath.split("/"))

    def put_file(self, relpath: str, local: Path) -> None:
        dest = self._path(relpath)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)

    def read_text(self, relpath: str) -> str | None:
        try:
            return self._path(relpath).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, relpath: str, text: str) -> None:
        dest = self._path(relpath)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, dest)

    def describe(self, relpath: str = "") -> str:
        return str(self._path(relpath)) if relpath else str(self.root)


class S3Target:
    """``s3://bucket/prefix`` through boto3 (credentials from the usual AWS chain).

    ``endpoint_url`` points at an S3-compatible server (MinIO, moto, a bank's own).
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        self.location = S3Location.parse(url)
        self.bucket = self.location.bucket
        self.client = client if client is not None else s3_client(endpoint_url)

    def _key(self, relpath: str) -> str:
        return self.location.key(relpath)

    def put_file(self, relpath: str, local: Path) -> None:
        try:
            self.client.upload_file(str(local), self.bucket, self._key(relpath))
        except Exception as exc:  # botocore's errors share no useful base class
            raise ExportError(f"cannot upload {self.describe(relpath)}: {exc}") from exc

    def read_text(self, relpath: str) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(relpath))["Body"]
        except Exception as exc:
            if is_missing(exc):
                return None
            raise ExportError(f"cannot read {self.describe(relpath)}: {exc}") from exc
        return str(body.read().decode("utf-8"))

    def write_text(self, relpath: str, text: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(relpath), Body=text.encode("utf-8")
            )
        except Exception as exc:
            raise ExportError(f"cannot write {self.describe(relpath)}: {exc}") from exc

    def describe(self, relpath: str = "") -> str:
        return self.location.describe(relpath)


def open_target(dest: str, *, s3_endpoint_url: str | None = None) -> Target:
    """The target named by ``dest``: ``s3://bucket/prefix`` or a directory path."""
    if dest.startswith("s3://"):
        return S3Target(dest, endpoint_url=s3_endpoint_url)
    if "://" in dest:
        raise ConfigError(f"unsupported export destination {dest!r}; use a directory or s3://…")
    root = Path(dest)
    with contextlib.suppress(FileExistsError):
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise ConfigError(f"export destination {dest!r} is not a directory")
    return LocalTarget(root)
