"""Fault-injecting servers on 127.0.0.1 for the reliability tests.

`FaultyHTTPServer` serves byte strings by path; each path has a script of behaviours consumed one per
request (the last one repeats): 'ok' (200, or 206 for a Range request), 'norange' (200 ignoring Range),
'429' / '503' / '500' / '404' (with Retry-After: 0 for 429/503), 'cut' (headers promise the whole body,
half is sent, then the connection closes), 'stall' (headers and a little body, then silence longer
than the client's timeout). Every request is counted and its Range header kept."""

from __future__ import annotations

import http.server
import re
import socketserver
import threading
import time
from collections import defaultdict


class _LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (a free port), serving in a daemon thread inside `with`."""

    def _serve_on_loopback(self, handler: type) -> None:
        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class FaultyHTTPServer(_LoopbackServer):
    def __init__(self, stall_s: float = 3.0):
        self.bodies: dict[str, bytes] = {}
        self.scripts: dict[str, list[str]] = {}
        self.requests: dict[str, list[str | None]] = defaultdict(list)  # path -> Range header per request
        self.stall_s = stall_s
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                owner._serve(self)

        self._serve_on_loopback(Handler)
        self.base = self.url

    def add(self, path: str, body: bytes, script: list[str]) -> str:
        self.bodies[path] = body
        self.scripts[path] = list(script)
        return self.base + path

    def _next(self, path: str) -> str:
        with self._lock:
            script = self.scripts[path]
            return script.pop(0) if len(script) > 1 else script[0]

    def _serve(self, handler) -> None:
        path = handler.path.split("?", 1)[0]
        range_header = handler.headers.get("Range")
        with self._lock:
            self.requests[path].append(range_header)
        if path not in self.bodies:
            handler.send_error(404)
            return
        body, action = self.bodies[path], self._next(path)
        if action.isdigit():
            handler.send_response(int(action))
            if action in ("429", "503"):
                handler.send_header("Retry-After", "0")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        start = 0
        match = re.match(r"bytes=(\d+)-", range_header or "")
        if match and action != "norange":
            start = int(match.group(1))
        if start >= len(body) and start:
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(body)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        piece = body[start:]
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(piece)))
        handler.end_headers()
        if action == "cut":
            handler.wfile.write(piece[: len(piece) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        if action == "stall":
            handler.wfile.write(piece[:100])
            handler.wfile.flush()
            time.sleep(self.stall_s)
            handler.close_connection = True
            return
        handler.wfile.write(piece)


class FaultyS3Proxy(_LoopbackServer):
    """A reverse proxy on 127.0.0.1 in front of an S3 server (moto). `rule(method, path, query)` returns
    None (forward), an HTTP status to answer with an S3 error body (500 InternalError, 503 SlowDown), or
    'stall' (say nothing for `stall_s`, then close). Every request and every injected fault is counted."""

    def __init__(self, upstream: str, rule, stall_s: float = 3.0):
        import http.client
        import urllib.parse

        self.rule = rule
        self.stall_s = stall_s
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, str, object]] = []
        self._lock = threading.Lock()
        target = urllib.parse.urlparse(upstream)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                with owner._lock:
                    owner.requests.append((self.command, self.path))
                    action = owner.rule(self.command, path, query)
                    if action is not None:
                        owner.faults.append((self.command, self.path, action))
                if action == "stall":
                    time.sleep(owner.stall_s)
                    self.close_connection = True
                    return
                if action is not None:
                    code = "SlowDown" if action == 503 else "InternalError"
                    payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                               f"<Message>injected fault</Message></Error>").encode()
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = upstream_conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream_conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._serve_on_loopback(Handler)
        self.endpoint = self.url


def every_nth(n: int, action, match=lambda method, path: True):
    """A FaultyS3Proxy rule: requests that `match` fail with `action` except every n-th one, so each
    operation needs retries but gets through (n=1: never fails)."""
    counter = {"n": 0}

    def rule(method, path, query):
        if not match(method, path):
            return None
        counter["n"] += 1
        return None if counter["n"] % n == 0 else action

    return rule
