"""Locations that may be object-store URLs (``s3://bucket/prefix``): the one place that
parses them, builds their fsspec filesystem, and turns their failures into one-line errors.

Why one module: a store root can be a local folder (a :class:`~pathlib.Path`) or a URL (kept
as a ``str``: ``Path("s3://b/x")`` would collapse the ``//``), and every caller that joins
names onto a root, opens a filesystem or reports "no such bucket" must agree. Credentials,
endpoint and region come from the usual AWS variables, read here and passed explicitly to
s3fs (so fsspec's instance cache never hands back a filesystem built for other settings):

* ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), else
  botocore's own chain (``~/.aws``, instance roles);
* ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``: a non-AWS endpoint (MinIO, Ceph, moto);
* ``AWS_REGION`` or ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

from lipflow.tasks.common.errors import LipflowError

#: Schemes a store or manifest location may use besides a local path.
SCHEMES = ("s3",)

Location = Path | str
_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectStoreError(LipflowError):
    """A URL that is malformed, names a missing bucket, or cannot be reached or signed."""


def is_url(value: object) -> bool:
    """Whether ``value`` is a ``scheme://...`` string (a Path never is)."""
    return isinstance(value, str) and _URL.match(value) is not None


def location(value: str | Path) -> Location:
    """A URL as a normalised string (no trailing ``/``), anything else as a Path.

    Raises :class:`ObjectStoreError` for a URL of an unsupported scheme or without a bucket.
    """
    if isinstance(value, Path) or not is_url(value):
        return Path(value)
    match = _URL.match(str(value))
    assert match is not None
    scheme, rest = match["scheme"].lower(), match["rest"].strip("/")
    if scheme not in SCHEMES:
        raise ObjectStoreError(f"unsupported URL scheme {scheme!r} in {value!r}; "
                               f"use a local path or one of {[s + '://' for s in SCHEMES]}")
    bucket = rest.split("/", 1)[0]
    if not _BUCKET.match(bucket):
        raise ObjectStoreError(f"{value!r} does not name a valid bucket (s3://BUCKET/PREFIX)")
    return f"{scheme}://{rest}"


def join(root: Location, *names: str) -> Location:
    """``root / name / ...`` for a Path or a URL."""
    if is_url(root):
        return posixpath.join(str(root), *names)
    return Path(root).joinpath(*names)


def name_of(loc: Location) -> str:
    """The last component (``s1.zarr``)."""
    return posixpath.basename(str(loc)) if is_url(loc) else Path(loc).name


def with_name(loc: Location, name: str) -> Location:
    """``loc`` with its last component replaced (a sibling)."""
    if is_url(loc):
        return posixpath.join(posixpath.dirname(str(loc)), name)
    return Path(loc).with_name(name)


def storage_options(url: str) -> dict[str, Any]:
    """s3fs keyword arguments from the AWS environment variables (module docstring)."""
    env = os.environ
    client: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        client["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    options: dict[str, Any] = {"client_kwargs": client}
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options.update(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"])
        if env.get("AWS_SESSION_TOKEN"):
            options["token"] = env["AWS_SESSION_TOKEN"]
    return options


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without the scheme) for ``url``."""
    import fsspec

    loc = location(url)
    scheme, path = str(loc).split("://", 1)
    return fsspec.filesystem(scheme, **storage_options(str(loc))), path


def describe_error(url: str, err: BaseException) -> str:
    """A one-line reason for a failed request to ``url`` (no traceback, no XML body)."""
    name = type(err).__name__
    text = str(err).splitlines()[0] if str(err) else name
    if name in ("NoCredentialsError", "PartialCredentialsError") or "credentials" in text.lower():
        return (f"no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and AWS_ENDPOINT_URL for a non-AWS endpoint)")
    if "bucket does not exist" in text.lower() or name == "NoSuchBucket":
        return f"bucket of {url} does not exist: create it first"
    if name in ("EndpointConnectionError", "ConnectionError", "ClientConnectorError"):
        return f"cannot reach the endpoint of {url}: {text} (check AWS_ENDPOINT_URL)"
    return f"{url}: {name}: {text}"


def check_bucket(url: str) -> None:
    """Raise a one-line :class:`ObjectStoreError` unless ``url``'s bucket can be listed.

    Why before any work: a prepare that finds out after an hour of preprocessing that its
    bucket is misspelt or its credentials are unset has wasted the hour.
    """
    fs, path = filesystem(url)
    bucket = path.split("/", 1)[0]
    try:
        fs.ls(bucket, refresh=True)
    except FileNotFoundError:
        raise ObjectStoreError(f"bucket of {url} does not exist: create it first") from None
    except Exception as err:  # noqa: BLE001 - botocore/aiohttp raise many kinds; one line each
        raise ObjectStoreError(describe_error(url, err)) from None
