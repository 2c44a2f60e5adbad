"""Downloading source videos and subtitles from http(s) URLs: retries with backoff, resumable transfers.

Why: hosts answer 429 (rate limits), 5xx and stalls routinely (video2dataset users fight them daily); a
URL fetched once and quarantined on the first hiccup loses the video. So a download
- retries 408/425/429/5xx, timeouts, refused and reset connections and bodies cut short, up to
  `FetchPolicy.attempts` times, sleeping exponentially longer (the server's Retry-After when it gives
  one, capped), and fails at once on other 4xx answers (404, 403...);
- keeps what arrived in `<dest>.part` and asks for the rest with `Range: bytes=N-`: a 206 answer is
  appended, a 200 (no range support) starts over; the `.part` survives the process, so a later run
  resumes too;
- appears at `dest` only complete (atomic rename), with its sha256 beside it (`<dest>.sha256`).
Every fetch (downloaded, cached or failed) becomes a `FetchRecord`: the `fetches` table, from which
`panda ingest --retry-failed` re-queues the failed URLs.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
FETCH_OK = "ok"
FETCH_FAILED = "failed"
CHUNK = 1 << 20
USER_AGENT = "panda-dagster/0.1 (+https://github.com/; video dataset builder)"


class FetchError(Exception):
    """A source could not be fetched; the message is meant for the quarantine table."""


class DownloadFailed(FetchError):
    def __init__(self, message: str, attempts: int, http_status: int | None, bytes_received: int):
        super().__init__(message)
        self.attempts = attempts
        self.http_status = http_status
        self.bytes_received = bytes_received


@dataclass(frozen=True)
class FetchPolicy:
    """How hard a URL is tried. Total waiting is bounded by attempts x max_backoff_s."""

    attempts: int = field(default=5, metadata={"help": "Tries per URL (1 = no retry)"})
    timeout_s: float = field(default=30.0, metadata={"help": "Connect timeout and longest silence mid-body"})
    backoff_s: float = field(default=1.0, metadata={"help": "First wait between tries; doubles each time"})
    max_backoff_s: float = field(default=60.0, metadata={"help": "Longest wait between tries (Retry-After too)"})

    @classmethod
    def from_env(cls) -> FetchPolicy:
        """$PANDA_FETCH_ATTEMPTS / _TIMEOUT_S / _BACKOFF_S / _MAX_BACKOFF_S override the defaults."""
        default = cls()
        return cls(
            attempts=int(os.environ.get("PANDA_FETCH_ATTEMPTS", default.attempts)),
            timeout_s=float(os.environ.get("PANDA_FETCH_TIMEOUT_S", default.timeout_s)),
            backoff_s=float(os.environ.get("PANDA_FETCH_BACKOFF_S", default.backoff_s)),
            max_backoff_s=float(os.environ.get("PANDA_FETCH_MAX_BACKOFF_S", default.max_backoff_s)),
        )


@dataclass
class FetchRecord:
    """Row of the `fetches` table: one remote source (video or subtitles) of a shard's entry."""

    uri: str
    shard: str
    video_id: str
    kind: str  # 'video' | 'subtitles'
    status: str  # FETCH_OK | FETCH_FAILED
    attempts: int  # requests made by this fetch (0 = already in the cache)
    last_error: str | None
    http_status: int | None
    bytes: int
    sha256: str | None
    resumed: bool  # part of the body came from an earlier, interrupted attempt
    fetched_at: dt.datetime


@dataclass
class Download:
    path: Path
    attempts: int
    http_status: int | None
    bytes: int
    sha256: str
    resumed: bool


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", value or "")
    return int(match.group(1)) if match else None


def _redact(url: str) -> str:
    """The URL without user:password@ or a query string (which may carry a token), for messages."""
    return re.sub(r"//[^/@]*@", "//", url).split("?", 1)[0]


def download_url(url: str, dest: Path, policy: FetchPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> Download:
    """Download `url` to `dest` (see the module docstring); DownloadFailed when every try failed."""
    policy = policy or FetchPolicy()
    dest = Path(dest)
    sha_path = dest.with_name(dest.name + ".sha256")
    if dest.exists() and sha_path.exists():
        return Download(dest, 0, None, dest.stat().st_size, sha_path.read_text().strip(), False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempts, status, error, resumed = 0, None, "no attempt made", False
    delay = policy.backoff_s
    while attempts < max(1, policy.attempts):
        attempts += 1
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if have:
            request.add_header("Range", f"bytes={have}-")
        wait = None
        try:
            with urllib.request.urlopen(request, timeout=policy.timeout_s) as response:
                status = response.status
                start = _content_range_start(response.headers.get("Content-Range")) if status == 206 else None
                if status == 206 and start == have:
                    mode, resumed = "ab", True
                else:  # the server sent the whole body (no range support, or a changed file)
                    mode, have = "wb", 0
                length = response.headers.get("Content-Length")
                expected = have + int(length) if length and length.isdigit() else None
                with open(part, mode) as out:
                    while chunk := response.read1(CHUNK):  # what arrived, kept even if the next read stalls
                        out.write(chunk)
                size = part.stat().st_size
                if expected is not None and size < expected:
                    raise http.client.IncompleteRead(b"", expected - size)
            digest = sha256_file(part)
            os.replace(part, dest)
            sha_path.write_text(digest + "\n")
            return Download(dest, attempts, status, dest.stat().st_size, digest, resumed)
        except urllib.error.HTTPError as exc:
            status = exc.code
            if exc.code == 416 and part.exists():  # asked past the end: the part is stale, start over
                part.unlink()
                error = "HTTP 416 range not satisfiable (restarting from the beginning)"
                continue
            error = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in RETRY_STATUSES:
                break
            wait = _retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError,
                ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            error = f"{type(reason).__name__}: {reason}".rstrip(": ")
            if isinstance(reason, (http.client.IncompleteRead,)) or isinstance(exc, http.client.IncompleteRead):
                error = f"connection closed mid-body after {part.stat().st_size if part.exists() else 0} bytes"
        if attempts < policy.attempts:
            sleep(min(policy.max_backoff_s, wait if wait is not None else delay))
            delay *= 2
    received = part.stat().st_size if part.exists() else 0
    raise DownloadFailed(f"could not download {_redact(url)} after {attempts} attempt(s): {error}",
                         attempts, status, received)
