"""Where the catalog's lake lives: only under PANDA_HOME, or in an S3 bucket with PANDA_HOME as a mirror.

The catalog (`lib/catalog.py`) always reads and writes Parquet files under `<home>/lake/`. With a
`LocalLake` that folder is the truth: processes on one machine (or one shared volume) see each other's
shards. With an `S3Lake` the truth is the bucket, one object per table, part and shard
(`s3://<bucket>/<prefix>/lake/<table>/<part>/<shard>.parquet`), so workers on different machines with
different PANDA_HOME folders share one catalog without a shared disk:

- a writer writes its file locally (atomic rename, as before) and PUTs it: an S3 PUT is atomic per
  object, so a reader sees the old or the new file of a shard, never half of one;
- before reading a table, a reader lists the table's prefix and downloads only the objects whose ETag
  differs from the copy it holds (deleted objects disappear from the mirror), so DuckDB's views and
  `Catalog.rows` read plain local files. DuckDB needs no `httpfs` extension, which cannot be
  installed offline.

`lake_from_env(home)`: `PANDA_S3_BUCKET` set -> S3Lake (prefix `PANDA_S3_PREFIX`, default `panda`;
endpoint `AWS_ENDPOINT_URL`), unless `PANDA_LAKE=local` keeps the lake on the local disk.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

ETAGS_FILE = ".s3-etags.json"  # per table folder: relative path -> ETag of the object it mirrors


class LocalLake:
    """The lake is the folder itself: nothing to publish or refresh."""

    kind = "local"

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """The block writes `path` (under the lake) locally; that is all a local lake needs."""
        yield

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def refresh(self, table: str | None = None) -> None:
        """Make the local folder show the current lake (for `table`, or every table)."""

    def describe(self) -> str:
        return str(self.root)


class S3Lake:
    """The lake in `s3://bucket/prefix/lake/`, mirrored under `root` (PANDA_HOME/lake) for reading."""

    kind = "s3"

    def __init__(self, root: Path | str, client, bucket: str, prefix: str = "panda"):
        self.root = Path(root)
        self.client = client
        self.bucket = bucket
        self.prefix = "/".join(p for p in (prefix.strip("/"), "lake") if p)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, path: Path) -> str:
        return f"{self.prefix}/{Path(path).relative_to(self.root).as_posix()}"

    @contextmanager
    def _table_lock(self, table: str) -> Iterator[None]:
        """Serializes mirror updates of one table between processes sharing this PANDA_HOME."""
        folder = self.root / table
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".mirror.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _etags(self, table: str) -> dict[str, str]:
        path = self.root / table / ETAGS_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_etags(self, table: str, etags: dict[str, str]) -> None:
        path = self.root / table / ETAGS_FILE
        tmp = path.with_name(f"{ETAGS_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(etags, indent=0, sort_keys=True))
        os.replace(tmp, path)

    @contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """Write `path` locally inside the block; then it is PUT. The table's mirror lock is held
        throughout, so a refresh in this home never puts an older object over the new file. On failure
        the local copy goes too: the mirror never shows a shard the bucket does not have."""
        rel = Path(path).relative_to(self.root)
        table = rel.parts[0]
        with self._table_lock(table):
            try:
                yield
                response = self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=Path(path).read_bytes())
            except BaseException:
                Path(path).unlink(missing_ok=True)
                etags = self._etags(table)
                if etags.pop(rel.as_posix(), None) is not None:
                    self._save_etags(table, etags)
                raise
            etags = self._etags(table)
            etags[rel.as_posix()] = response["ETag"]
            self._save_etags(table, etags)

    def delete(self, path: Path) -> None:
        rel = Path(path).relative_to(self.root)
        table = rel.parts[0]
        with self._table_lock(table):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
            Path(path).unlink(missing_ok=True)
            etags = self._etags(table)
            if etags.pop(rel.as_posix(), None) is not None:
                self._save_etags(table, etags)

    def _listing(self, prefix: str) -> dict[str, str]:
        """relative path (under the lake) -> ETag of every Parquet object under `prefix`."""
        found: dict[str, str] = {}
        strip = len(self.prefix) + 1
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".parquet"):
                    found[obj["Key"][strip:]] = obj["ETag"]
        return found

    def refresh(self, table: str | None = None) -> None:
        if table is not None:
            return self._refresh_table(table)
        tables = {p.parent.name for p in self.root.glob(f"*/{ETAGS_FILE}")}
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/", Delimiter="/"):
            tables |= {c["Prefix"][len(self.prefix) + 1:].strip("/") for c in page.get("CommonPrefixes", [])}
        for name in sorted(tables):
            self._refresh_table(name)

    def _refresh_table(self, table: str) -> None:
        # Listed under the lock: a listing older than a write this home has just published would
        # otherwise bring the old object back over the new file.
        with self._table_lock(table):
            listing = self._listing(f"{self.prefix}/{table}/")
            etags = self._etags(table)
            changed = False
            for rel, etag in listing.items():
                dest = self.root / rel
                if etags.get(rel) == etag and dest.exists():
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".download", dir=dest.parent)
                os.close(fd)
                try:
                    self.client.download_file(self.bucket, f"{self.prefix}/{rel}", tmp)
                    os.replace(tmp, dest)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                etags[rel] = etag
                changed = True
            for rel in sorted(set(etags) - set(listing)):  # deleted in the bucket (by another worker)
                (self.root / rel).unlink(missing_ok=True)
                del etags[rel]
                changed = True
            if changed:
                self._save_etags(table, etags)


def s3_client_from_env(endpoint_url: str | None = None):
    """One boto3 client per endpoint and process (clients are thread-safe and slow to create, and a
    Catalog is created per asset call)."""
    return _cached_client(endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None, os.getpid())


@lru_cache(maxsize=8)
def _cached_client(endpoint_url: str | None, pid: int):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


def lake_from_env(root: Path | str, environ: dict[str, str] | None = None) -> LocalLake | S3Lake:
    """The lake the environment asks for (see the module docstring)."""
    env = os.environ if environ is None else environ
    bucket = env.get("PANDA_S3_BUCKET", "")
    if not bucket or env.get("PANDA_LAKE", "").lower() == "local":
        return LocalLake(root)
    return S3Lake(root, s3_client_from_env(env.get("AWS_ENDPOINT_URL")), bucket, env.get("PANDA_S3_PREFIX", "panda"))
