"""resolve_inside: the one check every path-taking endpoint uses (CVE-2026-35397 class)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scitex_server_ext.paths import UnsafePath, is_inside, resolve_inside


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``data/alice`` (the root), its sibling ``data/alice2``, and a directory outside."""
    root = tmp_path / "data" / "alice"
    (root / "projects" / "p1").mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    (tmp_path / "data" / "alice2" / "secret").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "passwd").write_text("not yours")
    return root


def test_plain_relative_paths_resolve_inside(tree: Path) -> None:
    assert resolve_inside(tree, "notes.txt") == tree.resolve() / "notes.txt"
    assert resolve_inside(tree, "projects/p1") == tree.resolve() / "projects" / "p1"
    # Not existing yet (a file about to be created) is fine.
    assert resolve_inside(tree, "projects/new/file.py") == tree.resolve() / "projects/new/file.py"
    # Dots that stay inside are normalised, not refused.
    assert resolve_inside(tree, "projects/p1/../p1/./x") == tree.resolve() / "projects/p1/x"
    assert resolve_inside(tree, "a//b/") == tree.resolve() / "a" / "b"


def test_empty_path_is_the_root(tree: Path) -> None:
    assert resolve_inside(tree, "") == tree.resolve()
    assert resolve_inside(tree, ".") == tree.resolve()


@pytest.mark.parametrize(
    "relative",
    [
        "..",
        "../alice2",
        "../alice2/secret",
        "projects/../../alice2",
        "projects/p1/../../../outside",
    ],
)
def test_dotdot_out_of_the_root_is_refused(tree: Path, relative: str) -> None:
    with pytest.raises(UnsafePath) as e:
        resolve_inside(tree, relative)
    assert e.value.status == 403


def test_sibling_with_common_prefix_is_not_inside(tree: Path) -> None:
    # The CVE: "/data/alice2".startswith("/data/alice") is True.
    sibling = tree.parent / "alice2"
    assert str(sibling).startswith(str(tree))
    assert not is_inside(tree, sibling)
    assert not is_inside(str(tree) + "/", sibling)
    assert is_inside(tree, tree)
    assert is_inside(tree, tree / "x")
    with pytest.raises(UnsafePath):
        resolve_inside(tree, "../alice2/secret")


def test_filesystem_root_as_root(tmp_path: Path) -> None:
    assert is_inside("/", "/etc")
    assert resolve_inside("/", "etc") == Path("/etc").resolve()


def test_absolute_paths_are_refused(tree: Path) -> None:
    for relative in ("/etc/passwd", str(tree / "notes.txt"), "//etc"):
        with pytest.raises(UnsafePath) as e:
            resolve_inside(tree, relative)
        assert e.value.status == 404


def test_nul_byte_is_refused(tree: Path) -> None:
    with pytest.raises(UnsafePath) as e:
        resolve_inside(tree, "notes.txt\0../../outside")
    assert e.value.status == 404


def test_encoded_dots_are_a_plain_name(tree: Path) -> None:
    # URL decoding is the web layer's job: undecoded "%2e%2e" names a file called so.
    assert resolve_inside(tree, "%2e%2e") == tree.resolve() / "%2e%2e"
    assert resolve_inside(tree, "%2e%2e/%2e%2e/alice2") == tree.resolve() / "%2e%2e/%2e%2e/alice2"
    # Once decoded it is refused.
    with pytest.raises(UnsafePath):
        resolve_inside(tree, "../alice2")


def test_symlink_out_of_the_tree_is_refused(tree: Path) -> None:
    outside = tree.parent.parent / "outside"
    (tree / "escape").symlink_to(outside)
    (tree / "passwd-link").symlink_to(outside / "passwd")
    (tree / "to-sibling").symlink_to(tree.parent / "alice2")
    for relative in ("escape", "escape/passwd", "escape/new-file", "passwd-link", "to-sibling/x"):
        with pytest.raises(UnsafePath) as e:
            resolve_inside(tree, relative)
        assert e.value.status == 403, relative


def test_symlink_inside_the_tree_resolves_to_its_target(tree: Path) -> None:
    (tree / "shortcut").symlink_to(tree / "projects" / "p1")
    assert resolve_inside(tree, "shortcut/x.py") == tree.resolve() / "projects" / "p1" / "x.py"
    # ".." after a symlink applies to the target, as the kernel does.
    assert resolve_inside(tree, "shortcut/..") == tree.resolve() / "projects"
    with pytest.raises(UnsafePath):
        resolve_inside(tree, "shortcut/../../..")


def test_dangling_symlink_pointing_out_is_refused(tree: Path) -> None:
    # Writing through it would create a file outside.
    (tree / "dangling").symlink_to(tree.parent.parent / "outside" / "new")
    with pytest.raises(UnsafePath):
        resolve_inside(tree, "dangling")


def test_root_reached_through_a_symlink(tree: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tree)
    assert resolve_inside(alias, "notes.txt") == tree.resolve() / "notes.txt"
    with pytest.raises(UnsafePath):
        resolve_inside(alias, "../alice2")


def test_symlink_loop_does_not_escape(tree: Path) -> None:
    os.symlink("loop", tree / "loop")
    target = resolve_inside(tree, "loop")
    assert is_inside(tree.resolve(), target)
