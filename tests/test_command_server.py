"""The warm command server (``lipflow.flows.command_server``) and the launcher that hands
commands to it (``lipflow.flows.launcher``).

The unit cases check when a server must refuse (stale code, an environment its imports
did not see, another Python); the end-to-end case starts a real server for a throw-away
``PREFECT_HOME`` and runs the real ``lipflow`` entry point through it.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lipflow.flows import command_server, launcher

LIPFLOW = Path(sys.executable).with_name("lipflow")
PROJECT = Path(__file__).resolve().parents[1]


def test_fingerprint_sees_an_edited_module(tmp_path: Path, monkeypatch) -> None:
    """Editing any imported lipflow module (what ``dvc repro`` reruns stages for) changes
    the fingerprint, so a server never runs code older than what is on disk."""
    module = tmp_path / "lipflow_fingerprint_probe.py"
    module.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("lipflow_fingerprint_probe")
    try:
        before = command_server.code_fingerprint()
        assert any(path == str(module) for path, _, _ in before)
        assert command_server.code_fingerprint() == before
        module.write_text("VALUE = 22\n")
        assert command_server.code_fingerprint() != before
    finally:
        sys.modules.pop("lipflow_fingerprint_probe", None)


def _request(env: dict[str, str], executable: str = sys.executable) -> dict:
    return {"argv": ["lipflow", "--help"], "cwd": "/", "env": env, "executable": executable}


def test_refusals() -> None:
    own = {"PATH": "/bin", "PREFECT_HOME": "/h", "LIPFLOW_ROOT": "/p", "HOME": "/root"}
    fingerprint = command_server.code_fingerprint()
    assert command_server.refusal(_request(own), own, fingerprint) is None
    # variables no import reads may differ: the fork takes the command's values
    assert command_server.refusal(_request({**own, "PATH": "/usr/bin", "X": "1"}), own,
                                  fingerprint) is None
    for key in ("PREFECT_HOME", "PREFECT_LOGGING_LEVEL", "LIPFLOW_PARAMS", "OMP_NUM_THREADS",
                "PYTHONPATH"):
        assert command_server.refusal(_request({**own, key: "other"}), own,
                                      fingerprint) == "environment", key
    assert command_server.refusal(_request(own, "/usr/bin/python9"), own,
                                  fingerprint) == "another Python"
    stale = ((__file__, 0, 0),)
    assert command_server.refusal(_request(own), own, stale) == "stale"


def test_a_stale_server_refuses_and_stops() -> None:
    """The answer to a command a stale server cannot run: a refusal (the launcher then runs
    it in its own process) and the end of that server's loop."""
    client, server = socket.socketpair()
    with client, server:
        with open(os.devnull) as null:
            launcher.send_frame(client, _request(dict(os.environ)), [null.fileno()] * 3)
        outcome = command_server._handle(server, server, dict(os.environ), ((__file__, 0, 0),))
        reply, _ = launcher.recv_frame(client)
    assert outcome == "stale" and reply == {"refused": "stale"}


def test_socket_path_stays_short(tmp_path: Path) -> None:
    assert launcher.socket_path(tmp_path) == tmp_path / launcher.SOCKET_NAME
    deep = tmp_path / ("x" * 120)
    long_path = launcher.socket_path(deep)
    assert len(os.fsencode(long_path)) <= launcher.MAX_SOCKET_PATH
    assert long_path != launcher.socket_path(tmp_path / ("y" * 120))


@pytest.mark.parametrize("value", ["off", "0", "false", "no", "OFF"])
def test_switch_off(value: str) -> None:
    assert not launcher.enabled({launcher.SWITCH_ENV: value})
    assert launcher.enabled({})


