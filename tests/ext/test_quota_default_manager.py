"""Saves are quota-checked by default: the extension installs QuotaContentsManager itself
(jupyter-server ignores contents_manager_class in jupyter_server_config.d files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scitex_server_ext.contents_guard import QuotaContentsManager


@pytest.fixture
def site_manager() -> str | None:
    return None


@pytest.fixture
def jp_server_config(jp_root_dir: Path, site_manager: str | None) -> Any:
    server: dict[str, Any] = {"jpserver_extensions": {"scitex_server_ext": True}}
    if site_manager is not None:
        server["contents_manager_class"] = site_manager
    return {"ServerApp": server, "SciTeXExtension": {"user_root": str(jp_root_dir)}}


async def test_the_extension_makes_saves_quota_checked(jp_serverapp: Any) -> None:
    manager = jp_serverapp.contents_manager
    assert isinstance(manager, QuotaContentsManager)
    assert manager.quota_tracker is jp_serverapp.web_app.settings["scitex"]["quota"]


@pytest.mark.parametrize(
    "site_manager", ["jupyter_server.services.contents.filemanager.AsyncFileContentsManager"]
)
async def test_a_sites_own_contents_manager_is_kept(jp_serverapp: Any) -> None:
    assert type(jp_serverapp.contents_manager).__name__ == "AsyncFileContentsManager"
