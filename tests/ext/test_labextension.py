"""The prebuilt JupyterLab extension (``@scitex/jupyterlab``) shipped in the package.

The bundle is built from ``labextension/`` (``npm run build``) into
``scitex_server_ext/labextension/`` and committed, so a site installs it without node.
These tests check that the committed build is complete, matches its sources, and that
JupyterLab finds it: both from the repository (through ``JUPYTER_PATH``) and where the
wheel installs it (``<sys.prefix>/share/jupyter/labextensions/@scitex/jupyterlab``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "labextension"
BUILT = REPO / "scitex_server_ext" / "labextension"
NAME = "@scitex/jupyterlab"
INSTALLED = Path(sys.prefix, "share", "jupyter", "labextensions", *NAME.split("/"))
# The pyproject.toml line that installs the build where JupyterLab looks for it.
SHARED_DATA_LINE = (
    '"scitex_server_ext/labextension" = "share/jupyter/labextensions/@scitex/jupyterlab"'
)
# Our code only: the JupyterLab and Lumino packages come from the page as shared
# singletons. Bundling one by mistake (a wrong import or dependency) adds megabytes.
MAX_BUNDLE_BYTES = 200 * 1024
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def sources_hash() -> str:
    """What labextension/scripts/postbuild.js records in sources.sha256."""
    files = ["package.json", "tsconfig.json"]
    for folder in ("schema", "src", "style"):
        files += [f"{folder}/{p.name}" for p in (SOURCE / folder).iterdir()]
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        digest.update((SOURCE / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def labextension_list(env_extra: dict[str, str]) -> dict[str, list[str]]:
    """``jupyter labextension list`` of this Python environment: {directory: entry lines}."""
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, **env_extra, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run(
        [os.path.join(bindir, "jupyter"), "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    # The listing goes to stderr (JupyterLab's logger); directories flush left, entries indented.
    for line in ANSI.sub("", result.stdout + result.stderr).splitlines():
        if line.startswith(os.sep):
            current = sections.setdefault(os.path.realpath(line.strip()), [])
        elif line[:1].isspace() and line.strip():
            current.append(line.strip())
    return sections


def entry_for(lines: list[str]) -> str | None:
    return next((line for line in lines if line.split(" ", 1)[0] == NAME), None)


def test_build_is_complete_and_matches_its_package_json():
    source = load(SOURCE / "package.json")
    built = load(BUILT / "package.json")
    assert built["name"] == NAME
    assert built["version"] == source["version"]
    # The builder copies package.json and adds only jupyterlab._build.
    build_info = built["jupyterlab"].pop("_build")
    assert built == source
    # What JupyterLab loads: the federated entry point and the style module.
    assert (BUILT / build_info["load"]).is_file()
    assert build_info["extension"] == "./extension"
    assert build_info["style"] == "./style"
    bundle = sum(p.stat().st_size for p in (BUILT / "static").glob("*.js"))
    assert 0 < bundle < MAX_BUNDLE_BYTES, f"static/*.js is {bundle} bytes"


def test_build_is_up_to_date_with_its_sources():
    recorded = (BUILT / "sources.sha256").read_text().strip()
    assert recorded == sources_hash(), (
        "scitex_server_ext/labextension/ was built from other sources than labextension/: "
        "rebuild it (cd labextension && npm install && npm run build, see labextension/README.md)"
    )


def test_install_json_names_this_python_package():
    install = load(BUILT / "install.json")
    pyproject = (REPO / "pyproject.toml").read_text()
    project = re.search(r'^name = "([^"]+)"', pyproject, re.M)
    assert project is not None
    assert install["packageManager"] == "python"
    assert install["packageName"] == project.group(1)


def test_jupyterlab_finds_the_build_enabled(tmp_path):
    # The repository's build as a labextensions directory on JUPYTER_PATH.
    scope = tmp_path / "labextensions" / "@scitex"
    scope.mkdir(parents=True)
    (scope / "jupyterlab").symlink_to(BUILT, target_is_directory=True)
    sections = labextension_list({"JUPYTER_PATH": str(tmp_path)})
    lines = sections.get(os.path.realpath(tmp_path / "labextensions"), [])
    entry = entry_for(lines)
    version = load(BUILT / "package.json")["version"]
    assert entry is not None, f"{NAME} not listed: {sections}"
    assert entry.split()[:4] == [NAME, f"v{version}", "enabled", "OK"], entry
    assert "(python, scitex-jupyterhub)" in entry


def test_the_installed_package_ships_the_extension():
    """What ``pip install`` of the wheel put in this environment (``make install``)."""
    assert (INSTALLED / "package.json").is_file(), (
        f"{INSTALLED} is missing: the wheel must install the extension; pyproject.toml needs "
        f"under [tool.hatch.build.targets.wheel.shared-data]: {SHARED_DATA_LINE}"
    )
    assert load(INSTALLED / "package.json") == load(BUILT / "package.json"), (
        "the installed extension differs from the repository's build: reinstall the package"
    )
    sections = labextension_list({})
    entry = entry_for(sections.get(os.path.realpath(INSTALLED.parent.parent), []))
    assert entry is not None, f"{NAME} not listed under {INSTALLED.parent.parent}: {sections}"
    assert entry.split()[2:4] == ["enabled", "OK"], entry


def test_the_settings_schema_ships_with_the_build():
    """The schema JupyterLab reads the settings and the file browser's menu entry from."""
    source = load(SOURCE / "schema" / "plugin.json")
    assert load(SOURCE / "package.json")["jupyterlab"]["schemaDir"] == "schema"
    assert load(BUILT / "schemas" / "@scitex" / "jupyterlab" / "plugin.json") == source
    assert set(source["properties"]) >= {
        "sessionRefreshSeconds",
        "quotaRefreshSeconds",
        "jobsRefreshSeconds",
        "walltimeWarningMinutes",
    }
    [entry] = source["jupyter.lab.menus"]["context"]
    assert entry["command"] == "scitex:submit-job"
    assert entry["selector"] == '.jp-DirListing-item[data-isdir="false"]'
