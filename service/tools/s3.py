"""S3 (or any S3-compatible store) for the storage tools: ``s3://bucket/key`` via boto3.

Endpoint, region and credentials come from the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...); only buckets on ``PYTHON_CODE_S3_BUCKETS`` are
touched. botocore errors become our exceptions here.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from service.errors import NotFound, PathNotAllowed, PayloadTooLarge, StorageUnavailable
from service.tools.models import FileEntry


def is_s3(path: str) -> bool:
    return path.lower().startswith("s3://")


class S3Store:
    def __init__(self, buckets: list[str], max_bytes: int) -> None:
        self.buckets = frozenset(buckets)
        self.max_bytes = max_bytes
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.session.Session().client("s3")
            return self._client

    def split(self, url: str, *, key_required: bool = True) -> tuple[str, str]:
        parts = urlsplit(url)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not self.buckets:
            raise PathNotAllowed(
                f"{url!r}: S3 is not enabled on this gateway (PYTHON_CODE_S3_BUCKETS)"
            )
        if bucket not in self.buckets:
            raise PathNotAllowed(
                f"{url!r}: bucket {bucket!r} is not allowed (allowed: "
                f"{', '.join(sorted(self.buckets))})"
            )
        if parts.query or parts.fragment or "\x00" in key:
            raise PathNotAllowed(f"{url!r}: an S3 path is s3://bucket/key, nothing more")
        if key_required and (not key or key.endswith("/")):
            raise PathNotAllowed(f"{url!r} names no object (s3://bucket/key)")
        return bucket, key

    @contextmanager
    def _errors(self, url: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                raise NotFound(f"no object {url!r}") from exc
            if code in ("AccessDenied", "403", "Forbidden"):
                raise PathNotAllowed(f"{url!r}: the store denied access ({code})") from exc
            raise StorageUnavailable(f"{url!r}: the object store answered {code}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"{url!r}: object store unreachable: {exc}") from exc

    def read(self, url: str, max_bytes: int | None = None) -> tuple[bytes, int]:
        """``(bytes, size)``; at most ``max_bytes`` of it (default: refuse files over the cap)."""
        bucket, key = self.split(url)
        with self._errors(url):
            head = self.client().head_object(Bucket=bucket, Key=key)
            size = int(head["ContentLength"])
            if max_bytes is None:
                if size > self.max_bytes:
                    raise PayloadTooLarge(
                        f"{url!r} is {size} bytes, over the storage limit of {self.max_bytes} "
                        "bytes (PYTHON_CODE_STORAGE_MAX_FILE_SIZE)"
                    )
                want = size
            else:
                want = min(size, max_bytes)
            if want == 0:
                return b"", size
            body = self.client().get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{want - 1}")
            with body["Body"] as stream:
                return stream.read(want), size

    def write(self, url: str, data: bytes, *, overwrite: bool) -> None:
        bucket, key = self.split(url)
        with self._errors(url):
            if not overwrite and self._exists(bucket, key):
                raise PathNotAllowed(f"{url!r} exists and overwrite is false")
            self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def _exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list(
        self, url: str, pattern: str, recursive: bool, limit: int
    ) -> tuple[list[FileEntry], bool]:
        bucket, prefix = self.split(url, key_required=False)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        entries: list[FileEntry] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if not recursive:
            kwargs["Delimiter"] = "/"
        with self._errors(url):
            for page in self.client().get_paginator("list_objects_v2").paginate(**kwargs):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(prefix) :].rstrip("/")
                    if fnmatch.fnmatchcase(name, pattern):
                        entries.append(
                            FileEntry(
                                path=f"s3://{bucket}/{common['Prefix']}",
                                name=name,
                                size=0,
                                modified=datetime.fromtimestamp(0).astimezone(),
                                is_dir=True,
                            )
                        )
                for obj in page.get("Contents", []):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    if name and fnmatch.fnmatchcase(name, pattern):
                        entries.append(
                            FileEntry(
                                path=f"s3://{bucket}/{obj['Key']}",
                                name=name,
                                size=int(obj["Size"]),
                                modified=obj["LastModified"],
                            )
                        )
                if len(entries) > limit:
                    return entries[:limit], True
        return entries, False
