"""wrapspawner ProfilesSpawner.profiles -> scitex.yaml profiles:, on wrapspawner's
own format (the examples of the wrapspawner and batchspawner READMEs, verbatim)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from batchspawner import SlurmSpawner
from traitlets.config import Config
from wrapspawner import ProfilesSpawner

from jupyterhub_config.settings import parse_settings
from scitex_spawner.wrapspawner_import import (
    ConversionError,
    convert_config_file,
    convert_profiles,
    main,
)
from tests.hub.test_config import DEMO

REPO = Path(__file__).resolve().parents[2]

# batchspawner's README, "Using ProfilesSpawner" (the file as a site has it).
BATCHSPAWNER_README_CONFIG = """
c.JupyterHub.spawner_class = 'wrapspawner.ProfilesSpawner'
c.Spawner.http_timeout = 120
c.BatchSpawnerBase.req_host = 'mesabi.xyz.edu'
c.BatchSpawnerBase.req_runtime = '12:00:00'
c.TorqueSpawner.state_exechost_exp = r'in-\\1.mesabi.xyz.edu'
c.ProfilesSpawner.profiles = [
   ( "Local server", 'local', 'jupyterhub.spawner.LocalProcessSpawner', {'ip':'0.0.0.0'} ),
   ('Mesabi - 2 cores, 4 GB, 8 hours', 'mesabi2c4g12h', 'batchspawner.TorqueSpawner',
      dict(req_nprocs='2', req_queue='mesabi', req_runtime='8:00:00', req_memory='4gb')),
   ('Mesabi - 12 cores, 128 GB, 4 hours', 'mesabi128gb', 'batchspawner.TorqueSpawner',
      dict(req_nprocs='12', req_queue='ram256g', req_runtime='4:00:00', req_memory='125gb')),
   ('Mesabi - 2 cores, 4 GB, 24 hours', 'mesabi2c4gb24h', 'batchspawner.TorqueSpawner',
      dict(req_nprocs='2', req_queue='mesabi', req_runtime='24:00:00', req_memory='4gb')),
   ('Interactive Cluster - 2 cores, 4 GB, 8 hours', 'lab', 'batchspawner.TorqueSpawner',
      dict(req_nprocs='2', req_host='labhost.xyz.edu', req_queue='lab',
          req_runtime='8:00:00', req_memory='4gb', state_exechost_exp='')),
   ]
c.ProfilesSpawner.ip = '0.0.0.0'
"""

# wrapspawner's README example: a local process and two Docker images.
WRAPSPAWNER_README_PROFILES = [
    ("Host process", "local", "jupyterhub.spawner.LocalProcessSpawner", {"ip": "0.0.0.0"}),
    (
        "Docker Python 2/3",
        "systemuser",
        "dockerspawner.SystemUserSpawner",
        {"container_image": "jupyterhub/systemuser"},
    ),
    (
        "Docker Python 2/3,R,Julia",
        "datasciencesystemuser",
        "dockerspawner.SystemUserSpawner",
        {"container_image": "jupyterhub/datasciencesystemuser"},
    ),
]

SLURM_PROFILES = [
    (
        "Small: 2 CPUs, 4 GB, 2 hours",
        "small",
        SlurmSpawner,
        {"req_partition": "debug", "req_nprocs": "2", "req_memory": "4G", "req_runtime": "120"},
    ),
    (
        "One GPU",
        "gpu",
        "batchspawner.SlurmSpawner",
        {
            "req_partition": "gpu",
            "req_nprocs": "4",
            "req_memory": "16000",
            "req_runtime": "1-00:00:00",
            "req_gres": "gpu:1",
            "req_qos": "normal",
            "req_options": "",
        },
    ),
]


def test_our_fixtures_are_wrapspawners_own_format() -> None:
    """ProfilesSpawner's own trait accepts the lists we convert."""
    own = Config()
    own.ProfilesSpawner.profiles = SLURM_PROFILES
    assert [p[1] for p in ProfilesSpawner(config=own).profiles] == ["small", "gpu"]
    cfg = Config()
    exec(compile(BATCHSPAWNER_README_CONFIG, "config.py", "exec"), {"c": cfg})
    assert len(ProfilesSpawner(config=cfg).profiles) == 5


