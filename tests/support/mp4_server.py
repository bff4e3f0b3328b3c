"""Offline stand-in for YouTube: faststart mp4 fixtures and a loopback HTTP server.

The fixtures are re-encodes of the bundled GRID clip ``s1/bbaf2n.mpg`` (H.264 + AAC,
``+faststart`` so the ``moov`` atom comes first, as on a streaming site), one at the
source 25 fps and one re-timed to 29.97 fps like most YouTube uploads. The server names
files ``/<11-char-id>.mp4``, answers ``video/mp4`` (which is what makes yt-dlp's generic
extractor treat the URL as a direct video link), can be told to answer 404/403 for some
ids, and counts every request so a test can prove that a second run made none.
"""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lipflow.tasks.common.executables import ffmpeg_exe

GRID_CLIP = Path(__file__).resolve().parents[2] / "data" / "samples" / "grid" / "s1" / "bbaf2n.mpg"

# Ids the fixtures are served under (any 11 characters of [A-Za-z0-9_-]).
ID_25FPS = "grid25fps_1"
ID_2997FPS = "grid2997f-2"
ID_NOT_FOUND = "missing404x"
ID_FORBIDDEN = "forbidden03"


def make_faststart_mp4(src: Path, dst: Path, fps: str | None = None) -> Path:
    """Re-encode ``src`` to a small faststart H.264/AAC mp4 at ``dst`` (optionally re-timed)."""
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(src)]
    if fps:
        cmd += ["-r", fps]
    cmd += [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-ac", "1",
        "-movflags", "+faststart", str(dst),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return dst


def make_fixture_dir(folder: Path) -> Path:
    """Write the two fixture videos, ``<ID_25FPS>.mp4`` and ``<ID_2997FPS>.mp4``, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    make_faststart_mp4(GRID_CLIP, folder / f"{ID_25FPS}.mp4")
    make_faststart_mp4(GRID_CLIP, folder / f"{ID_2997FPS}.mp4", fps="30000/1001")
    return folder


class Mp4Server:
    """A threaded HTTP server on 127.0.0.1 (free port) serving ``folder/<name>``.

    ``status_by_id`` maps a video id to the HTTP status its ``/<id>.mp4`` gets instead of
    the file (e.g. 404, 403); ``flaky_by_id`` maps an id to ``(status, n)``: the first
    ``n`` requests get ``status`` (a 503 or 429 that a retry gets past). ``requests``
    counts requests per path; :attr:`total` sums them.
    """

    def __init__(
        self,
        folder: Path,
        status_by_id: Mapping[str, int] | None = None,
        flaky_by_id: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.status_by_id = dict(status_by_id or {})
        self.flaky_by_id = dict(flaky_by_id or {})
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url_template(self) -> str:
        """The downloader's ``url_template`` pointing at this server."""
        return f"http://127.0.0.1:{self.port}/{{id}}.mp4"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def count(self, video_id: str) -> int:
        with self._lock:
            return self.requests[f"/{video_id}.mp4"]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> Mp4Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep test output clean

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                name = path.lstrip("/")
                video_id = name.removesuffix(".mp4")
                with server._lock:
                    server.requests[path] += 1
                    seen = server.requests[path]
                status = server.status_by_id.get(video_id)
                flaky_status, flaky_count = server.flaky_by_id.get(video_id, (None, 0))
                if status is None and seen <= flaky_count:
                    status = flaky_status
                file = server.folder / name
                if status is None and ("/" in name or not file.is_file()):
                    status = HTTPStatus.NOT_FOUND
                if status is not None:
                    self.send_error(status)
                    return
                data = file.read_bytes()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # yt-dlp's extractor reads only the headers, then hangs up

        return Handler


@pytest.fixture(scope="session")
def mp4_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the fixture mp4s, made once per test session."""
    return make_fixture_dir(tmp_path_factory.mktemp("mp4_fixtures"))


@pytest.fixture
def mp4_server(mp4_fixtures: Path) -> Iterator[Mp4Server]:
    """A loopback server with the fixtures, plus a 404 id and a 403 id, for one test."""
    server = Mp4Server(
        mp4_fixtures,
        status_by_id={ID_NOT_FOUND: HTTPStatus.NOT_FOUND, ID_FORBIDDEN: HTTPStatus.FORBIDDEN},
    ).start()
    try:
        yield server
    finally:
        server.stop()
