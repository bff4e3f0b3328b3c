#!/usr/bin/env python3
"""Render a page (a report's index.html or a Prefect UI URL) to PNG in headless Chromium.

A developer tool for the README's screenshots; nothing in lipflow's tests or setup
needs it. Needs Debian's ``chromium`` package (``apt-get install chromium``) or any
Chromium/Chrome binary given with ``--chromium``.

    python scripts/screenshot.py reports/dataset/index.html docs/img/report.png
    python scripts/screenshot.py http://127.0.0.1:4200/deployments docs/img/deployments.png \
        --wait-ms 8000

Why these flags: ``--headless`` with ``--screenshot`` renders one page and exits;
``--no-sandbox`` because containers and CI often run as root; the ``--disable-*`` flags
and a throw-away profile keep Chromium from phoning home or reusing state;
``--virtual-time-budget`` lets a single-page app (the Prefect UI) fetch its data before
the picture is taken.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium binary to use, or exit with how to install one."""
    for name in ([explicit] if explicit else []) + list(CANDIDATES):
        found = shutil.which(name) if name else None
        if found:
            return found
    sys.exit("screenshot: no Chromium found; install Debian's package (apt-get install "
             "chromium) or pass --chromium /path/to/chrome")


def page_url(target: str) -> str:
    """A URL for ``target``: http(s)/file URLs as given, a local path as file://."""
    if "://" in target:
        return target
    path = Path(target).resolve()
    if not path.is_file():
        sys.exit(f"screenshot: {path} does not exist")
    return path.as_uri()


def screenshot(target: str, out: Path, width: int = 1400, height: int = 900,
               wait_ms: int = 3000, chromium: str | None = None) -> Path:
    """Render ``target`` to ``out`` (PNG) and return ``out``."""
    binary = find_chromium(chromium)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lipflow-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--virtual-time-budget={wait_ms}", f"--window-size={width},{height}",
               f"--screenshot={out}", page_url(target)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        sys.exit(f"screenshot: chromium failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a local HTML file or an http(s) URL")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--wait-ms", type=int, default=3000,
                        help="virtual time the page gets to load data before the shot")
    parser.add_argument("--chromium", help="Chromium/Chrome binary (default: search PATH)")
    args = parser.parse_args(argv)
    path = screenshot(args.target, args.out, args.width, args.height, args.wait_ms, args.chromium)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