def test_slurm_profiles_convert_exactly() -> None:
    conversion = convert_profiles(SLURM_PROFILES)
    assert conversion.problems == []
    assert conversion.profiles == {
        "small": {
            "display_name": "Small: 2 CPUs, 4 GB, 2 hours",
            "cpus": 2,
            "memory": "4GiB",
            "runtime": "02:00:00",  # a bare number is minutes, as for --time
            "partition": "debug",
        },
        "gpu": {
            "display_name": "One GPU",
            "cpus": 4,
            "memory": "16000MiB",  # a bare number is megabytes (MiB to SLURM), as for --mem
            "runtime": "1-00:00:00",
            "gpus": 1,
            "qos": "normal",
            "partition": "gpu",
        },
    }


def test_converted_profiles_are_a_valid_site_file() -> None:
    profiles = convert_profiles(SLURM_PROFILES).profiles
    data = copy.deepcopy(DEMO)
    data["profiles"] = yaml.safe_load(yaml.safe_dump(profiles))
    for institution in data["institutions"].values():
        institution["profiles"] = ["small", "gpu"]
    settings = parse_settings(data)
    assert settings.profiles["gpu"].gpus.default == 1
    assert settings.profiles["small"].runtime.default == 7200
    assert settings.profiles["gpu"].memory.default == 16000 * 1024**2


def test_wrapspawner_readme_example_is_refused_with_reasons() -> None:
    conversion = convert_profiles(WRAPSPAWNER_README_PROFILES)
    assert conversion.profiles == {}
    assert conversion.problems == [
        (
            "profile 'local': jupyterhub.spawner.LocalProcessSpawner does not run a batch job; "
            "SciTeX Hub runs every server as a SLURM job (only batchspawner profiles convert)"
        ),
        (
            "profile 'systemuser': dockerspawner.SystemUserSpawner does not run a batch job; "
            "SciTeX Hub runs every server as a SLURM job (only batchspawner profiles convert)"
        ),
        (
            "profile 'datasciencesystemuser': dockerspawner.SystemUserSpawner does not run a "
            "batch job; SciTeX Hub runs every server as a SLURM job (only batchspawner "
            "profiles convert)"
        ),
    ]


def test_batchspawner_readme_config_file(tmp_path: Path) -> None:
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(BATCHSPAWNER_README_CONFIG)
    conversion = convert_config_file(str(config))
    assert list(conversion.profiles) == ["mesabi2c4g12h", "mesabi128gb", "mesabi2c4gb24h"]
    assert conversion.profiles["mesabi128gb"] == {
        "display_name": "Mesabi - 12 cores, 128 GB, 4 hours",
        "cpus": 12,
        "runtime": "04:00:00",
        "memory": "125GiB",
        "partition": "ram256g",
    }
    # The class-wide req_runtime fills in where a profile does not say.
    assert conversion.profiles["mesabi2c4gb24h"]["runtime"] == "1-00:00:00"
    assert conversion.problems == [
        (
            "profile 'local': jupyterhub.spawner.LocalProcessSpawner does not run a batch job; "
            "SciTeX Hub runs every server as a SLURM job (only batchspawner profiles convert)"
        ),
        (
            "profile 'lab': req_host='labhost.xyz.edu': this profile targets another batch "
            "server or cluster; a SciTeX hub submits to one cluster"
        ),
    ]
    assert (
        "profile 'mesabi2c4g12h': req_host='mesabi.xyz.edu' (class-wide) is hub-wide in "
        "SciTeX Hub: the hub submits to the cluster of slurm.conf" in conversion.notes
    )
    assert (
        "profile 'mesabi2c4g12h': was for batchspawner.TorqueSpawner; its queue becomes a SLURM partition"
        in conversion.notes
    )


