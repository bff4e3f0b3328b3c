"""lipflow's work: plain functions that take paths and params and return paths or records.

Every module here is usable without a Prefect server; ``flows/`` wraps them as tasks.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lipflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
