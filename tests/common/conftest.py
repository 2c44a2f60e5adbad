"""A real PostgreSQL server for the operations tests: Debian's `postgresql` package (installed by
`make system-deps`), a throw-away cluster on a free 127.0.0.1 port, stopped at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return name


def _postgres_bindir() -> Path | None:
    candidates = [os.environ.get("PANDA_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).resolve().parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`; `make system-deps`)")
    as_root = os.geteuid() == 0
    if as_root:  # initdb and postgres refuse to run as root: run them as the package's `postgres` user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    data = Path(tempfile.mkdtemp(prefix="panda-pg-", dir="/tmp"))
    if as_root:
        os.chown(data, owner.pw_uid, owner.pw_gid)

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [str(bindir / args[0]), *args[1:]]
        if as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/tmp")

    user, password, port = "dagster", "dagster", _free_port()
    init = run("initdb", "-D", str(data / "db"), "-U", user, "--auth=trust", "-E", "UTF8", "--locale=C")
    if init.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={data} -c fsync=off"
    start = run("pg_ctl", "-D", str(data / "db"), "-o", options, "-l", str(data / "server.log"), "-w", "-t", "60", "start")
    if start.returncode != 0:
        log = (data / "server.log").read_text(errors="replace") if (data / "server.log").exists() else ""
        shutil.rmtree(data, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{start.stdout}\n{start.stderr}\n{log[-3000:]}")
    try:
        yield PostgresServer("127.0.0.1", port, user, password)
    finally:
        run("pg_ctl", "-D", str(data / "db"), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(data, ignore_errors=True)
