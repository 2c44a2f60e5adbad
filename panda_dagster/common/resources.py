"""Resources every stage uses: where data lives (PANDA_HOME, artifact storage) and the catalog."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.settings import panda_home
from panda_dagster.lib.storage import LocalStorage, S3Storage, Storage


class PandaResource(ConfigurableResource):
    """PANDA_HOME (catalog, caches, logs) plus artifact storage: a local folder, or S3 when
    `s3_bucket` is set (clients from `lib.storage.s3_client`: botocore retries and timeouts; endpoint
    and credentials configured the usual AWS way, never in config)."""

    home: str = Field(default="", description="Data home; empty = $PANDA_HOME or ./.panda")
    s3_bucket: str = Field(default="", description="Store artifacts in this S3 bucket (empty = local files)")
    s3_prefix: str = Field(default="panda", description="Key prefix inside the bucket")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, moto); empty = AWS")

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve() if self.home else panda_home()

    def catalog(self) -> Catalog:
        return Catalog(self.home_path)

    def s3_client(self):
        from panda_dagster.lib.storage import s3_client  # retries 5xx/throttling/timeouts (botocore 'standard')

        return s3_client(self.s3_endpoint_url or None)

    def storage(self) -> Storage:
        if self.s3_bucket:
            return S3Storage(self.s3_client(), self.s3_bucket, self.s3_prefix, cache_dir=self.home_path / "cache")
        return LocalStorage(self.home_path / "artifacts")


def panda_resource_from_env() -> PandaResource:
    """Default wiring: PANDA_S3_BUCKET / PANDA_S3_PREFIX / AWS_ENDPOINT_URL switch artifacts to S3."""
    # `home` stays empty so PANDA_HOME is read when the resource is used, not when the code loads.
    return PandaResource(
        s3_bucket=os.environ.get("PANDA_S3_BUCKET", ""),
        s3_prefix=os.environ.get("PANDA_S3_PREFIX", "panda"),
        s3_endpoint_url=os.environ.get("AWS_ENDPOINT_URL", ""),
    )
