"""Pytest fixtures around the fake Gitea (load with ``pytest_plugins = ["tests.fakes.fixtures"]``).

``gitea_world`` is a fake Gitea seeded like a site after the hub's provisioning: an admin, the
user ``alice`` (member of her lab's organization ``demo-u``), ``bob`` in another institution's
organization ``other-u``, and a token of alice's with the scopes a notebook server gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .gitea import FakeGiteaServer
from .world import GiteaWorld, seed_world


@pytest.fixture
def gitea_world(tmp_path: Path) -> Iterator[GiteaWorld]:
    with FakeGiteaServer(tmp_path / "gitea") as server:
        world = seed_world(server)
        yield world
        # Every answer the fake gave (and every request it got) followed Gitea's API.
        assert server.fake.violations == []
