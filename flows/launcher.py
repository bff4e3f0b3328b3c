"""The ``lipflow`` entry point: hand the command to the project's warm command server, or
run it here.

Why: every ``lipflow`` process paid for its imports before doing any work: Prefect
(0.85-1.7 s), typer and the params schema, the flow's modules, and torch for the model
commands. ``dvc repro`` runs one such process per stage, so a 22-stage DAG paid that
dozens of times. The command server (:mod:`lipflow.flows.command_server`) imports all of
it once and forks a copy of itself per command, the way a Gradle daemon or Android's
zygote do. The fork runs the command with this process's arguments, working directory,
environment and its very stdin/stdout/stderr (passed over a Unix socket), so output,
exit codes, Ctrl-C and DVC's view of the stage are what they would be in-process.

Rules this module keeps: only the standard library and
:mod:`lipflow.tasks.settings.project_folder` are imported before the hand-over; every
refusal or failure to reach a server falls back to running the command here, silently;
``LIPFLOW_COMMAND_SERVER=off`` turns the whole mechanism off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: ``off`` (or 0/false/no) runs every command in its own process, starting no server
SWITCH_ENV = "LIPFLOW_COMMAND_SERVER"
SOCKET_NAME = "lipflow-commands.sock"
LOCK_NAME = "lipflow-commands.lock"
LOG_NAME = "lipflow-commands.log"
#: AF_UNIX paths are limited to ~107 bytes; longer ones use a hashed name in the temp dir
MAX_SOCKET_PATH = 100
#: variables read when a module is imported (Prefect's settings and logging, thread
#: pools, the project and params overrides): a command whose values differ from the
#: server's is run in its own process instead
IMPORT_TIME_PREFIXES = ("PREFECT_", "LIPFLOW_", "PYTHON", "OMP_", "MKL_", "KMP_",
                        "OPENBLAS_", "TORCH", "CUDA", "GLOG_", "TF_", "LD_", "DO_NOT_TRACK",
                        "DVC_NO_ANALYTICS", "MPLBACKEND", "NUMBA_", "VIRTUAL_ENV")
#: how long the hand-over (connect, request, the fork's pid) may take before the command
#: runs in this process instead; the server answers in milliseconds when it is healthy
HANDOVER_TIMEOUT_S = 30.0
#: the typer app this entry point runs (here or in a command server's fork)
CLI_APP = "lipflow.flows.cli:app"
#: commands that manage the servers themselves always run here
LOCAL_COMMANDS = frozenset({"server"})

#: the environment this process started with, before lipflow set any default: what a
#: command server started from here must share with the commands it serves
RAW_ENV: dict[str, str] | None = None


def enabled(env: Mapping[str, str]) -> bool:
    """Whether commands may go through a command server (``LIPFLOW_COMMAND_SERVER``)."""
    return env.get(SWITCH_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def socket_path(home: Path) -> Path:
    """Where the command server of ``home`` (a ``PREFECT_HOME``) listens."""
    path = home / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"lipflow-{os.getuid()}-{digest}.sock"


def import_time_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of ``env`` that must match between a command and the server running it."""
    return {key: value for key, value in env.items() if key.startswith(IMPORT_TIME_PREFIXES)}


def send_frame(sock: socket.socket, message: Mapping[str, Any],
               fds: list[int] | None = None) -> None:
    """One length-prefixed JSON message, with file descriptors attached if given."""
    body = json.dumps(message).encode()
    data = struct.pack("!I", len(body)) + body
    if fds:
        rights = struct.pack(f"{len(fds)}i", *fds)
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    else:
        sock.sendall(data)


def recv_frame(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and any descriptors that came with it; (None, []) at end of stream."""
    fds: list[int] = []
    header = b""
    while len(header) < 4:
        if max_fds and not header:
            chunk, ancdata, _, _ = sock.recvmsg(4, socket.CMSG_LEN(max_fds * 4))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(struct.unpack(f"{len(payload) // 4}i",
                                             payload[:len(payload) - len(payload) % 4]))
        else:
            chunk = sock.recv(4 - len(header))
        if not chunk:
            for fd in fds:
                os.close(fd)
            return None, []
        header += chunk
    (size,) = struct.unpack("!I", header)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


def _stdin_to_pass() -> tuple[int, bool]:
    """Our stdin, or /dev/null when it is a terminal (no lipflow command reads stdin, and a
    process outside the terminal's session must not compete with the shell for keys)."""
    try:
        if not os.isatty(0):
            os.fstat(0)
            return 0, False
    except OSError:
        pass
    return os.open(os.devnull, os.O_RDONLY), True


def run_on_server(argv: list[str], env: Mapping[str, str]) -> int | None:
    """Run the command on the project's command server; None when it cannot take it."""
    path = socket_path(_home(env))
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stdin_fd, close_stdin = _stdin_to_pass()
    try:
        sock.settimeout(HANDOVER_TIMEOUT_S)  # a wedged server: run here instead of waiting
        sock.connect(os.fspath(path))
        send_frame(sock, {"argv": argv, "cwd": os.getcwd(), "env": dict(env),
                          "executable": sys.executable}, [stdin_fd, 1, 2])
        reply, _ = recv_frame(sock)
        sock.settimeout(None)  # the command itself may run for hours
    except OSError:  # socket.timeout included
        sock.close()
        return None
    finally:
        if close_stdin:
            os.close(stdin_fd)
    if reply is None or "pid" not in reply:
        sock.close()
        return None
    return _follow(sock, int(reply["pid"]))


def _follow(sock: socket.socket, pid: int) -> int:
    """Forward signals to the command's process until it reports its exit code and ends."""
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    code: int | None = None
    with sock:
        while True:
            try:
                message, _ = recv_frame(sock)
            except InterruptedError:  # pragma: no cover - PEP 475 retries recv
                continue
            except OSError:
                break
            if message is None:  # the command's process has ended
                break
            if "exit" in message:
                code = int(message["exit"])
    if code is None:
        sys.stderr.write("lipflow: the command's process ended without an exit status\n")
        return 1
    return code


def _home(env: Mapping[str, str]) -> Path:
    from lipflow.tasks.settings.project_folder import prefect_home_for

    return prefect_home_for(env)


def main() -> None:  # pragma: no cover - the console entry point (tested through it)
    """``lipflow``: through the command server when one can take the command, else here."""
    global RAW_ENV
    RAW_ENV = dict(os.environ)
    argv = list(sys.argv)
    if enabled(RAW_ENV) and not set(argv[1:2]) & LOCAL_COMMANDS:
        code = run_on_server(argv, RAW_ENV)
        if code is not None:
            sys.exit(code)
    import importlib

    module, attr = CLI_APP.split(":")
    sys.exit(getattr(importlib.import_module(module), attr)())
