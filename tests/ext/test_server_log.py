"""The extension's module loggers reach the server's log; a domain error is one warning line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def user_root(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    root.mkdir()
    return root


@pytest.fixture
def jp_server_config(user_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.delenv("SCITEX_GITEA_URL", raising=False)
    return {
        "ServerApp": {"jpserver_extensions": {"scitex_server_ext": True}},
        "SciTeXExtension": {"user_root": str(user_root)},
    }


@pytest.fixture
def server_log(jp_serverapp: Any) -> Iterator[Recorder]:
    """What reaches a handler of the server's own logger (``ServerApp.log``)."""
    recorder = Recorder()
    jp_serverapp.log.addHandler(recorder)
    yield recorder
    jp_serverapp.log.removeHandler(recorder)


@pytest.fixture
def extension_log(jp_serverapp: Any) -> Iterator[Recorder]:
    """What reaches a handler of the extension app's logger (the handlers' ``self.log``)."""
    app = jp_serverapp.extension_manager.extension_points["scitex_server_ext"].app
    recorder = Recorder()
    app.log.addHandler(recorder)
    yield recorder
    app.log.removeHandler(recorder)


async def test_a_modules_record_reaches_the_servers_log(
    jp_fetch: Any, server_log: Recorder
) -> None:
    # ProjectManager.create logs "project <name> created" on its module's logger.
    response = await jp_fetch(
        "scitex", "api", "projects", method="POST", body=json.dumps({"name": "notes"})
    )
    assert response.code == 201
    created = [
        r
        for r in server_log.records
        if r.name == "scitex_server_ext.projects.manager"
        and r.getMessage() == "project notes created"
    ]
    assert created and created[0].levelno == logging.INFO
    # And git's debug lines follow the server's level (DEBUG under pytest-jupyter).
    assert any(r.name == "scitex_server_ext.git" for r in server_log.records)


async def test_a_domain_error_is_one_warning_line_not_an_uncaught_exception(
    jp_fetch: Any, extension_log: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("scitex", "api", "projects", "nothing", "status")
    assert e.value.code == 404
    assert e.value.response is not None
    assert json.loads(e.value.response.body) == {
        "message": "no project named 'nothing'",
        "reason": "Not Found",
    }
    lines = [r.getMessage() for r in extension_log.records if r.levelno == logging.WARNING]
    assert any("404 GET" in line and "no project named 'nothing'" in line for line in lines)
    assert not [r for r in caplog.records if "Uncaught exception" in r.getMessage()]
    assert not [r for r in extension_log.records if r.exc_info]
