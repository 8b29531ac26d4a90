"""Blob store adapters: the S3 error-mapping table and `store_for` (no server needed)."""

from __future__ import annotations

import pytest

from ow.core.blobs import NatsObjectStore, S3Store, store_for
from ow.core.config import Config
from ow.core.errors import NotFoundError, OWError

botocore = pytest.importorskip("botocore.exceptions")

SECRET = "s3cr3t-value-never-shown"


def client_error(code: str) -> Exception:
    response = {"Error": {"Code": code, "Message": f"secret was {SECRET}"}}
    return botocore.ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (client_error("NoSuchKey"), NotFoundError, "blob 'o/k' not found"),
        (client_error("404"), NotFoundError, "blob 'o/k' not found"),
        (client_error("403"), OWError, "refused the credentials (403)"),
        (client_error("SignatureDoesNotMatch"), OWError, "AWS_SECRET_ACCESS_KEY"),
        (client_error("InvalidAccessKeyId"), OWError, "AWS_ACCESS_KEY_ID"),
        (client_error("SlowDown"), OWError, "download failed (SlowDown)"),
        (botocore.NoCredentialsError(), OWError, "no credentials for S3 bucket 'b'"),
        (botocore.EndpointConnectionError(endpoint_url="http://x"), OWError, "OW_S3_ENDPOINT"),
    ],
)
def test_s3_errors_map_to_ow_errors_without_secrets(exc, expected, text):
    store = S3Store("b", "http://127.0.0.1:1")
    with pytest.raises(expected) as err, store._s3_errors("download", "o/k"):
        raise exc
    assert text in str(err.value)
    assert SECRET not in str(err.value)
    assert err.value.__cause__ is None


def test_store_for_picks_s3_only_with_a_bucket():
    async def bus_getter():
        raise AssertionError("not connected by construction")

    assert isinstance(store_for(Config(), bus_getter), NatsObjectStore)
    s3 = store_for(Config(s3_bucket="bk", s3_endpoint="http://e"), bus_getter)
    assert isinstance(s3, S3Store)
    assert (s3.name, s3.bucket, s3.endpoint) == ("s3", "bk", "http://e")
