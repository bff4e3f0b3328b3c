"""A loopback HTTP file server for download tests: counts requests, serves Ranges, fails on cue.

Usage::

    with LoopbackServer(folder) as server:
        server.cut_once("s1.zip", after_bytes=1000)   # drop the connection mid-file once
        fetch(server.url("s1.zip"), dest)
        assert server.requests_for("s1.zip")[1].range == "bytes=1000-"

or the ``loopback`` fixture factory (``from tests.support.loopback import loopback``).
Query strings are ignored when mapping a URL to a file, so Zenodo-style
``...?download=1`` URLs work.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Request:
    """One request the server saw."""

    method: str
    path: str  # URL path relative to the server root, without the query
    range: str | None  # the Range header, if any
    status: int  # what the server answered


@dataclass
class _Fault:
    kind: str  # "cut" | "status"
    times: int
    after_bytes: int = 0
    status: int = 500


class LoopbackServer:
    """Serve ``folder`` on 127.0.0.1 at a free port in a background thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).resolve()
        self.log: list[Request] = []
        self.ignore_range = False  # answer 200 with the whole file even when asked a Range
        self._faults: dict[str, list[_Fault]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, relative: str = "") -> str:
        return f"{self.base_url}/{relative.lstrip('/')}"

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cut_once(self, relative: str, after_bytes: int, times: int = 1) -> None:
        """The next ``times`` GETs of ``relative`` send ``after_bytes`` body bytes, then drop."""
        self._add_fault(relative, _Fault("cut", times, after_bytes=after_bytes))

    def fail_once(self, relative: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` requests of ``relative`` answer ``status`` (500 by default)."""
        self._add_fault(relative, _Fault("status", times, status=status))

    def not_found(self, relative: str) -> None:
        """Every request of ``relative`` answers 404, even if the file exists."""
        self._add_fault(relative, _Fault("status", 10**9, status=404))

    def requests_for(self, relative: str) -> list[Request]:
        key = relative.lstrip("/")
        with self._lock:
            return [r for r in self.log if r.path == key]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.log)

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # --- internals -----------------------------------------------------------------

    def _add_fault(self, relative: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault(relative.lstrip("/"), []).append(fault)

    def _take_fault(self, relative: str) -> _Fault | None:
        with self._lock:
            faults = self._faults.get(relative, [])
            if not faults:
                return None
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            return fault

    def _record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _answer(self, relative: str, status: int, range_header: str | None) -> None:
                server._record(Request(self.command, relative, range_header, status))

            def _status_only(self, relative: str, status: int, rng: str | None) -> None:
                self._answer(relative, status, rng)
                body = f"{status}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = True

            def _serve(self, body: bool) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                relative = urllib.parse.unquote(parsed.path).lstrip("/")
                rng = self.headers.get("Range")
                fault = server._take_fault(relative)
                if fault is not None and fault.kind == "status":
                    self._status_only(relative, fault.status, rng)
                    return
                path = (server.folder / relative).resolve()
                if server.folder not in path.parents or not path.is_file():
                    self._status_only(relative, 404, rng)
                    return
                data = path.read_bytes()
                total = len(data)
                start, status = 0, 200
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else total - 1
                    if start >= total:
                        self._answer(relative, 416, rng)
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        self.close_connection = True
                        return
                    data = data[start : min(end, total - 1) + 1]
                    status = 206
                self._answer(relative, status, rng)
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{start + len(data) - 1}/{total}"
                    )
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if not body:
                    return
                if fault is not None and fault.kind == "cut":
                    self.wfile.write(data[: fault.after_bytes])
                    self.wfile.flush()
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                self.wfile.write(data)

        return Handler


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[LoopbackServer]:
    """Context manager: a started :class:`LoopbackServer` on ``folder``, stopped on exit."""
    server = LoopbackServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def loopback() -> Iterator[Callable[[Path], LoopbackServer]]:
    """Fixture factory: ``server = loopback(folder)``; every server is stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(folder: Path) -> LoopbackServer:
        server = LoopbackServer(folder).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
