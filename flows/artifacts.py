"""Prefect artifacts that summarise a finished run in the UI (the progress bar is in progress.py).

:func:`publish_speaker_table` turns clip manifests into one table artifact: per speaker,
clips kept, clips rejected (by reason), minutes of kept video and mean detection rate.
The numbers come from :func:`lipflow.tasks.ops.report.speaker_summary`, the same function the HTML
report uses, so the UI and the report never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def speaker_rows(manifests: Sequence[Path]) -> list[dict[str, Any]]:
    """Table rows (plain JSON values) for the clip manifests at ``manifests``."""
    from lipflow.tasks.ops.report import load_clips, speaker_summary

    summary = speaker_summary(load_clips(list(manifests)))
    rows = []
    for row in summary.to_dict("records"):
        reasons = row.pop("rejected_by_reason") or {}
        row["rejected_by_reason"] = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "-"
        rows.append(row)
    return rows


def publish_speaker_table(rows: Iterable[Mapping[str, Any]], key: str | None = None,
                          description: str = "Clips per speaker") -> Any:
    """Create a Prefect table artifact from ``rows``; returns its id (None outside a run).

    Call it at the end of a flow with ``speaker_rows(manifest_paths)``. ``key`` (lowercase,
    dashes) makes the artifact versioned across runs in the UI's Artifacts page. Like the
    progress artifact it is a courtesy: outside a flow run it does nothing.
    """
    from prefect.artifacts import create_table_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return None
    table = [dict(r) for r in rows]
    return create_table_artifact(table=table, key=key, description=description)
