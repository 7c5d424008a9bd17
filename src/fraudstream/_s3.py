"""S3 locations shared by ``fraudstream export`` and the detector's shared snapshots: an
``s3://bucket/prefix`` URL, keys below it, a boto3 client (credentials from the usual AWS
chain; ``endpoint_url`` points at an S3-compatible server: MinIO, moto, a bank's own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from fraudstream.errors import ConfigError

__all__ = ["S3Location", "is_missing", "s3_client"]


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing ``/``; may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/prefix``; :class:`ConfigError` for anything else."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"not an S3 URL: {url!r}; expected s3://bucket/prefix")
        return cls(parsed.netloc, parsed.path.strip("/"))

    def key(self, relpath: str) -> str:
        """The key of ``relpath`` (``/``-separated) below the prefix."""
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def describe(self, relpath: str = "") -> str:
        """``s3://bucket/key`` of ``relpath``, for messages."""
        return f"s3://{self.bucket}/{self.key(relpath) if relpath else self.prefix}"


def s3_client(
    endpoint_url: str | None = None, region: str | None = None, *, config: Any = None
) -> Any:
    """A boto3 S3 client (boto3 is imported only when S3 is used); ``config``: a
    ``botocore.config.Config`` (timeouts, retries)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def is_missing(exc: Exception) -> bool:
    """Whether a botocore error says the key is absent."""
    response = getattr(exc, "response", None)
    code = (response or {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound")
