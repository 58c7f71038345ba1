"""``scitex/api/jobs`` in the notebook server, against a fake scitex service (unit test).

The server checks the project and script on its side, forwards with its own token, and
gives back the service's status and words. The real service, SLURM and Apptainer are in
tests/e2e/test_jobs.py.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SERVER_TOKEN = "server-token-of-alice"


class FakeService:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        # (method, path) -> (status, body)
        self.answers: dict[tuple[str, str], tuple[int, Any]] = {}

    def app(self) -> web.Application:
        service = self

        class Handler(web.RequestHandler):
            def _answer(self) -> None:
                path = self.request.path.removeprefix("/services/scitex/")
                service.requests.append(
                    {
                        "method": self.request.method,
                        "path": path,
                        "auth": self.request.headers.get("Authorization"),
                        "body": json.loads(self.request.body) if self.request.body else None,
                    }
                )
                status, body = service.answers.get(
                    (str(self.request.method), path), (404, {"message": "no such job"})
                )
                self.set_status(status)
                self.finish(json.dumps(body))

            get = post = delete = _answer  # type: ignore[assignment]

        return web.Application([(r"/services/scitex/.*", Handler)])


@pytest.fixture
def service_socket() -> Iterator[socket.socket]:
    """The fake service's port, held from the start (bound, not yet listening: a call
    is refused until the ``service`` fixture listens), so nothing else can take it
    between choosing it and serving on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def port(service_socket: socket.socket) -> int:
    return int(service_socket.getsockname()[1])


@pytest.fixture
def user_root(tmp_path: Path) -> Path:
    root = tmp_path / "alice"
    (root / "projects" / "p1" / "sub").mkdir(parents=True)
    (root / "projects" / "p1" / "run.sh").write_text("echo hi\n")
    (root / "projects" / "p1" / "sub" / "fit.py").write_text("print(1)\n")
    (tmp_path / "outside.sh").write_text("echo out\n")
    os.symlink(tmp_path / "outside.sh", root / "projects" / "p1" / "out.sh")
    os.symlink("sub/fit.py", root / "projects" / "p1" / "fit.py")
    (root / "notes.sh").write_text("echo not in a project\n")
    return root


