"""Console hygiene for the CLI: one clear line for a user error, not a Prefect traceback.

Prefect logs a failing flow's exception with its traceback to the console. For a
:class:`lipflow.tasks.common.errors.LipflowError` (bad input, explained in its message) the CLI
prints
``error: <message>`` itself, so ``flows/logging.yml`` puts :class:`DropUserErrors` on the
console handler. The API log handler is untouched: the Prefect UI still shows the full
failure. Unexpected exceptions keep their tracebacks everywhere.
"""

from __future__ import annotations

import logging

from lipflow.tasks.common.errors import LipflowError


def _user_error_names() -> tuple[str, ...]:
    """``Name:`` of every LipflowError subclass, as Prefect writes them in state messages."""
    seen, todo = set(), [LipflowError]
    while todo:
        cls = todo.pop()
        seen.add(f"{cls.__name__}:")
        todo.extend(cls.__subclasses__())
    return tuple(seen)


class DropUserErrors(logging.Filter):
    """Drop console records caused by a LipflowError (by exception or by state message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, LipflowError):
            return False
        message = record.getMessage()
        return not any(name in message for name in _user_error_names())
