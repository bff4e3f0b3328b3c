"""One local Prefect server per project, started once and reused by every lipflow command.

Without ``PREFECT_API_URL`` Prefect starts a temporary (*ephemeral*) server inside every
process that runs a flow: 15-25 s per command, so a ``dvc repro`` of the tiny sample spent
minutes starting servers, and each run vanished with its server. Instead the first command
that runs a flow starts ``prefect server start`` in the background under ``PREFECT_HOME``
(SQLite DB there too), on 127.0.0.1 and a free port, and records ``{pid, port, api_url}``
in a state file; later commands (DVC stages run ``lipflow ...``) find the file, check the
health endpoint and reuse the server. A dead server's file is replaced. A lock file keeps
two commands that start at the same moment from starting two servers.

Why no Prefect import here: the health check is a plain HTTP GET, so a command that
reuses the server pays nothing for Prefect until it imports its flow.

Precedence: a user's ``PREFECT_API_URL`` always wins (nothing is started);
``LIPFLOW_PREFECT_SERVER=ephemeral`` keeps Prefect's per-process server (tests, CI).

The server runs under a small watchdog (``python -m lipflow.tasks.common.prefect_server
watch``) that stops it when its ``PREFECT_HOME`` is deleted or another server takes over
the state file: a throw-away home (``rm -rf`` of a scratch folder) never leaves an
orphaned server behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lipflow.tasks.common.errors import LipflowError

STATE_FILE = "lipflow-server.json"
LOCK_FILE = "lipflow-server.lock"
LOG_FILE = "lipflow-server.log"
#: Prefect's default SQLite database under PREFECT_HOME (the server always uses it)
DATABASE_FILE = "prefect.db"
#: ``LIPFLOW_PREFECT_SERVER=ephemeral`` keeps Prefect's temporary per-process server.
MODE_ENV = "LIPFLOW_PREFECT_SERVER"
START_TIMEOUT_S = 90.0


class ServerError(LipflowError):
    """The local Prefect server could not be started or stopped."""


@dataclass(frozen=True)
class ServerState:
    """What the state file records about a running server."""

    pid: int
    port: int
    api_url: str

    @property
    def ui_url(self) -> str:
        """The web UI lives at the API address without its ``/api`` suffix."""
        return self.api_url.removesuffix("/api")


def prefect_home() -> Path:
    """``PREFECT_HOME`` (the CLI sets it to ``<project>/.prefect``), else Prefect's default."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when ``<api_url>/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def read_state(home: Path | None = None) -> ServerState | None:
    """The recorded server, or None when there is no readable state file."""
    path = (home or prefect_home()) / STATE_FILE
    try:
        data = json.loads(path.read_text())
        return ServerState(int(data["pid"]), int(data["port"]), str(data["api_url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(home: Path | None = None) -> ServerState | None:
    """The recorded server if it answers its health check, else None."""
    state = read_state(home)
    return state if state is not None and healthy(state.api_url) else None


def ensure_server(timeout_s: float = START_TIMEOUT_S) -> str | None:
    """Point this process (and its children) at the project's server; start it if needed.

    Returns the API URL in use, or None in ephemeral mode. Called explicitly by the CLI
    before a flow is imported, never on import.
    """
    user_url = os.environ.get("PREFECT_API_URL")
    if user_url:
        return user_url
    if ephemeral_mode():
        return None
    state = start_server(timeout_s=timeout_s)
    os.environ["PREFECT_API_URL"] = state.api_url
    return state.api_url


def start_server(home: Path | None = None, timeout_s: float = START_TIMEOUT_S) -> ServerState:
    """The running server under ``home``, started now (once, under a lock) if there is none."""
    home = home or prefect_home()
    state = running(home)
    if state is not None:
        return state
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home):
        state = running(home)  # another command may have started it while we waited
        if state is not None:
            return state
        stale = read_state(home)
        if stale is not None:
            _terminate(stale.pid)
            (home / STATE_FILE).unlink(missing_ok=True)
        return _launch(home, timeout_s)


def stop_server(home: Path | None = None) -> ServerState | None:
    """Terminate the recorded server and remove its state file; None if none was recorded."""
    home = home or prefect_home()
    if not (home / STATE_FILE).exists():
        return None
    with _locked(home):
        state = read_state(home)
        if state is not None:
            _terminate(state.pid)
        (home / STATE_FILE).unlink(missing_ok=True)
        return state


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the lock file: one starter or stopper at a time."""
    with (home / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(home: Path, api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    })
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)  # SQLite under PREFECT_HOME
    return env


def ephemeral_mode() -> bool:
    """``LIPFLOW_PREFECT_SERVER=ephemeral``: Prefect's own per-process server, none of ours."""
    return os.environ.get(MODE_ENV, "").lower() == "ephemeral"


def database_template() -> Path:
    """Where an empty, migrated Prefect database for this Prefect version is kept.

    Why: a server's first start in a new ``PREFECT_HOME`` runs every Alembic migration on
    an empty SQLite file, ~8 s of a 12-s start on a 2-core machine (4-5 s from a copy).
    Every fresh project, clone, benchmark copy and test home pays it again; one migrated
    copy per Prefect version, kept beside the environment (``.venv/var/lipflow``, else
    ``~/.cache/lipflow``), turns it into a file copy.
    """
    from importlib.metadata import version

    base = Path(sys.prefix) / "var" / "lipflow"
    if sys.prefix == sys.base_prefix or not os.access(sys.prefix, os.W_OK):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lipflow"
    return base / f"prefect-{version('prefect')}.db"


def _seed_database(home: Path) -> bool:
    """Copy the migrated template into a home without a database; whether it did."""
    target, template = home / DATABASE_FILE, database_template()
    if target.exists() or not template.is_file():
        return False
    tmp = home / f".{DATABASE_FILE}.{os.getpid()}"
    shutil.copyfile(template, tmp)
    tmp.replace(target)
    return True


def keep_database_template(database: Path) -> None:
    """Save a consistent single-file copy of a freshly migrated ``database`` as the template.

    SQLite's backup API reads a consistent snapshot even while the server writes; the copy
    is switched out of WAL mode so it is one self-contained file, then renamed into place.
    """
    import sqlite3

    template = database_template()
    if template.exists() or not database.is_file():
        return
    template.parent.mkdir(parents=True, exist_ok=True)
    tmp = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        copy = sqlite3.connect(tmp)
        with contextlib.closing(source), contextlib.closing(copy):
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        tmp.replace(template)
    except (OSError, sqlite3.Error):
        tmp.unlink(missing_ok=True)


def make_database_template() -> Path:
    """Migrate an empty database once for this Prefect version (``./run`` setup calls it)."""
    import tempfile

    template = database_template()
    if template.exists():
        return template
    with tempfile.TemporaryDirectory(prefix="lipflow-prefect-db-") as scratch:
        home = Path(scratch)
        env = _server_env(home, "http://127.0.0.1:1/api")
        env.pop("PREFECT_API_URL")
        done = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade",
                               "-y"], env=env, cwd=home, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerError(f"migrating a Prefect database failed: {done.stdout[-500:]}"
                              f"{done.stderr[-500:]}")
        keep_database_template(home / DATABASE_FILE)
    return template


def _launch(home: Path, timeout_s: float, attempts: int = 3) -> ServerState:
    """Start ``prefect server start`` detached, logging to a file; wait for its health."""
    log_path = home / LOG_FILE
    seeded = _seed_database(home)
    for _ in range(attempts):  # a free port can be taken between probe and bind: retry
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, "watch", str(home), str(port)],
                cwd=home, env=_server_env(home, api_url), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # outlives this command; Ctrl-C here does not reach it
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if healthy(api_url, timeout_s=1.0):
                    state = ServerState(proc.pid, port, api_url)
                    _write_state(home, state)
                    if not seeded:
                        keep_database_template(home / DATABASE_FILE)
                    return state
                time.sleep(0.25)
        except BaseException:  # Ctrl-C while waiting: no server without a state file
            _terminate(proc.pid)
            raise
        if proc.poll() is None:
            _terminate(proc.pid)
            raise ServerError(f"the local Prefect server did not answer within {timeout_s:g} s; "
                              f"see {log_path}")
    raise ServerError(f"the local Prefect server exited at start; see {log_path}")