@pytest.fixture
def jp_server_config(user_root: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", SERVER_TOKEN)
    monkeypatch.delenv("SCITEX_SERVICE_URL", raising=False)
    return {
        "ServerApp": {"jpserver_extensions": {"scitex_server_ext": True}},
        "SciTeXExtension": {
            "user_root": str(user_root),
            "jobs_service_url": f"http://127.0.0.1:{port}/services/scitex/",
        },
    }


@pytest.fixture
def service(service_socket: socket.socket) -> Any:
    fake = FakeService()
    server = HTTPServer(fake.app())
    service_socket.setblocking(False)
    service_socket.listen(128)
    server.add_sockets([service_socket])
    yield fake
    server.stop()


async def call(jp_fetch: Any, method: str, *parts: str, body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"method": method}
    if method == "POST":
        kwargs["body"] = body if isinstance(body, bytes) else json.dumps(body)
    try:
        resp = await jp_fetch("scitex", "api", "jobs", *parts, **kwargs)
    except HTTPClientError as e:
        assert e.response is not None
        return e.code, json.loads(e.response.body)
    return resp.code, json.loads(resp.body)


JOB = {"id": "12", "project": "p1", "script": "run.sh", "state": "RUNNING"}


async def test_submit_is_checked_then_forwarded_with_the_servers_token(
    jp_fetch: Any, service: FakeService
) -> None:
    service.answers[("POST", "api/jobs")] = (201, {**JOB, "state": "PENDING"})
    request = {"project": "p1", "script": "./run.sh", "resources": {"cpus": 2}}
    code, body = await call(jp_fetch, "POST", body=request)
    assert (code, body["id"]) == (201, "12")
    # A symlink inside the project goes as the file it names.
    code, _ = await call(jp_fetch, "POST", body={"project": "p1", "script": "fit.py"})
    assert code == 201
    assert [(r["method"], r["path"], r["auth"], r["body"]) for r in service.requests] == [
        (
            "POST",
            "api/jobs",
            f"token {SERVER_TOKEN}",
            {"project": "p1", "script": "run.sh", "resources": {"cpus": 2}},
        ),
        (
            "POST",
            "api/jobs",
            f"token {SERVER_TOKEN}",
            {"project": "p1", "script": "sub/fit.py", "resources": {}},
        ),
    ]


@pytest.mark.parametrize(
    "body,words",
    [
        ({"project": "p1", "script": "../../notes.sh"}, "leads outside the project"),
        ({"project": "p1", "script": "sub/../../p1/../../notes.sh"}, "leads outside"),
        ({"project": "p1", "script": "out.sh"}, "leads outside project 'p1'"),
        ({"project": "p1", "script": "/etc/passwd"}, "relative to the project"),
        ({"project": "p1", "script": "a\0.sh"}, "NUL"),
        ({"project": "p1", "script": "sub"}, "No file 'sub'"),
        ({"project": "p1", "script": "gone.sh"}, "No file 'gone.sh'"),
        ({"project": "p2", "script": "run.sh"}, "no project 'p2'"),
        ({"project": "..", "script": "notes.sh"}, "is not a project name"),
        ({"project": "p1", "script": "run.sh", "extra": 1}, "Unknown keys extra"),
        ({"project": "p1", "script": "run.sh", "resources": "big"}, "resources must be"),
        ([1], "JSON object"),
        (b"{not json", "not valid JSON"),
    ],
)
async def test_bad_requests_get_400_and_never_reach_the_service(
    jp_fetch: Any, service: FakeService, body: Any, words: str
) -> None:
    code, answer = await call(jp_fetch, "POST", body=body)
    assert code == 400, answer
    assert words in answer["message"], answer
    assert service.requests == []


async def test_the_services_status_and_words_come_back(jp_fetch: Any, service: FakeService) -> None:
    limit = "alice already has 2 jobs queued or running, the most this site allows (2)"
    service.answers[("POST", "api/jobs")] = (429, {"status": 429, "message": limit})
    service.answers[("DELETE", "api/jobs/12")] = (409, {"message": "Job 12 has already ended"})
    service.answers[("GET", "api/jobs/12/log")] = (200, {"id": "12", "log": "50% done\n"})
    service.answers[("GET", "api/jobs")] = (200, {"jobs": [JOB]})
    service.answers[("GET", "api/jobs/13")] = (500, {"message": "Internal error"})

    code, body = await call(jp_fetch, "POST", body={"project": "p1", "script": "run.sh"})
    assert (code, body["message"]) == (429, limit)
    code, body = await call(jp_fetch, "DELETE", "12")
    assert (code, body["message"]) == (409, "Job 12 has already ended")
    assert await call(jp_fetch, "GET", "12", "log") == (200, {"id": "12", "log": "50% done\n"})
    assert await call(jp_fetch, "GET") == (200, {"jobs": [JOB]})
    code, body = await call(jp_fetch, "GET", "99")
    assert (code, body["message"]) == (404, "no such job")
    code, body = await call(jp_fetch, "GET", "13")
    assert code == 502 and "The scitex service failed (500)" in body["message"]
    # Not a job id: answered here.
    code, _ = await call(jp_fetch, "GET", "x;y")
    assert code == 404
    assert ("GET", "api/jobs/x;y") not in [(r["method"], r["path"]) for r in service.requests]


async def test_an_unreachable_service_is_502(jp_fetch: Any, port: int) -> None:
    # No fake service listening on the port.
    code, body = await call(jp_fetch, "GET")
    assert code == 502 and "Cannot reach the scitex service" in body["message"]


async def test_settings_are_validated() -> None:
    from traitlets import TraitError

    from scitex_server_ext.app import SciTeXExtension

    for key, value in [("jobs_service_url", "ftp://x"), ("jobs_request_timeout", 0)]:
        with pytest.raises(TraitError, match=key):
            SciTeXExtension(**{key: value})


OPTIONS = {
    "institution": "demo-u",
    "default_profile": "small",
    "profiles": [
        {
            "name": "small",
            "display_name": "Small",
            "description": "",
            "partitions": ["debug"],
            "cpus": {"default": 1, "min": 1, "max": 2},
            "memory": {"default": "512MiB", "min": "512MiB", "max": "2GiB"},
            "runtime": {"default": "01:00:00", "min": "00:01:00", "max": "04:00:00"},
            "gpus": {"default": 0, "min": 0, "max": 0},
        }
    ],
    "script_suffixes": [".sh", ".py"],
}


async def test_options_are_the_services_with_where_projects_are(
    jp_fetch: Any, service: FakeService, jp_root_dir: Path, user_root: Path
) -> None:
    from scitex_server_ext.jobs import JobsClient

    service.answers[("GET", "api/jobs/options")] = (200, OPTIONS)
    code, body = await call(jp_fetch, "GET", "options")
    assert code == 200, body
    projects_path = JobsClient("", "", str(user_root)).projects_path(str(jp_root_dir))
    assert body == {**OPTIONS, "projects_path": projects_path}
    # Forwarded with the server's own token, not taken for a job id.
    assert [(r["method"], r["path"], r["auth"]) for r in service.requests] == [
        ("GET", "api/jobs/options", f"token {SERVER_TOKEN}")
    ]


async def test_options_refused_by_the_service_keep_its_words(
    jp_fetch: Any, service: FakeService
) -> None:
    words = "alice belongs to no institution on this hub: no jobs"
    service.answers[("GET", "api/jobs/options")] = (403, {"message": words})
    assert await call(jp_fetch, "GET", "options") == (
        403,
        {"message": words, "reason": "Forbidden"},
    )


def test_projects_path_is_relative_to_the_servers_root(tmp_path: Path) -> None:
    from scitex_server_ext.jobs import JobsClient

    root = tmp_path / "data"
    (root / "projects").mkdir(parents=True)
    client = JobsClient("", "", str(root))
    # The usual case: the server runs in the user's data directory.
    assert client.projects_path(str(root)) == "projects"
    assert client.projects_path(str(root / "projects")) == ""
    # A server rooted elsewhere cannot show the projects in its file browser.
    assert client.projects_path(str(root / "projects" / "p1")) is None
    assert client.projects_path(str(tmp_path / "other")) is None
    assert JobsClient("", "", str(root), projects_dir="work/projects").projects_path(
        str(tmp_path)
    ) == ("data/work/projects")
