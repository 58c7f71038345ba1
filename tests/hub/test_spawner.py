"""SciTeXSpawner without a hub: options, job spec, port callback body, state."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from jupyterhub_config.apply import apply_spawner
from jupyterhub_config.settings import parse_settings
from scitex_hub.container import RuntimeChoice
from scitex_hub.script import BatchJobSpec
from scitex_spawner import SciTeXSpawner
from scitex_spawner.callback import (
    BATCHSPAWNER_PATH,
    PORT_CALLBACK_PATH,
    GuardedBatchSpawnerHandler,
    PortCallbackHandler,
    batchspawner_route_open,
    parse_port_body,
)
from tests.hub.test_config import settings_with

PROFILES = {
    "small": {
        "display_name": "Small",
        "partition": "debug",
        "cpus": {"default": 1, "max": 2},
        "memory": {"default": "512MiB", "max": "2GiB"},
        "runtime": {"default": "01:00:00", "max": "04:00:00"},
    },
    "other": {
        "display_name": "O",
        "partition": "debug",
        "cpus": 1,
        "memory": "1GiB",
        "runtime": 60,
    },
}
INSTITUTIONS = {
    "demo-u": {"name": "Demo", "users": ["alice"], "profiles": ["small"], "slurm_account": "demo"},
    "other-u": {"name": "Other", "users": ["carol"], "profiles": ["other"]},
}


def make_spawner(name: str = "alice", groups: tuple[str, ...] = ("demo-u",)) -> SciTeXSpawner:
    user = SimpleNamespace(
        name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
        url=f"/user/{name}/",
    )
    return SciTeXSpawner(
        user=user,
        profiles=PROFILES,
        institutions=INSTITUTIONS,
        data_root="/srv/data",
        notebook_python="/opt/scitex/venv/bin/python",
        hub_id="t",
    )


def test_job_spec_from_validated_options() -> None:
    spawner = make_spawner()
    resources = spawner.resolve_resources({"profile": "small", "cpus": 2, "memory": "1GiB"})
    assert spawner.build_job_spec("demo-u", resources) == BatchJobSpec(
        job_name="scitex-nb-alice",
        comment="scitex:hub=t:user=alice:server=-",
        partition="debug",
        cpus=2,
        memory_mib=1024,
        time_limit_seconds=3600,
        output_path="/srv/data/demo-u/alice/.scitex/logs/notebook-%j.log",
        workdir="/srv/data/demo-u/alice",
        command=("/opt/scitex/venv/bin/python", "-m", "scitex_server_ext.singleuser"),
        gpus=0,
        account="demo",
        exports=(
            ("SCITEX_PROFILE", "small"),
            ("SCITEX_INSTITUTION", "demo-u"),
            ("SCITEX_USER_ROOT", "/srv/data/demo-u/alice"),
            ("SCITEX_QUOTA_LIMIT_BYTES", str(100 * 1024**3)),
        ),
    )


@pytest.mark.parametrize(
    "options,message",
    [
        ({"profile": "other"}, "profile: profile 'other' is not available to your institution"),
        (
            {"cmd": "/bin/sh"},
            "cmd: unknown option (allowed: cpus, gpus, memory, partition, profile, runtime)",
        ),
        ({"cpus": 99}, "cpus: 99 is outside the allowed range 1 to 2"),
        ({"partition": "debug\n#SBATCH --uid=0"}, "partition: newlines are not allowed"),
    ],
)
def test_bad_options_are_http_400(options: dict, message: str) -> None:
    with pytest.raises(web.HTTPError) as e:
        make_spawner().resolve_resources(options)
    assert e.value.status_code == 400
    assert e.value.reason == message


def test_user_without_institution_gets_403() -> None:
    with pytest.raises(web.HTTPError) as e:
        make_spawner("dave", groups=()).resolve_resources({})
    assert e.value.status_code == 403
    assert "belongs to no institution" in (e.value.reason or "")


def test_form_and_rest_meet_the_same_validation() -> None:
    spawner = make_spawner()
    form = spawner.options_from_form({"profile": ["small"], "cpus": ["2"], "memory": ["1GiB"]})
    assert form == {"profile": "small", "cpus": 2, "memory": "1GiB"}
    assert spawner.resolve_resources(form) == spawner.resolve_resources(
        {"profile": "small", "cpus": 2, "memory": "1GiB"}
    )
    with pytest.raises(web.HTTPError):
        spawner.resolve_resources(spawner.options_from_form({"cpus": ["2; id"]}))
    # A scripted form post that carries the XSRF token in the body is not refused for it.
    assert spawner.options_from_form({"profile": ["small"], "_xsrf": ["2|abc"]}) == {
        "profile": "small"
    }


def test_submit_prefix_formats_only_a_safe_username() -> None:
    spawner = make_spawner()
    spawner.submit_prefix = ["runuser", "-u", "{username}", "--"]
    assert spawner.format_prefix() == ["runuser", "-u", "alice", "--"]
    evil = make_spawner("alice;id")
    evil.submit_prefix = ["runuser", "-u", "{username}", "--"]
    with pytest.raises(web.HTTPError):
        evil.format_prefix()


def test_one_run_as_user_prefix_from_the_site_file() -> None:
    """slurm.submit_prefix is the SLURM client's run_as_prefix: the one the spawner's
    sbatch and scancel use (and the queue watcher's scancel of orphans)."""
    data = settings_with()
    data["slurm"] = {**data["slurm"], "submit_prefix": ["sudo", "-n", "-u", "{username}", "--"]}
    c = Config()
    apply_spawner(c, parse_settings(data))
    assert c.SlurmClient.run_as_prefix == ["sudo", "-n", "-u", "{username}", "--"]
    assert "submit_prefix" not in c.SciTeXSpawner
    spawner = make_spawner()
    spawner.config = c
    assert spawner.format_prefix() == ["sudo", "-n", "-u", "alice", "--"]


def test_the_deprecated_spawner_prefix_passes_on_to_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = Config()
    c.SciTeXSpawner.submit_prefix = ["sudo", "-n", "-u", "{username}", "--"]
    spawner = SciTeXSpawner(config=c, user=make_spawner().user, hub_id="t")
    assert spawner.slurm.run_as_prefix == ["sudo", "-n", "-u", "{username}", "--"]
    assert "SciTeXSpawner.submit_prefix is deprecated" in caplog.text
    # An empty prefix (the hub runs SLURM commands as itself) passes on too.
    spawner.submit_prefix = []
    assert spawner.slurm.run_as_prefix == []


def test_bad_site_settings_name_the_trait() -> None:
    with pytest.raises(Exception, match=r"SciTeXSpawner\.data_root"):
        make_spawner().data_root = "relative"
    with pytest.raises(Exception, match=r"SciTeXSpawner\.profiles"):
        make_spawner().profiles = {"x": {"display_name": "X"}}


def test_state_round_trip() -> None:
    spawner = make_spawner()
    spawner.job_id, spawner.job_node, spawner.exit_reason = "42", "localhost", ""
    state = spawner.get_state()
    assert state["job_id"] == "42" and state["job_node"] == "localhost"
    other = make_spawner()
    other.load_state(state)
    assert (other.job_id, other.job_node) == ("42", "localhost")
    other.clear_state()
    assert other.job_id == "" and other.get_state().get("job_id") is None


def test_receive_port_only_while_a_start_waits() -> None:
    spawner = make_spawner()
    with pytest.raises(RuntimeError, match="no start"):
        spawner.receive_port(8888)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[8888]",
        b'{"port": "8888"}',
        b'{"port": 8888.0}',
        b'{"port": true}',
        b'{"port": 0}',
        b'{"port": 70000}',
        b'{"port": 8888, "ip": "203.0.113.7"}',
        b'{"exec_prefix": "touch /tmp/x"}',
    ],
)
def test_port_body_is_exactly_one_integer(body: bytes) -> None:
    with pytest.raises(web.HTTPError) as e:
        parse_port_body(body)
    assert e.value.status_code == 400


