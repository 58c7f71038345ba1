"""``GET /services/scitex/api/jobs/options``: the resources a user may ask for a compute job,
as the site file's profiles of the caller's institution (unit test: a real tornado server,
SLURM never asked). The browser's use of it: tests/e2e/test_browser_jobs.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from scitex_hub.profiles import load_profiles
from scitex_service.app import make_app
from scitex_service.handlers import ServiceContext
from scitex_service.jobs import ComputeJobs
from scitex_service.jobs.options import job_options
from tests.e2e.hubprocess import free_port
from tests.hub.test_jobs_api import FakeSlurm, JobsHubAuth, engine  # noqa: F401 (fixture)
from tests.hub.test_service_api import ACCESS, INSTITUTIONS, TableDirectory, call

PROFILES = load_profiles(
    {
        "small": {
            "display_name": "Small: 1 CPU",
            "partition": "debug",
            "cpus": {"default": 1, "max": 2},
            "memory": {"default": "512MiB", "max": "2GiB"},
            "runtime": {"default": "01:00:00", "max": "04:00:00"},
        },
        "gpu": {
            "display_name": "GPU",
            "description": "One A100",
            "partitions": ["gpu", "gpu-long"],
            "cpus": 8,
            "memory": "32GiB",
            "runtime": {"default": "02:00:00", "min": "00:10:00", "max": "1-00:00:00"},
            "gpus": {"default": 1, "min": 1, "max": 2},
        },
        "other-small": {
            "display_name": "Other",
            "partition": "debug",
            "cpus": 1,
            "memory": "512MiB",
            "runtime": "02:00:00",
        },
    }
)


@pytest.fixture
async def base_url(engine: Engine, tmp_path: Path) -> AsyncIterator[str]:  # noqa: F811
    from tornado.httpserver import HTTPServer

    institutions = dict(INSTITUTIONS)
    # demo-u offers gpu first (its default), then small; a name the site lacks is skipped.
    institutions["demo-u"] = institutions["demo-u"].model_copy(
        update={"profiles": ("gpu", "gone", "small")}
    )
    institutions["other-u"] = institutions["other-u"].model_copy(
        update={"profiles": ("other-small",)}
    )
    slurm = FakeSlurm(run_as_prefix=[])
    jobs = ComputeJobs(
        hub_id="t",
        data_root=str(tmp_path / "data"),
        profiles=PROFILES,
        slurm=slurm,
    )
    hub_auth = JobsHubAuth(
        api_token="service-token",
        api_url="http://127.0.0.1:9/hub/api",
        oauth_client_id="service-scitex",
        access_scopes={ACCESS},
    )
    context = ServiceContext(institutions=institutions, engine=engine, directory=TableDirectory())
    port = free_port()
    server = HTTPServer(make_app(context, hub_auth, jobs=jobs))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/services/scitex/"
    server.stop()
    # The options come from the site file: SLURM is never asked.
    assert slurm.calls == []


async def test_alice_gets_her_institutions_profiles_in_order(base_url: str) -> None:
    status, body = await call(base_url, "GET", "api/jobs/options", "j-alice")
    assert status == 200, body
    assert body == {
        "institution": "demo-u",
        "default_profile": "gpu",
        "profiles": [
            {
                "name": "gpu",
                "display_name": "GPU",
                "description": "One A100",
                "partitions": ["gpu", "gpu-long"],
                "cpus": {"default": 8, "min": 8, "max": 8},
                "memory": {"default": "32GiB", "min": "32GiB", "max": "32GiB"},
                "runtime": {"default": "02:00:00", "min": "00:10:00", "max": "1-00:00:00"},
                "gpus": {"default": 1, "min": 1, "max": 2},
            },
            {
                "name": "small",
                "display_name": "Small: 1 CPU",
                "description": "",
                "partitions": ["debug"],
                "cpus": {"default": 1, "min": 1, "max": 2},
                # Without a min: the profiles' implicit lower bounds (resolve_user_options').
                "memory": {"default": "512MiB", "min": "512MiB", "max": "2GiB"},
                "runtime": {"default": "01:00:00", "min": "00:01:00", "max": "04:00:00"},
                "gpus": {"default": 0, "min": 0, "max": 0},
            },
        ],
        "script_suffixes": [".sh", ".py"],
    }


@pytest.mark.parametrize(
    "token,status,words",
    [
        ("j-dave", 403, "no institution"),
        ("j-nojobs", 403, "lacks the scope custom:scitex:jobs"),
        ("j-service", 403, "not a user"),
        (None, 403, "Authentication required"),
    ],
)
async def test_who_may_not_ask(base_url: str, token: str | None, status: int, words: str) -> None:
    got, body = await call(base_url, "GET", "api/jobs/options", token)
    assert (got, words in body["message"]) == (status, True), body


async def test_options_is_not_taken_for_a_job_id(base_url: str) -> None:
    # api/jobs/{id} would answer 404 "alice has no job options".
    status, body = await call(base_url, "GET", "api/jobs/options", "j-alice")
    assert status == 200 and "profiles" in body


def test_what_the_dialog_offers_is_what_a_submission_may_ask() -> None:
    """Every value the answer offers (defaults and bounds) resolves against the profile."""
    from scitex_hub.profiles import resolve_user_options

    answer = job_options(PROFILES, ("gpu", "small"), ((".sh", ("bash",)),))
    assert answer["script_suffixes"] == [".sh"]
    for profile in answer["profiles"]:
        for partition in profile["partitions"]:
            for bound in ("default", "min", "max"):
                request: dict[str, Any] = {"profile": profile["name"], "partition": partition}
                request |= {k: profile[k][bound] for k in ("cpus", "memory", "runtime", "gpus")}
                resolved = resolve_user_options(request, PROFILES, ("gpu", "small"))
                assert resolved.as_dict()["memory"] == profile["memory"][bound]
                assert resolved.as_dict()["runtime"] == profile["runtime"][bound]
    assert job_options(PROFILES, (), ())["default_profile"] is None