@pytest.mark.parametrize(
    "config,expected",
    [
        (
            {"req_options": "--gres=gpu:1 --exclusive"},
            "profile 'p': req_options is refused: raw scheduler options are never passed",
        ),
        ({"req_prologue": "module load cuda"}, "profile 'p': req_prologue is refused"),
        ({"req_epilogue": "rm -rf /tmp/x"}, "profile 'p': req_epilogue is refused"),
        ({"batch_script": "#!/bin/sh\n{{cmd}}"}, "profile 'p': batch_script is refused"),
        ({"exec_prefix": "sudo -u {username}"}, "profile 'p': exec_prefix is refused"),
        ({"req_account": "chem"}, "institutions.<id>.slurm_account"),
        ({"req_gres": "gpu:a100:2"}, "req_gres='gpu:a100:2': only 'gpu:N' converts"),
        ({"req_nprocs": "two"}, "profile 'p': req_nprocs: 'two' is not a whole number"),
        ({"req_memory": "lots"}, "profile 'p': req_memory: 'lots' is not a size"),
        ({"req_runtime": "8h"}, "profile 'p': req_runtime: '8h' is not a duration"),
        ({"req_queue": "other"}, "req_partition 'debug' and req_queue 'other' differ"),
        ({"req_partition": "a b"}, "profile 'p': partitions: partition 'a b' is not a valid"),
        ({"req_cluster": "other"}, "profile 'p': req_cluster='other': this profile targets"),
        ({"surprise": 1}, "profile 'p': surprise has no SciTeX equivalent and is refused"),
    ],
)
def test_what_cannot_convert_names_profile_and_key(config: dict[str, Any], expected: str) -> None:
    base = {"req_partition": "debug", "req_memory": "1G", "req_runtime": "01:00:00"}
    conversion = convert_profiles([("P", "p", SlurmSpawner, {**base, **config})])
    assert conversion.profiles == {}
    assert len(conversion.problems) == 1
    assert expected in conversion.problems[0]


def test_missing_resources_and_bad_shapes() -> None:
    conversion = convert_profiles(
        [
            ("No partition", "nopart", SlurmSpawner, {"req_memory": "1G", "req_runtime": "60"}),
            ("No memory", "nomem", SlurmSpawner, {"req_partition": "debug", "req_runtime": "60"}),
            ("Short", "short", SlurmSpawner),
            ("Upper", "Bad Key", SlurmSpawner, {}),
            (
                "A",
                "dup",
                SlurmSpawner,
                {"req_partition": "a", "req_memory": "1G", "req_runtime": "60"},
            ),
            (
                "B",
                "dup",
                SlurmSpawner,
                {"req_partition": "b", "req_memory": "1G", "req_runtime": "60"},
            ),
        ]
    )
    assert list(conversion.profiles) == ["dup"]
    assert conversion.profiles["dup"]["partition"] == "a"
    assert conversion.problems == [
        "profile 'nopart': no req_partition (or req_queue): a profile names its partition",
        "profile 'nomem': no req_memory: a profile states its memory",
        (
            "profile #3: expected (display_name, key, spawner_class, config), got "
            "('Short', 'short', <class 'batchspawner.batchspawner.SlurmSpawner'>)"
        ),
        "profile 'Bad Key': the key becomes the profile name; use lowercase letters, digits, - and _",
        "profile 'dup': the key is used twice",
    ]
    assert "profile 'dup': no req_nprocs, so cpus: 1 (SLURM's default)" in conversion.notes
    with pytest.raises(ConversionError, match="must be a list"):
        convert_profiles("not a list")  # type: ignore[arg-type]


def test_cli_prints_yaml_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(BATCHSPAWNER_README_CONFIG)
    r = subprocess.run(
        [sys.executable, "-m", "scitex_spawner.wrapspawner_import", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stderr  # two profiles could not be converted
    printed = yaml.safe_load(r.stdout)
    assert printed == {"profiles": convert_config_file(str(config)).profiles}
    assert "not converted: profile 'lab': req_host=" in r.stderr
    assert "not converted: profile 'local':" in r.stderr

    # The other outcomes in-process (a subprocess costs seconds of imports).
    clean = tmp_path / "clean.py"
    clean.write_text(
        "from batchspawner import SlurmSpawner\n"
        "c.ProfilesSpawner.profiles = [('S', 's', SlurmSpawner, "
        "{'req_partition': 'debug', 'req_memory': '2G', 'req_runtime': '01:00:00', 'req_nprocs': '1'})]\n"
    )
    assert main([str(clean)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert yaml.safe_load(out) == {
        "profiles": {
            "s": {
                "display_name": "S",
                "memory": "2GiB",
                "runtime": "01:00:00",
                "cpus": 1,
                "partition": "debug",
            }
        }
    }

    empty = tmp_path / "empty.py"
    empty.write_text("c.JupyterHub.spawner_class = 'scitex'\n")
    assert main([str(empty)]) == 2
    assert "sets no c.ProfilesSpawner.profiles" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.py")]) == 2
    assert "no such config file" in capsys.readouterr().err