@pytest.fixture
def served(tmp_path: Path):
    """A command server for a throw-away PREFECT_HOME, as the first command would start
    it; yields (home, env of the commands it may run); stopped and checked gone after."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"PREFECT_HOME": str(home), "LIPFLOW_ROOT": str(PROJECT),
                launcher.SWITCH_ENV: "on"})
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lipflow.flows.command_server",
                                 str(home), "--idle-s", "300"], env=env, cwd=home,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not launcher.socket_path(home).exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the command server did not come up in 120 s"
        time.sleep(0.2)
    proc.log = log  # type: ignore[attr-defined]
    try:
        yield home, env, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)


def _log_of(proc: subprocess.Popen) -> str:
    proc.wait(timeout=30)
    return proc.log.read_text()  # type: ignore[attr-defined]


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_commands_run_through_the_server(served, tmp_path: Path) -> None:
    """The real entry point: output, exit codes, the working directory and arguments are
    the command's own; an environment the server's imports did not see runs in-process;
    ``lipflow server stop`` ends the server."""
    home, env, proc = served

    def lipflow(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(LIPFLOW), *args], env={**env, **(extra or {})}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    helped = lipflow("--help")
    assert helped.returncode == 0 and "Usage" in helped.stdout

    (tmp_path / "list.txt").write_text("dQw4w9WgXcQ\n--exec=x\n")
    bad = lipflow("download", "youtube", "--list", "list.txt", "--speaker", "anna",
                  "--language", "de")
    assert bad.returncode == 2
    assert "list.txt:2: not a YouTube video id" in bad.stderr  # read relative to our cwd

    missing = lipflow("download", "grid", "s21")
    assert missing.returncode == 2 and "s21 has no video" in missing.stderr

    debug = lipflow("download", "grid", "s21", extra={"PREFECT_LOGGING_LEVEL": "DEBUG"})
    assert debug.returncode == 2 and "s21 has no video" in debug.stderr

    # a command that opens MediaPipe's detectors: their clean-up at exit must be as quiet
    # as in-process (atexit order: MediaPipe's shutdown flag first, then lipflow's close)
    video = PROJECT / "data" / "samples" / "grid" / "s1" / "bbaf2n.mpg"
    tracked = lipflow("track", str(video), "tracked.mp4")
    assert tracked.returncode == 0, tracked.stderr
    assert (tmp_path / "tracked.mp4").stat().st_size > 0
    assert "Traceback" not in tracked.stderr and "Exception ignored" not in tracked.stderr

    stopped = lipflow("server", "stop")
    assert stopped.returncode == 0 and f"stopped the command server (pid {proc.pid})" in \
        stopped.stdout
    log = _log_of(proc)
    assert log.count("ran --help") == 1 and log.count("ran download youtube") == 1
    assert log.count("ran track") == 1
    assert log.count("ran download grid") == 1  # the DEBUG one ran in its own process
    assert "refused download grid: environment" in log
    assert "served 4 commands; exiting" in log
    assert not launcher.socket_path(home).exists()


def test_signals_reach_the_command_and_a_dead_client_takes_it_along(served,
                                                                   tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the ``lipflow`` process) interrupts the command as it would
    in-process; ``kill -9`` of ``lipflow`` (or of a DVC stage) kills the command too."""
    import numpy as np
    import soundfile as sf

    home, env, proc = served
    noise = np.random.default_rng(0).standard_normal(32000) * 3000
    wavs = []
    for i in range(40):  # ~1 s of decoding each: the command checks for Ctrl-C between files
        wavs.append(tmp_path / f"noise{i}.wav")
        sf.write(wavs[-1], noise.astype(np.int16), 16000, subtype="PCM_16")

    def start() -> tuple[subprocess.Popen, int]:
        client = subprocess.Popen([str(LIPFLOW), "asr", *map(str, wavs), "--grammar", "none"],
                                  env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = [line for line in proc.log.read_text().splitlines()
                    if line.startswith("ran asr")]
            if len(runs) == len(started) + 1:
                return client, int(runs[-1].rsplit("pid ", 1)[1])
            time.sleep(0.1)
        raise AssertionError(proc.log.read_text())

    started: list[int] = []
    client, pid = start()
    started.append(pid)
    time.sleep(2.0)  # into the decoding
    client.send_signal(signal.SIGINT)
    client.communicate(timeout=60)
    assert client.returncode == 130  # what the same Ctrl-C gives in-process

    assert _gone(pid, 10)

    client, pid = start()
    started.append(pid)
    time.sleep(2.0)
    client.kill()
    client.wait(timeout=10)
    assert _gone(pid, 10), "the command outlived its killed client"
    assert proc.poll() is None  # the server itself goes on
