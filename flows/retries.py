"""Retry policy for Prefect tasks: transient failures retry, deterministic ones do not.

A :class:`lipflow.tasks.common.errors.LipflowError` is the user's input (a bad id, a corrupt
archive, a
404, a video without a face); retrying it only wastes time. The downloaders already
retry network faults with backoff inside the call, so Prefect's retries are the outer
net for unexpected crashes (a killed worker, an OSError mid-write).
"""

from __future__ import annotations

from typing import Any

from lipflow.tasks.common.errors import LipflowError


def retry_unless_deterministic(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect tasks: no retry when the failure is a LipflowError."""
    try:
        state.result()
    except LipflowError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return True
