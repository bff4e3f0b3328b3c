"""What the ``refresh`` flow does, as plain functions: find and fetch missing speakers.

A missing speaker is one configured in ``params.yaml`` (``grid.speakers``,
``lip2wav.speakers``) whose raw manifest does not exist yet. It is fetched by running the
same ``lipflow download`` command a user would type (and the DVC stages run), so its
output lands in the flow's log exactly as on a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lipflow.tasks.common.executables import lipflow_command
from lipflow.tasks.settings.paths import raw_manifest_path, raw_root

#: Corpora that ``refresh`` downloads, in order; each needs a ``lipflow download <corpus>``.
REFRESH_CORPORA = ("grid", "lip2wav")


def missing_speakers(params: Mapping[str, Any], corpus: str, root: Path) -> list[str]:
    """Configured speakers of ``corpus`` that have no raw manifest yet."""
    raw = raw_root(params, corpus, root)
    return [s for s in (params.get(corpus) or {}).get("speakers") or []
            if not raw_manifest_path(raw, s).is_file()]


def download_command(params: Mapping[str, Any], corpus: str, speakers: list[str],
                     root: Path) -> list[str]:
    """The ``lipflow download`` command line that fetches ``speakers`` of ``corpus``."""
    conf = params[corpus]  # validated params: every key of the corpus section is present
    cmd = [*lipflow_command(), "download", corpus, *speakers, "--root",
           str(raw_root(params, corpus, root)), "--no-progress"]
    if corpus == "grid":
        cmd += ["--mirror", str(conf["mirror"])]
    elif corpus == "lip2wav":
        cmd += ["--split", str(conf["split"])]
        if conf.get("limit_videos"):  # 0 / null: every video of the list
            cmd += ["--limit", str(int(conf["limit_videos"]))]
    return cmd
