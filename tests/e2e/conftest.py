from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.hubprocess import Hub, HubUser, new_hub
from tests.services import (
    PREFIX,
    VENV_PYTHON,
    demo_password,
    require_executable,
    require_root,
    require_slurm,
)


@pytest.fixture(scope="session")
def services() -> str:
    """Every real service the end-to-end tests use; returns the users' password."""
    require_root()
    require_slurm()
    require_executable(VENV_PYTHON, "the project venv")
    require_executable(f"{PREFIX}/bin/configurable-http-proxy", "configurable-http-proxy")
    return demo_password()


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    hub = new_hub()
    hub.start()
    yield hub
    hub.close()


@pytest.fixture
def password(services: str) -> str:
    return services


def signed_in(hub: Hub, name: str, password: str) -> HubUser:
    user = HubUser(hub, name)
    r = user.login(password)
    assert r.status_code == 302, f"{name} could not sign in: {r.status_code} {r.text[:300]}"
    user.create_token()
    return user


@pytest.fixture
def alice(hub: Hub, password: str) -> HubUser:
    return signed_in(hub, "alice", password)


@pytest.fixture
def bob(hub: Hub, password: str) -> HubUser:
    return signed_in(hub, "bob", password)
