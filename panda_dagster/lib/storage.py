"""Artifact storage: one interface over a local folder or an S3 prefix.

Artifacts (shard manifests, key frames, clip files, plots, reports, checkpoints) are addressed by a
relative key such as `shards/s-00001/keyframes/<clip>.jpg`; `uri(key)` says where it really lives
(an absolute path or `s3://bucket/prefix/key`). Assets pass these URIs to each other, never frames.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    def uri(self, key: str) -> str: ...
    def put_bytes(self, key: str, data: bytes) -> str: ...
    def put_file(self, key: str, path: Path | str) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def local_copy(self, key: str) -> Path: ...


def _check_key(key: str) -> str:
    key = key.lstrip("/")
    if not key or ".." in Path(key).parts:
        raise ValueError(f"invalid storage key {key!r}")
    return key


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStorage:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def put_bytes(self, key: str, data: bytes) -> str:
        _atomic_write(self.path(key), data)
        return self.uri(key)

    def put_file(self, key: str, path: Path | str) -> str:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(path).resolve() != dest:
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if base.is_file():
            return [_check_key(prefix)]
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.path(key).unlink(missing_ok=True)
        return len(keys)

    def local_copy(self, key: str) -> Path:
        return self.path(key)


class S3Storage:
    """Artifacts under s3://bucket/prefix, via a boto3 client (e.g. dagster-aws' S3Resource)."""

    def __init__(self, client, bucket: str, prefix: str = "", cache_dir: Path | str | None = None):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = Path(cache_dir or tempfile.gettempdir()) / "panda-s3-cache"

    def _key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def put_file(self, key: str, path: Path | str) -> str:
        self.client.upload_file(str(path), self.bucket, self._key(key))
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def local_copy(self, key: str) -> Path:
        dest = self.cache_dir / self.bucket / self._key(key)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            self.client.download_file(self.bucket, self._key(key), str(tmp))
            os.replace(tmp, dest)
        return dest


class FetchError(Exception):
    """A source video could not be fetched; the message is meant for the quarantine table."""


def fetch_source(uri: str, cache_dir: Path, s3_client=None, timeout_s: float = 60.0) -> Path:
    """Make a source video available as a local file: local paths as they are, URLs downloaded once."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
        if not path.exists():
            raise FetchError(f"file not found: {path}")
        if path.is_dir():
            raise FetchError(f"is a directory, not a video file: {path}")
        if not os.access(path, os.R_OK):
            raise FetchError(f"permission denied: cannot read {path}")
        return path
    suffix = Path(parsed.path).suffix[:8]
    dest = cache_dir / "sources" / (hashlib.sha1(uri.encode()).hexdigest() + suffix)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        if parsed.scheme == "s3":
            if s3_client is None:
                import boto3

                s3_client = boto3.client("s3")
            s3_client.download_file(parsed.netloc, parsed.path.lstrip("/"), str(tmp))
        elif parsed.scheme in ("http", "https"):
            with urllib.request.urlopen(uri, timeout=timeout_s) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, length=1 << 20)
        else:
            raise FetchError(f"unsupported URL scheme {parsed.scheme!r} in {uri!r} (use a path, s3:// or http(s)://)")
    except FetchError:
        raise
    except Exception as exc:  # network and S3 errors all mean the same thing for the caller
        tmp.unlink(missing_ok=True)
        raise FetchError(f"could not download {uri}: {type(exc).__name__}: {exc}") from exc
    os.replace(tmp, dest)
    return dest


def storage_from_url(url: str | None, home: Path, s3_client=None) -> Storage:
    """`PANDA_STORAGE` style URL: empty -> PANDA_HOME/artifacts, a path, or s3://bucket/prefix."""
    if not url:
        return LocalStorage(home / "artifacts")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "s3":
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        return S3Storage(s3_client, parsed.netloc, parsed.path, cache_dir=home / "cache")
    return LocalStorage(Path(url))


@contextmanager
def temporary_dir(prefix: str = "panda-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
