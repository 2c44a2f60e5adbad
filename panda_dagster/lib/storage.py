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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from panda_dagster.lib.fetch import Download, DownloadFailed, FetchError, FetchPolicy, download_url, sha256_file


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


def current_umask() -> int:
    """The process umask, read without changing it (os.umask() would, for a moment, in every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_file_mode() -> int:
    """Mode of a new artifact or catalog file: what open() would give (0666 less the umask), so a
    webserver, daemon or run container in the same group can read it. Temporary files from
    `tempfile.mkstemp` are 0600 whatever the umask, hence the explicit chmod before they are renamed."""
    return 0o666 & ~current_umask()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, shared_file_mode())
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


class StorageError(Exception):
    """An artifact operation failed for good (after the client's retries); names the object."""


def s3_client_config():
    """botocore settings for every S3 client of the project: 'standard' retries (throttling, 5xx,
    connection errors and timeouts, with jittered exponential backoff) and bounded timeouts, so a
    stalled request is retried instead of hanging. $PANDA_S3_ATTEMPTS (default 8),
    $PANDA_S3_CONNECT_TIMEOUT_S (10) and $PANDA_S3_READ_TIMEOUT_S (60) override them."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": int(os.environ.get("PANDA_S3_ATTEMPTS", "8"))},
        connect_timeout=float(os.environ.get("PANDA_S3_CONNECT_TIMEOUT_S", "10")),
        read_timeout=float(os.environ.get("PANDA_S3_READ_TIMEOUT_S", "60")),
    )


def s3_client(endpoint_url: str | None = None):
    """A boto3 S3 client with `s3_client_config()`. Credentials and region come the usual AWS way
    (environment, ~/.aws, instance role): never from project config files, so none ends up in a log."""
    import boto3

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None, config=s3_client_config())


make_s3_client = s3_client  # for functions whose `s3_client` parameter hides the factory


class S3Storage:
    """Artifacts under s3://bucket/prefix, via a boto3 client (`s3_client()`: retries and timeouts).

    An error that outlives the client's retries is raised as StorageError naming the s3:// object
    and the operation, so the failed shard's message says which object could not be read or written.
    """

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

    @contextmanager
    def _naming(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            from botocore.exceptions import BotoCoreError, ClientError

            if not isinstance(exc, (BotoCoreError, ClientError)):
                raise
            raise StorageError(f"S3 {operation} of {self.uri(key)} failed: {type(exc).__name__}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> str:
        with self._naming("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def put_file(self, key: str, path: Path | str) -> str:
        with self._naming("upload", key):
            self.client.upload_file(str(path), self.bucket, self._key(key))
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        with self._naming("read", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._naming("existence check", key):
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
        with self._naming("listing", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        with self._naming("delete", prefix):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def local_copy(self, key: str) -> Path:
        dest = self.cache_dir / self.bucket / self._key(key)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            with self._naming("download", key):
                self.client.download_file(self.bucket, self._key(key), str(tmp))
            os.replace(tmp, dest)
        return dest


def read_artifact(uri: str, storage: Storage | None = None, s3_client=None) -> bytes:
    """Bytes of a stored artifact (a key frame, a clip file) by the URI a stage recorded.

    The one reader of artifact URIs: a URI of `storage` is read through it (its client and prefix);
    otherwise s3://bucket/key (with `s3_client`, else the storage's client, else a default boto3
    client), file:// URIs and plain local paths. A missing artifact raises FileNotFoundError.
    """
    if storage is not None:
        base = storage.uri("k")[:-1]  # the URI prefix every key of this storage shares
        if uri.startswith(base) and len(uri) > len(base):
            return storage.get_bytes(uri[len(base):])
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "s3":
        client = s3_client or getattr(storage, "client", None)
        if client is None:
            client = make_s3_client()
        return client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise FileNotFoundError(f"artifact {uri}: unsupported URI scheme {parsed.scheme!r} (path, file:// or s3://)")
    path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"artifact not found: {uri}")
    return path.read_bytes()


def artifact_reader(storage: Storage | None = None, s3_client=None) -> Callable[[str], bytes]:
    """`read_artifact` bound to one storage / client: a `uri -> bytes` function to hand to loaders."""
    return lambda uri: read_artifact(uri, storage, s3_client)


def fetch(uri: str, cache_dir: Path, s3_client=None, policy: FetchPolicy | None = None) -> tuple[Path, Download | None]:
    """A source (video or subtitles) as a local file, plus how it was downloaded (None for local files).

    Local paths are used in place; http(s) URLs go through `lib.fetch.download_url` (retries, backoff,
    resume); s3:// objects through the client (whose botocore config retries throttling and 5xx).
    Downloads land once in `cache_dir/sources/`, named by the URI's hash. FetchError otherwise.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
        if not path.exists():
            raise FetchError(f"file not found: {path}")
        if path.is_dir():
            raise FetchError(f"is a directory, not a video file: {path}")
        if not os.access(path, os.R_OK):
            raise FetchError(f"permission denied: cannot read {path}")
        return path, None
    suffix = Path(parsed.path).suffix[:8]
    dest = cache_dir / "sources" / (hashlib.sha1(uri.encode()).hexdigest() + suffix)
    if parsed.scheme in ("http", "https"):
        download = download_url(uri, dest, policy or FetchPolicy.from_env())
        return download.path, download
    if parsed.scheme != "s3":
        raise FetchError(f"unsupported URL scheme {parsed.scheme!r} in {uri!r} (use a path, s3:// or http(s)://)")
    sha_path = dest.with_name(dest.name + ".sha256")
    if dest.exists() and sha_path.exists():
        return dest, Download(dest, 0, None, dest.stat().st_size, sha_path.read_text().strip(), False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        client = s3_client or make_s3_client()
        client.download_file(parsed.netloc, parsed.path.lstrip("/"), str(tmp))
    except Exception as exc:  # botocore already retried what can be retried
        tmp.unlink(missing_ok=True)
        raise DownloadFailed(f"could not download {uri}: {type(exc).__name__}: {exc}", 1, None, 0) from exc
    os.replace(tmp, dest)
    digest = sha256_file(dest)
    sha_path.write_text(digest + "\n")
    return dest, Download(dest, 1, None, dest.stat().st_size, digest, False)


def fetch_source(uri: str, cache_dir: Path, s3_client=None, policy: FetchPolicy | None = None) -> Path:
    """`fetch` without the download details: the local file of a source."""
    return fetch(uri, cache_dir, s3_client=s3_client, policy=policy)[0]


def storage_from_url(url: str | None, home: Path, s3_client=None) -> Storage:
    """`PANDA_STORAGE` style URL: empty -> PANDA_HOME/artifacts, a path, or s3://bucket/prefix."""
    if not url:
        return LocalStorage(home / "artifacts")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "s3":
        return S3Storage(s3_client or make_s3_client(), parsed.netloc, parsed.path, cache_dir=home / "cache")
    return LocalStorage(Path(url))


@contextmanager
def temporary_dir(prefix: str = "panda-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
