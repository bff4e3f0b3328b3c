"""The project's one local Prefect server: started once, reused, replaced when stale, stopped.

Each test uses its own PREFECT_HOME, so the servers started here are never the session's
and are always stopped in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lipflow.tasks.common import prefect_server as ps

LIPFLOW = Path(sys.executable).with_name("lipflow")

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PREFECT_HOME with no API configured; ensure_server's env change is undone."""
    home = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv(ps.MODE_ENV, raising=False)
    return home


def _status(home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    result = subprocess.run([str(LIPFLOW), "server", "status"], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_user_api_url_wins_and_nothing_starts(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert ps.ensure_server() == "http://127.0.0.1:9/api"
    assert not (home / ps.STATE_FILE).exists()


def test_ephemeral_mode_starts_nothing(home: Path, monkeypatch) -> None:
    monkeypatch.setenv(ps.MODE_ENV, "ephemeral")
    assert ps.ensure_server() is None
    assert "PREFECT_API_URL" not in os.environ
    assert not (home / ps.STATE_FILE).exists()


def test_start_once_reuse_status_and_stop(home: Path) -> None:
    urls: list[str | None] = []
    threads = [threading.Thread(target=lambda: urls.append(ps.ensure_server()))
               for _ in range(2)]
    try:
        for thread in threads:  # two commands at the same moment: the lock lets one start
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        state = ps.read_state(home)
        assert state is not None and urls == [state.api_url, state.api_url]
        assert os.environ["PREFECT_API_URL"] == state.api_url
        assert json.loads((home / ps.STATE_FILE).read_text())["pid"] == state.pid
        assert ps.healthy(state.api_url)

        again = ps.start_server(home)  # a later command: same server, no new process
        assert again == state
        assert _status(home) == (f"running at {state.ui_url} (pid {state.pid})\n"
                                 "command server: not running")
        assert "Check out the dashboard" in (home / ps.LOG_FILE).read_text()  # logs go there
    finally:
        stopped = ps.stop_server(home)
    assert stopped == state
    assert not (home / ps.STATE_FILE).exists()
    assert not ps.healthy(state.api_url)
    assert not ps._alive(state.pid)
    assert _status(home) == "not running\ncommand server: not running"
    assert ps.stop_server(home) is None


def test_stale_state_is_replaced_and_a_deleted_home_stops_the_server(home: Path) -> None:
    home.mkdir()
    bystander = subprocess.Popen(["sleep", "120"])  # the stale pid now belongs to someone else
    stale = ps.ServerState(bystander.pid, 9, "http://127.0.0.1:9/api")
    (home / ps.STATE_FILE).write_text(json.dumps(stale.__dict__))
    state = None
    try:
        assert ps.running(home) is None
        state = ps.start_server(home)
        assert state != stale and ps.healthy(state.api_url)
        assert ps.read_state(home) == state
        assert bystander.poll() is None  # not a Prefect server: left alone

        shutil.rmtree(home)  # a scratch home thrown away: its watchdog stops the server
        deadline = time.monotonic() + 30
        while ps._alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not ps._alive(state.pid)
        assert not ps.healthy(state.api_url)
    finally:
        if state is not None and ps._alive(state.pid):
            ps._terminate(state.pid)
        bystander.kill()
        bystander.wait()


def test_a_new_home_starts_from_the_migrated_template(tmp_path: Path, monkeypatch) -> None:
    """The first migrated database (WAL mode, server still writing) becomes a one-file
    template; a home without ``prefect.db`` gets a copy, a home with one keeps its own."""
    import sqlite3

    template = tmp_path / "cache" / "prefect-x.db"
    monkeypatch.setattr(ps, "database_template", lambda: template)
    first = tmp_path / "first"
    first.mkdir()
    live = sqlite3.connect(first / ps.DATABASE_FILE)
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("CREATE TABLE alembic_version (version_num TEXT)")
    live.execute("INSERT INTO alembic_version VALUES ('head')")
    live.commit()  # still open: its rows are in the -wal file, not yet in prefect.db
    ps.keep_database_template(first / ps.DATABASE_FILE)
    live.close()
    assert template.is_file() and not template.with_name(template.name + "-wal").exists()

    fresh, kept = tmp_path / "fresh", tmp_path / "kept"
    fresh.mkdir()
    kept.mkdir()
    (kept / ps.DATABASE_FILE).write_bytes(b"own")
    assert ps._seed_database(fresh) and not ps._seed_database(kept)
    with contextlib.closing(sqlite3.connect(fresh / ps.DATABASE_FILE)) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [("head",)]
    assert (kept / ps.DATABASE_FILE).read_bytes() == b"own"
