"""``quiet_native_stderr``: fd 2 silenced for native chatter, restored after, also when
several threads overlap (one detector per worker thread warms up at once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import os, sys, threading
from lipflow.tasks.common.native_logs import quiet_native_stderr

log = open(sys.argv[1], "wb", buffering=0)
os.dup2(log.fileno(), 2)  # fd 2 is the file: what reaches it is what native code would show
os.write(2, b"before;")
with quiet_native_stderr():
    os.write(2, b"hidden;")
os.write(2, b"after-one;")

a_in, b_in, a_out, b_go = (threading.Event() for _ in range(4))

def first():
    with quiet_native_stderr():
        a_in.set(); b_in.wait()
    a_out.set()

def second():
    a_in.wait()
    with quiet_native_stderr():
        b_in.set(); a_out.wait()
        os.write(2, b"hidden-while-b-runs;")  # a has left, b has not: still quiet
    b_go.set()

threads = [threading.Thread(target=first), threading.Thread(target=second)]
for t in threads: t.start()
for t in threads: t.join()
os.write(2, b"end")
"""


def test_fd2_is_quiet_inside_and_restored_after_overlapping_threads(tmp_path: Path) -> None:
    out = tmp_path / "fd2.txt"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == b"before;after-one;end"
