import pytest

from ow.scheduler.providers import NoCapacityError, ProviderError, QuotaError
from ow.scheduler.providers.fake_runpod import NO_CAPACITY, QUOTA, QueryError
from ow.scheduler.providers.runpod import map_error


class AuthenticationError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (QueryError(NO_CAPACITY), NoCapacityError),
        (QueryError(QUOTA), QuotaError),
        (AuthenticationError("Unauthorized request, please check your API key."), QuotaError),
        (ValueError("GPU type 'x' not found"), ProviderError),
        (ConnectionError("reset"), ProviderError),
    ],
)
def test_runpod_errors_are_mapped(exc, kind):
    err = map_error("runpod", exc, secret="sk-123")
    assert type(err) is kind
    assert str(exc) in err.message


def test_the_api_key_never_appears_in_a_mapped_error():
    err = map_error("runpod", QueryError("bad key sk-123 for user"), secret="sk-123")
    assert "sk-123" not in str(err)
