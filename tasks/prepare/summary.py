"""The one line ``lipflow prepare`` ends each speaker with: what went in, what came out, how fast.

``s1: 1000 videos, 989 clips kept, 11 rejected (detection rate below 0.80: 11), 49.7 min of
video in 120 s (24.9x realtime)``. Rejections are grouped by the kind of reason, not the
exact text: a reason's own numbers (``detection rate 0.62 below 0.80``), the file it names
and its parenthesised detail differ from clip to clip, so the line would otherwise list
every rejection separately. The clip manifest keeps every reason verbatim.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_MEASURED = re.compile(r"\b(detection rate) \d+(?:\.\d+)? (below)")
_DETAIL = re.compile(r"\s*\([^()]*\)\s*$")


def reason_kind(reason: str | None, source_path: str | None = None) -> str:
    """A rejection reason without its clip-specific parts, for counting rejections by kind."""
    if not reason:
        return "unknown"
    text = str(reason)
    if source_path and source_path in text:  # "<raw root>/s1/x.mpg: empty file" -> "empty file"
        text = text[text.index(source_path) + len(source_path):].lstrip(": ")
    text = _MEASURED.sub(r"\1 \2", text)
    while _DETAIL.search(text):
        text = _DETAIL.sub("", text)
    return text.strip() or "unknown"


@dataclass(frozen=True)
class PrepareSummary:
    """One speaker's prepare run, as counted from its clip rows."""

    label: str
    videos: int
    kept: int
    rejected: Mapping[str, int]
    video_seconds: float
    wall_seconds: float
    batches: int = 0
    resumed: int = 0

    @property
    def realtime(self) -> float:
        """Video seconds per wall second."""
        return self.video_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        rejected = sum(self.rejected.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in self.rejected.items())
        return (f"{self.label}: {_count(self.videos, 'video')}, {_count(self.kept, 'clip')} kept, "
                f"{rejected} rejected"
                f"{f' ({reasons})' if reasons else ''}, {_duration(self.video_seconds)} of video"
                f" in {_wall(self.wall_seconds)} ({self.realtime:.1f}x realtime)")

    def resume_line(self) -> str:
        return (f"{self.label}: resumed {self.resumed} of {self.batches} batches, "
                f"computed {self.batches - self.resumed}")


def summarise(label: str, videos: int, rows: Sequence[Mapping[str, Any]], video_seconds: float,
              wall_seconds: float, batches: int = 0, resumed: int = 0) -> PrepareSummary:
    """Count kept clips and rejections by kind (most frequent first) from clip rows."""
    kinds = Counter(reason_kind(r.get("reject_reason"), r.get("source_path"))
                    for r in rows if not r["kept"])
    rejected = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    kept = sum(1 for r in rows if r["kept"])
    return PrepareSummary(label, videos, kept, rejected, float(video_seconds),
                          float(wall_seconds), batches, resumed)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _wall(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _count(n: int, noun: str) -> str:
    """``1 video``, ``3 videos``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
