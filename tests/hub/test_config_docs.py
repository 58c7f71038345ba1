"""docs/configuration.md is generated from the code and must match it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", REPO / "tools" / "gen_config_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_config_docs"] = module
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def test_configuration_md_is_up_to_date() -> None:
    current = (REPO / "docs" / "configuration.md").read_text()
    assert current == gen.generate(), (
        "docs/configuration.md is out of date: run python tools/gen_config_docs.py"
    )


def test_a_key_without_a_description_is_an_error() -> None:
    descriptions = dict(gen.DESCRIPTIONS)
    del descriptions["slurm.hub_id"]
    with pytest.raises(gen.DocsError, match=r"without a description.*slurm\.hub_id"):
        gen.site_docs(descriptions)


def test_a_description_of_a_key_that_is_gone_is_an_error() -> None:
    descriptions = {**gen.DESCRIPTIONS, "slurm.partition_of_the_past": "gone"}
    with pytest.raises(gen.DocsError, match=r"does not have: slurm\.partition_of_the_past"):
        gen.site_docs(descriptions)


def _keys(data: Any, prefix: str = "") -> set[str]:
    """Dotted keys of a site file, with institution ids, profile and lab names generic."""
    keys = set()
    for key, value in data.items():
        if prefix == "institutions.":
            key = "<id>"
        elif prefix in ("profiles.", "institutions.<id>.labs."):
            key = "<name>"
        path = f"{prefix}{key}"
        if key not in ("<id>", "<name>"):  # a table of its own, not a row
            keys.add(path)
        # Ranges ({default, min, max}) are one documented key.
        if isinstance(value, dict) and not {"default", "max"} & set(value):
            keys |= _keys(value, f"{path}.")
    return keys


def test_every_key_of_the_demo_site_file_is_documented() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    demo = yaml.safe_load((REPO / "jupyterhub_config" / "scitex.yaml").read_text())
    # `partition: NAME` is the documented short form of `partitions`.
    keys = {k + "s" if k.endswith(".partition") else k for k in _keys(demo)}
    undocumented = sorted(k for k in keys if f"| `{k}` |" not in text)
    assert undocumented == []


def test_every_configurable_traitlet_of_ours_is_documented() -> None:
    import scitex_hub.slurm
    import scitex_server_ext.app
    import scitex_spawner.spawner

    text = (REPO / "docs" / "configuration.md").read_text()
    for cls in (
        scitex_spawner.spawner.SciTeXSpawner,
        scitex_hub.slurm.SlurmClient,
        scitex_hub.slurm.QueueWatcher,
        scitex_server_ext.app.SciTeXExtension,
    ):
        for name, trait in cls.class_traits(config=True).items():
            owner = next(k for k in cls.__mro__ if name in k.__dict__)
            if owner.__module__.startswith(("scitex_spawner", "scitex_server_ext")):
                assert f"| `c.{cls.__name__}.{name}` |" in text, f"{cls.__name__}.{name}"
                assert trait.help, f"{cls.__name__}.{name} has no help"
