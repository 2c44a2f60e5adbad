"""Fixtures for the deployment tests: an S3 server (moto, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import pytest


@pytest.fixture
def s3_endpoint(monkeypatch) -> str:
    """moto's S3 server on a free loopback port; AWS credentials for it in the environment."""
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
