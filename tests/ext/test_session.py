"""GET scitex/api/session through a real jupyter-server (pytest-jupyter)."""

from __future__ import annotations

import json
import time

import pytest
from tornado.httpclient import HTTPClientError

from scitex_server_ext.session import SessionInfo


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"scitex_server_ext": True}}}


@pytest.fixture
def session_env(monkeypatch):
    end = int(time.time()) + 1800
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("SCITEX_INSTITUTION", "demo-u")
    monkeypatch.setenv("SCITEX_JOB_ID", "4242")
    monkeypatch.setenv("SCITEX_NODE", "node07")
    monkeypatch.setenv("SCITEX_PROFILE", "small")
    monkeypatch.setenv("SCITEX_JOB_END", str(end))
    return end


async def test_session_endpoint(session_env, jp_fetch):
    response = await jp_fetch("scitex", "api", "session")
    assert response.code == 200
    body = json.loads(response.body)
    assert {k: body[k] for k in ("user", "institution", "job_id", "node", "profile")} == {
        "user": "alice",
        "institution": "demo-u",
        "job_id": "4242",
        "node": "node07",
        "profile": "small",
    }
    assert 1790 <= body["time_left_seconds"] <= 1800


async def test_session_needs_authentication(session_env, jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("scitex", "api", "session", headers={"Authorization": ""})
    assert e.value.code == 403


def test_time_left_never_negative():
    info = SessionInfo("alice", "demo-u", "1", "n", "small", job_end_epoch=100)
    assert info.time_left_seconds(now=50) == 50
    assert info.time_left_seconds(now=500) == 0
    assert SessionInfo.from_environ({}).time_left_seconds() is None
    assert SessionInfo.from_environ({"SCITEX_JOB_END": "soon"}).job_end_epoch is None
