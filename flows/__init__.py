"""Prefect flows and the ``lipflow`` CLI: thin composition over ``lipflow.tasks`` and
``lipflow.models``.

Importing this package changes nothing in the process; entry points call
:func:`lipflow.tasks.common.process.configure_process` before Prefect is imported.
"""
