"""The service's configuration: the site file -> ``apply_services``' JSON -> the service's
traitlets, exactly the values the site file holds; a bad value stops the service with the
key it names. The service reads no site file (``scitex_service`` imports nothing of
``jupyterhub_config``)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from traitlets import TraitError
from traitlets.config import Config

from jupyterhub_config.service_config import profile_config
from jupyterhub_config.settings import DEFAULT_CONFIG, Settings, load_settings, parse_settings
from scitex_hub.container import Bind, resolve_container_runtime
from scitex_hub.jobspecs.compute import JobSite
from scitex_hub.profiles import load_profiles
from scitex_hub.slurm import SlurmClient
from scitex_service.app import CONFIG_ENV, SciTeXService
from scitex_service.jobs import ComputeJobs
from scitex_service.scanner import UsageScanner
from tests.hub.dbhelpers import sqlite_url
from tests.hub.servicehelpers import service_environment, shipped_service_config
from tests.hub.test_config import DEMO

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo() -> Settings:
    """The shipped demo site file."""
    return load_settings(DEFAULT_CONFIG)


def started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings, argv: tuple[str, ...] = ()
) -> SciTeXService:
    """The service as ``python -m scitex_service`` sets itself up under the hub."""
    for name, value in service_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCITEX_DB_URL", sqlite_url(tmp_path))
    app = SciTeXService()
    app.initialize(list(argv))
    app.init_parts()
    return app


def expected_site(settings: Settings) -> JobSite:
    """The compute jobs' site as the site file says it (what job_site_from built)."""
    jobs, container = settings.jobs, settings.container
    runtime = resolve_container_runtime(
        str(container.runtime), container.executable, jobs.image or container.image
    )
    binds = jobs.extra_binds if jobs.extra_binds is not None else container.extra_binds
    return JobSite(
        hub_id=settings.slurm.hub_id,
        data_root=settings.data_root.rstrip("/") or "/",
        runtime=runtime.runtime,
        executable=runtime.executable,
        image=jobs.image or container.image or "",
        binds=tuple(Bind.parse(b) for b in binds),
        unsquash=container.unsquash,
        interpreters=((".sh", (jobs.bash,)), (".py", (jobs.python,))),
    )