def test_port_body_ok() -> None:
    assert parse_port_body(json.dumps({"port": 8888}).encode()) == 8888


def test_batchspawner_route_is_guarded() -> None:
    from batchspawner.api import BatchSpawnerAPIHandler
    from jupyterhub.apihandlers import default_handlers

    c = Config()
    apply_spawner(c, parse_settings(settings_with()))
    apply_spawner(c, parse_settings(settings_with()))
    routes = dict(c.JupyterHub.extra_handlers)
    assert routes[r"/api/batchspawner"] is GuardedBatchSpawnerHandler
    assert not [h for h in default_handlers if h[1] is BatchSpawnerAPIHandler]
    assert [h[0] for h in c.JupyterHub.extra_handlers].count(PORT_CALLBACK_PATH) == 1


def test_apply_spawner_registers_the_callback_beside_the_sites_handlers() -> None:
    c = Config()
    c.JupyterHub.extra_handlers = [(r"/api/site", web.RequestHandler)]
    apply_spawner(c, parse_settings(settings_with()))
    assert c.JupyterHub.extra_handlers == [
        (r"/api/site", web.RequestHandler),
        (PORT_CALLBACK_PATH, PortCallbackHandler),
        (BATCHSPAWNER_PATH, GuardedBatchSpawnerHandler),
    ]
    assert not batchspawner_route_open()


