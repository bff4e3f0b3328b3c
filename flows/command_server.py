"""The project's warm command server: lipflow's imports paid once, each command a fork.

Started in the background by the first command that runs a flow (beside the project's
Prefect server, :mod:`lipflow.tasks.common.prefect_server`), it imports the CLI, Prefect,
the flows and torch, then waits on a Unix socket under ``PREFECT_HOME``. For each
``lipflow`` command the launcher (:mod:`lipflow.flows.launcher`) sends its arguments,
working directory, environment and stdin/stdout/stderr; the server forks, and the fork
becomes that command: it takes over the descriptors, directory and environment, runs the
CLI and reports its exit code as the last thing before it ends.

When it runs nothing, and when it refuses (the command then runs in its own process,
exactly as without a server):
- **Code changed.** Every imported ``lipflow`` module's file and the site-packages
  folders are fingerprinted at start; any change (an edit ``dvc repro`` is about to act
  on, a ``pip install``) makes the server refuse and exit, and the next command starts a
  fresh one. A server never runs stale code.
- **Environment differs where imports read it** (``PREFECT_*``, ``LIPFLOW_*``, thread
  pool and Python variables: :data:`lipflow.flows.launcher.IMPORT_TIME_PREFIXES`), or
  another Python runs the command.
- **Threads.** A fork copies only the forking thread, so the server checks it is
  single-threaded (in Python) after its imports and serves nothing otherwise.
- **Idle** for ``--idle-s`` (default 15 min), its ``PREFECT_HOME`` deleted, its socket
  taken over, or ``lipflow server stop``: it exits.

A command whose client dies (``kill -9`` of ``lipflow`` or of its DVC stage) is killed
with its whole process group, as it would have died in-process.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import gc
import importlib
import os
import select
import signal
import site
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lipflow.flows.launcher import (
    LOCK_NAME,
    LOG_NAME,
    enabled,
    import_time_env,
    recv_frame,
    send_frame,
    socket_path,
)

#: imported once by the server (with every lipflow module), so no command pays for them:
#: the libraries lipflow imports inside functions, where a cold process needs them late
PRELOAD = ("prefect", "prefect.artifacts", "prefect.client.orchestration", "prefect.context",
           "prefect.task_runners", "torch", "torch._dynamo", "torch.optim", "librosa",
           # librosa loads these on first attribute use (lazy_loader), with their numba
           # kernels: 2.5 s of a sample speaker's first mel spectrogram
           "librosa.core.audio", "librosa.core.spectrum", "librosa.core.convert",
           "librosa.filters", "librosa.feature", "librosa.effects", "librosa.util",
           "librosa.util.utils", "ai_edge_litert.interpreter", "mediapipe.tasks.c",
           "pyarrow.dataset", "pyarrow.pandas_compat",
           # what Prefect's engines load at a flow's first run (fastapi and graphviz too)
           "prefect.flow_engine", "prefect.task_engine", "prefect.engine",
           "prefect.concurrency.sync", "prefect.concurrency.v1.context",
           "prefect.telemetry.run_telemetry", "prefect.utilities.visualization",
           "prefect._internal.control_listener", "prefect._internal.retries", "fastapi",
           "opentelemetry.metrics", "opentelemetry._logs", "imagecodecs._jpeg8",
           "torch.utils.serialization",
           "scipy.io", "scipy.signal", "sklearn.metrics", "pystoi", "pesq", "pocketsphinx",
           "jiwer", "pandas", "zarr", "mediapipe", "mediapipe.tasks", "av", "threadpoolctl",
           "tqdm", "yt_dlp")
IDLE_S = 900.0
POLL_S = 2.0


class _Forked(Exception):  # noqa: N818 - control flow, not an error
    """Raised in a fresh fork to leave the server loop and become the command."""

    def __init__(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        super().__init__()
        self.conn, self.request, self.fds = conn, request, fds


def code_fingerprint() -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every imported lipflow module and site-packages folder."""
    paths = {module.__file__ for name, module in list(sys.modules.items())
             if name.startswith("lipflow") and getattr(module, "__file__", None)}
    paths.update(site.getsitepackages())
    marks = []
    for path in sorted(p for p in paths if p):
        try:
            stat = os.stat(path)
            marks.append((path, stat.st_mtime_ns, stat.st_size))
        except OSError:
            marks.append((path, -1, -1))
    return tuple(marks)