def test_the_demo_site_file_reaches_the_service_unchanged(
    demo: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = started(monkeypatch, tmp_path, demo)
    assert app.institutions == demo.institutions
    assert app.data_root == demo.data_root
    assert app.service_url == demo.service_listen_url()
    jobs = app.jobs
    assert jobs.profiles == demo.profiles
    assert jobs.site == expected_site(demo)
    assert (jobs.max_queued_per_user, jobs.history_limit) == (
        demo.jobs.max_queued_per_user,
        demo.jobs.history_limit,
    )
    assert (jobs.denied_users, jobs.min_uid) == (demo.denied_users(), demo.auth.min_uid)
    # One SLURM client: the pages' and the jobs'.
    assert jobs.slurm is app.slurm
    assert app.slurm.slurm_conf == demo.slurm.conf
    assert app.slurm.run_as_prefix == SlurmClient().run_as_prefix  # no slurm.submit_prefix
    assert app.scanner is not None
    assert (app.scanner.interval, app.scanner.retention_days) == (
        demo.service.usage_scan_interval,
        demo.service.usage_retention_days,
    )
    assert app.scanner.data_root == demo.data_root
    assert app.scanner.institution_ids() == sorted(demo.institutions)


def test_every_setting_the_service_takes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each site-file key the service used to read, set away from its default."""
    data: dict[str, Any] = json.loads(json.dumps(DEMO))
    data["slurm"] = {
        "conf": "/etc/slurm-x/slurm.conf",
        "bin_dir": "/opt/slurm/bin",
        "hub_id": "uni-a",
        "submit_prefix": ["sudo", "-n", "-u", "{username}", "--"],
    }
    data["container"] = {
        "runtime": "apptainer",
        "executable": "/opt/apptainer/bin/apptainer",
        "image": "/img/notebook.sif",
        "extra_binds": ["/usr:/usr:ro"],
        "unsquash": True,
    }
    data["jobs"] = {
        "image": "/img/compute.sif",
        "extra_binds": ["/scratch:/scratch:rw"],
        "max_queued_per_user": 3,
        "history_limit": 7,
        "python": "/opt/py/bin/python3",
        "bash": "/bin/bash",
    }
    data["auth"] = {"kind": "pam", "min_uid": 900, "denied_users": ["guest"]}
    data["service"] = {
        "url": "http://10.0.0.5:9000",
        "usage_scan_interval": 30,
        "usage_retention_days": 7,
    }
    # A wall time that is no whole number of minutes, sizes that are no whole GiB.
    data["profiles"]["small"]["runtime"] = {"default": "00:30:15", "max": "1-02:00:00"}
    data["profiles"]["small"]["memory"] = {"default": "1536MiB", "max": "3000000000"}
    settings = parse_settings(data)
    app = started(monkeypatch, tmp_path, settings)
    assert app.institutions == settings.institutions
    assert app.jobs.profiles == settings.profiles
    assert app.jobs.site == expected_site(settings)
    assert app.jobs.site.interpreters == (
        (".sh", ("/bin/bash",)),
        (".py", ("/opt/py/bin/python3",)),
    )
    assert (app.jobs.max_queued_per_user, app.jobs.history_limit) == (3, 7)
    assert (app.jobs.denied_users, app.jobs.min_uid) == (settings.denied_users(), 900)
    assert (app.slurm.slurm_conf, app.slurm.bin_dir) == (
        "/etc/slurm-x/slurm.conf",
        "/opt/slurm/bin",
    )
    # The site's submit prefix is the SLURM layer's run-as prefix.
    assert app.jobs.prefix("alice") == ["sudo", "-n", "-u", "alice", "--"]
    assert app.service_url == "http://10.0.0.5:9000"
    assert app.scanner is not None
    assert (app.scanner.interval, app.scanner.retention_days) == (30, 7)


def test_profiles_travel_as_json_and_come_back_equal(demo: Settings) -> None:
    text = json.dumps({name: profile_config(p) for name, p in demo.profiles.items()})
    assert load_profiles(json.loads(text)) == demo.profiles


def test_a_config_file_for_a_service_run_by_hand(
    demo: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--config=FILE`` (JSON or Python) instead of the hub's environment; the command
    line still wins."""
    config = shipped_service_config(demo)
    as_json = tmp_path / "service.json"
    as_json.write_text(json.dumps(config))
    as_python = tmp_path / "service_config.py"
    # As a site writes one: c.Section.key = value.
    as_python.write_text(
        "".join(
            f"c.{section}.{key} = {value!r}\n"
            for section, values in json.loads(json.dumps(config)).items()
            for key, value in values.items()
        )
    )
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("SCITEX_DB_URL", sqlite_url(tmp_path))
    for path in (as_json, as_python):
        app = SciTeXService()
        app.initialize([f"--config={path}", "--ComputeJobs.history_limit=3"])
        app.init_parts()
        assert app.institutions == demo.institutions
        assert app.jobs.profiles == demo.profiles
        assert app.jobs.history_limit == 3


def test_the_command_line_wins_over_the_hubs_config(
    demo: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = started(monkeypatch, tmp_path, demo, ("--UsageScanner.interval=5",))
    assert app.scanner is not None and app.scanner.interval == 5


@pytest.mark.parametrize(
    "section,key,value,words",
    [
        ("ComputeJobs", "profiles", {"small": {"cpus": 1}}, "ComputeJobs.profiles.small."),
        (
            "ComputeJobs",
            "profiles",
            {
                "small": {
                    **profile_config(load_settings(DEFAULT_CONFIG).profiles["small"]),
                    "gpus": -1,
                }
            },
            "ComputeJobs.profiles.small.gpus",
        ),
        ("ComputeJobs", "profiles", {"Big": {}}, "ComputeJobs.profiles: profile name 'Big'"),
        ("ComputeJobs", "hub_id", "a b", "ComputeJobs.hub_id"),
        ("ComputeJobs", "data_root", "data", "ComputeJobs.data_root must be an absolute path"),
        ("ComputeJobs", "image", "img.sif", "ComputeJobs.image must be an absolute path"),
        ("ComputeJobs", "binds", ["/a:/data"], "ComputeJobs.binds: bind target '/data'"),
        ("ComputeJobs", "interpreters", {".py": ["python3 -c"]}, "ComputeJobs.interpreters..py"),
        ("ComputeJobs", "interpreters", {"py": ["python3"]}, "ComputeJobs.interpreters: 'py'"),
        ("ComputeJobs", "interpreters", {}, "ComputeJobs.interpreters: no script could run"),
        ("ComputeJobs", "history_limit", 0, "ComputeJobs.history_limit must be at least 1"),
        ("ComputeJobs", "max_queued_per_user", 0, "ComputeJobs.max_queued_per_user must be"),
        ("ComputeJobs", "runtime", "docker", "'runtime' trait of a ComputeJobs"),
        ("SciTeXService", "institutions", {"Uni A": {"name": "A"}}, "institution id 'Uni A'"),
        (
            "SciTeXService",
            "institutions",
            {"uni-a": {"name": "A", "storage_quota": "lots"}},
            "SciTeXService.institutions.uni-a.storage_quota: 'lots' is not a size",
        ),
        ("SciTeXService", "data_root", "data", "SciTeXService.data_root must be an absolute"),
        ("SlurmClient", "run_as_prefix", ["sudo"], "SlurmClient.run_as_prefix must name the user"),
        ("SlurmClient", "slurm_conf", "slurm.conf", "SlurmClient.slurm_conf must be an absolute"),
        ("UsageScanner", "interval", 0, "UsageScanner.interval must be > 0 seconds"),
        ("UsageScanner", "retention_days", 0, "UsageScanner.retention_days must be >= 1"),
    ],
)
def test_a_bad_value_names_its_key(
    demo: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    section: str,
    key: str,
    value: Any,
    words: str,
) -> None:
    config = json.loads(service_environment(demo)[CONFIG_ENV])
    config[section][key] = value
    monkeypatch.setenv(CONFIG_ENV, json.dumps(config))
    monkeypatch.setenv("SCITEX_DB_URL", sqlite_url(tmp_path))
    app = SciTeXService()
    with pytest.raises((TraitError, ValueError)) as e:
        app.initialize([])
        app.init_parts()
    assert words in str(e.value)


def test_a_config_that_is_no_json_object_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for text, words in (("{", "is not JSON"), ("[1]", "must hold a JSON object")):
        monkeypatch.setenv(CONFIG_ENV, text)
        with pytest.raises(Exception, match=words):
            SciTeXService().initialize([])


def test_without_a_database_url_the_service_says_so(
    demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV, service_environment(demo)[CONFIG_ENV])
    monkeypatch.delenv("SCITEX_DB_URL", raising=False)
    app = SciTeXService()
    app.initialize([])
    with pytest.raises(ValueError, match=r"SciTeXService\.db_url is not set"):
        app.init_parts()


def test_the_scanner_reads_its_section(demo: Settings) -> None:
    scanner = UsageScanner(
        create_engine("sqlite://"), demo.data_root, [], config=shipped_service_config(demo)
    )
    assert scanner.interval == demo.service.usage_scan_interval


def test_a_compute_jobs_section_alone_configures_compute_jobs(demo: Settings) -> None:
    config = Config({"ComputeJobs": shipped_service_config(demo)["ComputeJobs"]})
    assert ComputeJobs(config=config).profiles == demo.profiles


def test_the_service_imports_nothing_of_the_site_file_reader() -> None:
    """Only jupyterhub_config reads the site file: the service, and what it imports of
    ours, never import it."""
    offenders = []
    for package in ("scitex_service", "scitex_hub"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                if any(
                    n == "jupyterhub_config" or n.startswith("jupyterhub_config.") for n in names
                ):
                    offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
