import pytest

from pinrig.guest.session import prepare_env


@pytest.fixture(scope="session")
def env61():
    return prepare_env("debian-6.1")