def _write_state(home: Path, state: ServerState) -> None:
    tmp = home / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(home / STATE_FILE)


def _is_prefect_server(pid: int) -> bool:
    """Whether ``pid`` is alive and (where /proc tells) our server's watchdog.

    Why the check: a stale state file's pid may since belong to an unrelated process,
    which must never be signalled.
    """
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): trust the state file
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return any(arg == __name__.encode() and args[i + 1:i + 2] == [b"watch"]
               for i, arg in enumerate(args))


def _terminate(pid: int, wait_s: float = 15.0) -> None:
    """SIGTERM the server's process group (it was started as its own session), then SIGKILL."""
    if not _is_prefect_server(pid):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a child we started and have not reaped counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    with contextlib.suppress(OSError):
        if "\nState:\tZ" in status.read_text():
            return False
    return True


def _watch(home: Path, port: int, poll_s: float = 2.0) -> int:
    """Run ``prefect server start`` and stop it once ``home`` is gone or taken over.

    Why a parent process: the server must outlive the command that started it, yet a
    deleted scratch home must not leave it running forever. SIGTERM to the process group
    (``stop_server``) reaches both; the watchdog then exits with the server.
    """
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start",
                               "--host", "127.0.0.1", "--port", str(port), "--analytics-off"])
    inode = home.stat().st_ino
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())  # exit only after the server

    def orphaned() -> bool:
        try:
            if home.stat().st_ino != inode:
                return True
        except OSError:
            return True
        state = read_state(home)
        return state is not None and state.pid != os.getpid()

    while server.poll() is None:
        if orphaned():
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            break
        time.sleep(poll_s)
    return server.wait()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        sys.exit(_watch(Path(sys.argv[2]), int(sys.argv[3])))
    if sys.argv[1:] == ["template"]:
        print(f"migrated Prefect database template: {make_database_template()}")
        sys.exit(0)
    sys.exit(f"usage: python -m {__spec__.name if __spec__ else __name__} watch HOME PORT | "
             "template")
