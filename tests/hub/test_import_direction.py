"""Every import between our packages runs one way (docs/architecture.md, "Who imports whom").

Parsed, not imported (tools/import_graph.py): an import inside a function or under
TYPE_CHECKING counts too. The container side (the notebook server's extension) imports
nothing hub-side; only ``jupyterhub_config`` reads the site file, so nothing imports it;
the spawner and the service share ``scitex_hub`` and never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tools.import_graph import PACKAGES, _imported, package_edges

ROOT = Path(__file__).resolve().parents[2]

# What each package may import (besides itself); anything else is a wrong-way arrow.
ALLOWED: dict[str, set[str]] = {
    "scitex_safefs": set(),
    "scitex_gitea": set(),
    "scitex_quota": {"scitex_safefs"},
    "scitex_server_ext": {"scitex_quota", "scitex_safefs", "scitex_gitea"},
    "scitex_hub": {"scitex_safefs", "scitex_quota", "scitex_gitea"},
    "scitex_spawner": {"scitex_hub", "scitex_safefs", "scitex_quota", "scitex_gitea"},
    "scitex_service": {"scitex_hub", "scitex_safefs", "scitex_quota", "scitex_gitea"},
    "jupyterhub_config": {"scitex_hub", "scitex_spawner", "scitex_gitea"},
}


def test_every_package_is_in_the_rules() -> None:
    assert set(ALLOWED) == set(PACKAGES)
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name in PACKAGES}
    assert on_disk == set(PACKAGES)


def test_imports_run_one_way() -> None:
    wrong = {
        f"{importer} -> {imported}: {sorted(modules)}"
        for (importer, imported), modules in package_edges(ROOT).items()
        if imported not in ALLOWED[importer]
    }
    assert not wrong, "imports against the direction:\n" + "\n".join(sorted(wrong))


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The parser itself: a relative import, one in a function, one under TYPE_CHECKING.
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from ..db import store\n"
        "if TYPE_CHECKING:\n    import scitex_spawner.spawner\n"
        "def f():\n    from jupyterhub_config.settings import load_settings\n"
    )
    names = _imported("scitex_service.jobs.submit", False, ast.parse(source))
    assert names == {
        "typing",
        "scitex_service.jobs",
        "scitex_service.db",
        "scitex_spawner.spawner",
        "jupyterhub_config.settings",
    }
    package = tmp_path / "scitex_service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text("def f():\n    import jupyterhub_config.settings\n")
    assert package_edges(tmp_path) == {
        ("scitex_service", "jupyterhub_config"): {"scitex_service.app"}
    }