def test_the_hub_routes_both_paths_to_us() -> None:
    """In JupyterHub's own route table (tornado takes the first match), under /hub/."""
    import re

    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import Authenticator

    c = Config()
    apply_spawner(c, parse_settings(settings_with()))
    app = JupyterHub(config=c)
    app.authenticator = Authenticator(parent=app)
    app.init_handlers()

    def first(path: str) -> object:
        return next(h[1] for h in app.handlers if re.match(h[0] + "$", path))

    assert first("/hub/api/scitex/port") is PortCallbackHandler
    assert first("/hub/api/batchspawner") is GuardedBatchSpawnerHandler


# In a fresh interpreter: batchspawner's own import adds its route; ours add or remove none.
IMPORT_CHECK = """
import sys
import batchspawner
from jupyterhub.apihandlers import default_handlers
before = list(default_handlers)
import {module}
getattr(sys.modules["scitex_spawner"], "SciTeXSpawner")
assert default_handlers == before, [h for h in default_handlers if h not in before]
"""


@pytest.mark.parametrize(
    "module", ["scitex_spawner", "scitex_spawner.callback", "scitex_spawner.spawner"]
)
def test_importing_our_modules_leaves_the_hubs_routes_alone(module: str) -> None:
    subprocess.run([sys.executable, "-c", IMPORT_CHECK.format(module=module)], check=True)


def test_importing_the_package_imports_nothing_heavy() -> None:
    check = (
        "import sys, scitex_spawner\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('jupyterhub', 'batchspawner', 'tornado', 'traitlets', 'scitex_hub')"
        " or m.startswith('scitex_spawner.')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


async def test_no_server_starts_while_batchspawners_route_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hub configured without apply_spawner fails closed, before anything is made."""
    from scitex_spawner import spawner as spawner_module

    monkeypatch.setattr(spawner_module, "batchspawner_route_open", lambda: True)
    spawner = make_spawner()
    made: list[str] = []

    async def ensure_data_dir(institution_id: str) -> str:
        made.append(institution_id)
        return institution_id

    spawner.ensure_data_dir = ensure_data_dir  # type: ignore[method-assign]
    with pytest.raises(web.HTTPError, match="configuration is incomplete"):
        await spawner.start()
    assert made == []


def test_job_spec_in_apptainer() -> None:
    spawner = make_spawner()
    spawner.container_image = "/img/nb.sif"
    spawner.container_binds = ["/usr:/usr:ro"]
    resources = spawner.resolve_resources({})
    env_names = ["JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "PATH", "SECRET_OF_THE_SITE", "LANG"]
    runtime = RuntimeChoice("apptainer", "/opt/scitex/bin/apptainer")
    spec = spawner.build_job_spec("demo-u", resources, runtime, env_names=env_names)
    assert spec.command == (
        "/opt/scitex/bin/apptainer",
        "exec",
        "--cleanenv",
        "--contain",
        "--home",
        "/srv/data/demo-u/alice:/data",
        "--pwd",
        "/data",
        "--bind",
        "/usr:/usr:ro",
        "/img/nb.sif",
        "/opt/scitex/venv/bin/python",
        "-m",
        "scitex_server_ext.singleuser",
    )
    assert spec.forward_env_prefix == "APPTAINERENV_"
    assert spec.forward_env == ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "LANG")
    assert ("SCITEX_USER_ROOT", "/data") in spec.exports


def test_bad_container_binds_name_the_trait() -> None:
    with pytest.raises(Exception, match=r"SciTeXSpawner\.container_binds"):
        make_spawner().container_binds = ["/home/bob:/data"]


def test_jobs_are_never_requeued() -> None:
    """A node failure must end the server's job (NODE_FAIL), not requeue it to
    start later on a node and port the hub does not know."""
    spawner = make_spawner()
    spawner.get_env = lambda: {"JUPYTERHUB_API_TOKEN": "t"}  # type: ignore[method-assign]
    assert spawner.job_environment()["SBATCH_NO_REQUEUE"] == "1"


def test_previous_choice_is_the_last_options_when_still_allowed() -> None:
    spawner = make_spawner()
    spawner.user_options = {"profile": "small", "cpus": 2, "runtime": "03:00:00"}
    institution = spawner.institutions["demo-u"]
    previous = spawner.previous_choice(institution)
    assert previous is not None
    assert (previous.profile, previous.cpus, previous.runtime_seconds) == ("small", 2, 3 * 3600)
    assert 'value="2"' in spawner.render_options_form()


def test_previous_choice_outside_todays_ranges_is_dropped() -> None:
    spawner = make_spawner()
    # The admin has since lowered the maximum to 2 CPUs: the old choice is not offered.
    spawner.user_options = {"profile": "small", "cpus": 4}
    assert spawner.previous_choice(spawner.institutions["demo-u"]) is None
    spawner.user_options = {}
    assert spawner.previous_choice(spawner.institutions["demo-u"]) is None
