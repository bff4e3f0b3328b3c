"""The one rule for whether a long step draws a progress bar.

``progress=None`` (the default everywhere) means "when a person is watching": a bar is
drawn only if stderr is a terminal, so DVC stages, CI logs and Prefect workers stay free
of carriage-return noise while an interactive ``lipflow prepare`` shows its ETA.
``--progress/--no-progress`` on the command line sets it explicitly.
"""

from __future__ import annotations

import sys


def show_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)