def refusal(request: dict[str, Any], own_env: dict[str, str],
            fingerprint: tuple[tuple[str, int, int], ...]) -> str | None:
    """Why this server must not run ``request`` (None: it may)."""
    if code_fingerprint() != fingerprint:
        return "stale"
    if request.get("executable") != sys.executable:
        return "another Python"
    if import_time_env(request.get("env") or {}) != import_time_env(own_env):
        return "environment"
    return None


@contextlib.contextmanager
def _server_lock(home: Path) -> Iterator[bool]:
    """Hold the server's lock for its life; yields False when another server holds it."""
    with (home / LOCK_NAME).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


def _preload() -> None:
    """Import every lipflow module and :data:`PRELOAD`; one that fails is left to the
    command that needs it (it fails there the same way it would have without a server)."""
    import pkgutil

    from lipflow.tasks.common.process import configure_process

    configure_process()
    names = []
    for package in ("lipflow.flows", "lipflow.tasks", "lipflow.models"):
        module = importlib.import_module(package)
        names += [info.name for info in pkgutil.walk_packages(module.__path__, f"{package}.")
                  if not info.name.endswith("__main__")]
    # lipflow's modules first, the lazily imported libraries after, as in a command: their
    # atexit handlers then run in the same order (LIFO). MediaPipe's, which makes closing a
    # detector at exit a no-op, must run before lipflow's detector clean-up, or that
    # clean-up hits an executor that interpreter shutdown already stopped.
    names += PRELOAD
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def serve(home: Path, idle_s: float = IDLE_S) -> int:
    """Preload, then serve commands until idle, stale, stopped or orphaned (see module)."""
    own_env = dict(os.environ)
    with _server_lock(home) as mine:
        if not mine:
            return 0
        _preload()
        gc.freeze()  # the forks then leave the preloaded objects' pages shared (no GC writes)
        if threading.active_count() != 1:
            print(f"not serving: {threading.active_count()} threads after the imports",
                  flush=True)
            return 1
        fingerprint = code_fingerprint()
        path = socket_path(home)
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.fspath(path))
        os.chmod(path, 0o600)
        listener.listen(16)
        inode = home.stat().st_ino
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped by the kernel
        stop = False

        def request_stop(*_: Any) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, request_stop)
        served, last, server_pid = 0, time.monotonic(), os.getpid()
        print(f"serving on {path} (pid {os.getpid()})", flush=True)
        try:
            while not stop and time.monotonic() - last < idle_s and _still_ours(home, inode, path):
                if not select.select([listener], [], [], POLL_S)[0]:
                    continue
                conn, _ = listener.accept()
                last = time.monotonic()
                outcome = _handle(conn, listener, own_env, fingerprint)
                if outcome == "stale":
                    break
                served += outcome == "forked"
        finally:
            listener.close()
            if os.getpid() == server_pid:  # not in a fork leaving the loop to run a command
                with contextlib.suppress(OSError):
                    path.unlink()
                print(f"served {served} commands; exiting", flush=True)
        return 0


def _still_ours(home: Path, inode: int, path: Path) -> bool:
    try:
        return home.stat().st_ino == inode and path.exists()
    except OSError:
        return False


def _handle(conn: socket.socket, listener: socket.socket, own_env: dict[str, str],
            fingerprint: tuple[tuple[str, int, int], ...]) -> str:
    """Answer one connection: a refusal, a stop, or a fork that becomes the command."""
    conn.settimeout(10.0)
    try:
        request, fds = recv_frame(conn, max_fds=3)
    except (OSError, ValueError):
        conn.close()
        return "dropped"
    outcome = "fork"
    try:
        if request is None:
            outcome = "dropped"
        elif request.get("stop"):
            send_frame(conn, {"stopped": os.getpid()})
            outcome = "stale"
        else:
            why = refusal(request, own_env, fingerprint)
            if why is not None or len(fds) != 3:
                send_frame(conn, {"refused": why or "descriptors"})
                print(f"refused {' '.join(request.get('argv', [])[1:3])}: "
                      f"{why or 'descriptors'}", flush=True)
                outcome = "stale" if why == "stale" else "refused"
    except OSError:
        outcome = "dropped"
    if outcome != "fork":
        for fd in fds:
            os.close(fd)
        conn.close()
        return outcome
    pid = os.fork()
    if pid == 0:
        listener.close()
        raise _Forked(conn, request, fds)
    for fd in fds:
        os.close(fd)
    conn.close()
    print(f"ran {' '.join(request['argv'][1:3])} as pid {pid}", flush=True)
    return "forked"


