"""Errors that lipflow reports to a user as one clear line instead of a traceback.

The CLI catches :class:`LipflowError` and prints its message with exit code 2; batch
code catches it per item and records ``str(err)`` as the item's rejection reason.
"""


class LipflowError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class DownloadError(LipflowError):
    """A file could not be fetched (404, repeated network failure, checksum mismatch)."""


class ArchiveError(LipflowError):
    """An archive is corrupt, truncated, or holds a member that would escape its target."""


class MediaError(LipflowError):
    """A video or audio file cannot be probed or decoded as needed."""


class ConfigError(LipflowError):
    """``params.yaml`` or a command-line value is missing or out of range."""
