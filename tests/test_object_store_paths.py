"""Object-store locations without a server: URL parsing, joining, the params roots that
hold URLs, and the AWS variables that become s3fs options."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipflow.tasks.common.object_store import (
    ObjectStoreError,
    is_url,
    join,
    location,
    name_of,
    storage_options,
    with_name,
)
from lipflow.tasks.contracts.store_layout import manifest_path_for
from lipflow.tasks.settings.paths import clip_manifest_path, corpus_roots, features_root, store_path
from tests.support.s3 import aws_env


def test_urls_stay_strings_and_paths_stay_paths() -> None:
    assert location("s3://bucket/features/grid/") == "s3://bucket/features/grid"
    assert location("S3://bucket/x") == "s3://bucket/x"
    assert location("data/features") == Path("data/features")
    assert not is_url(Path("s3:/bucket/x")) and is_url("s3://bucket/x")
    url = join("s3://bucket/f", "s1.zarr")
    assert url == "s3://bucket/f/s1.zarr" and name_of(url) == "s1.zarr"
    assert with_name(url, "s1.parquet") == "s3://bucket/f/s1.parquet"
    assert manifest_path_for(url) == clip_manifest_path(url) == "s3://bucket/f/s1.parquet"
    assert manifest_path_for(Path("/d/s1.zarr")) == Path("/d/s1.parquet")


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://host/x", "unsupported URL scheme 'ftp'"),
    ("s3://", "does not name a valid bucket"),
    ("s3://Bad_Bucket/x", "does not name a valid bucket"),
])
def test_bad_urls_are_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(ObjectStoreError, match=message) as err:
        location(url)
    assert "\n" not in str(err.value)


def test_params_roots_and_the_command_line_accept_urls(tmp_path: Path) -> None:
    params = {"grid": {"features_root": "s3://bucket/features/grid/", "raw_root": "raw"}}
    root = features_root(params, "grid", tmp_path)
    assert root == "s3://bucket/features/grid"
    assert store_path(root, "s1") == "s3://bucket/features/grid/s1.zarr"
    local = features_root({"grid": {"features_root": "feat"}}, "grid", tmp_path)
    assert local == tmp_path / "feat" and store_path(local, "s1") == tmp_path / "feat/s1.zarr"
    _, out = corpus_roots(params, "grid", None, "s3://other/f")
    assert out == "s3://other/f"


def test_endpoint_credentials_and_region_come_from_the_aws_variables() -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": None,
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL_S3": None,
           "AWS_REGION": None, "AWS_DEFAULT_REGION": "eu-west-1"}
    with aws_env(env):
        assert storage_options("s3://b/x") == {
            "key": "k", "secret": "s",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}}
    with aws_env({**env, "AWS_ENDPOINT_URL_S3": "http://s3only:1", "AWS_ACCESS_KEY_ID": None}):
        options = storage_options("s3://b/x")
        assert options["client_kwargs"]["endpoint_url"] == "http://s3only:1"
        assert "key" not in options  # botocore's own chain decides