def become_command(forked: _Forked) -> int:
    """In the fork: take over the client's descriptors, directory and environment, run."""
    conn, request, fds = forked.conn, forked.request, forked.fds
    conn.settimeout(None)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocess.wait needs its children
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)  # its own group: a dead client takes the command's workers with it
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=stream.isatty())
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    if "numpy" in sys.modules:  # a fresh process would have drawn its own seed
        sys.modules["numpy"].random.seed()
    atexit.register(_report_exit, conn)  # registered first, so it runs last
    threading.Thread(target=_die_with_client, args=(conn,), daemon=True).start()
    send_frame(conn, {"pid": os.getpid()})
    from lipflow.flows.launcher import CLI_APP

    module, attr = CLI_APP.split(":")
    try:
        getattr(importlib.import_module(module), attr)(args=sys.argv[1:], prog_name="lipflow")
    except SystemExit as done:
        code = done.code
    else:  # pragma: no cover - click's standalone mode always exits
        code = 0
    if code is None or isinstance(code, int):
        _EXIT[0] = int(code or 0)
    else:
        print(code, file=sys.stderr)
        _EXIT[0] = 1
    return _EXIT[0]


#: the command's exit code, as the last atexit handler reports it
_EXIT = [1]


def _report_exit(conn: socket.socket) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        send_frame(conn, {"exit": _EXIT[0]})


def _die_with_client(conn: socket.socket) -> None:
    """The client sends nothing after its request: end of stream means it died."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    with contextlib.suppress(OSError):
        os.killpg(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """``python -m lipflow.flows.command_server HOME [--idle-s S]``."""
    parser = argparse.ArgumentParser(prog="python -m lipflow.flows.command_server")
    parser.add_argument("home", type=Path)
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    args = parser.parse_args(argv)
    try:
        return serve(args.home, args.idle_s)
    except _Forked as forked:
        return become_command(forked)


def start_in_background(home: Path, raw_env: dict[str, str]) -> bool:
    """Start a server for ``home`` unless one holds its lock; returns whether one started.

    ``raw_env`` is the environment the launching ``lipflow`` process started with (before
    lipflow's defaults), the one its later commands will send.
    """
    import subprocess

    if not enabled(raw_env):
        return False
    home.mkdir(parents=True, exist_ok=True)
    with _server_lock(home) as free:
        if not free:
            return False
    with (home / LOG_NAME).open("ab") as log:
        subprocess.Popen([sys.executable, "-m", __name__, os.fspath(home)],
                         cwd=home, env=raw_env, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    return True


def stop(home: Path) -> int | None:
    """Ask ``home``'s server to exit; its pid, or None when none answered."""
    path = socket_path(home)
    if not path.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(5.0)
            sock.connect(os.fspath(path))
            send_frame(sock, {"stop": True})
            reply, _ = recv_frame(sock)
        except OSError:
            return None
    return int(reply["stopped"]) if reply and "stopped" in reply else None


def status(home: Path) -> int | None:
    """The pid holding ``home``'s server lock, if a server is up (None otherwise)."""
    if not socket_path(home).exists():
        return None
    with _server_lock(home) as free:
        return None if free else _lock_holder(home)


def _lock_holder(home: Path) -> int:
    """The pid in the server's log line, best effort (0 when unknown)."""
    with contextlib.suppress(OSError, ValueError):
        for line in reversed((home / LOG_NAME).read_text().splitlines()):
            if line.startswith("serving on "):
                return int(line.rsplit("pid ", 1)[1].rstrip(")"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
