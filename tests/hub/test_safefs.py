"""What root does in users' trees, with symlinks planted at every level and swapped in
during the walk: nothing outside the user's tree changes, and the user is told what to
remove. Real files in temporary directories, run as root (files given to alice).
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import scitex_safefs as safefs
from scitex_hub.slurm import QueueEntry
from scitex_service.handlers import APIError
from scitex_service.jobs import (
    ComputeJobs,
    JobRequest,
    JobRequestError,
)
from scitex_spawner.failures import SpawnFailed
from scitex_spawner.userdir import make_user_dir as _make_user_dir
from tests.services import require_root

LOGS = ".scitex/logs"


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


@pytest.fixture
def alice() -> pwd.struct_passwd:
    return pwd.getpwnam("alice")


@pytest.fixture
def bob() -> pwd.struct_passwd:
    return pwd.getpwnam("bob")


@pytest.fixture
def site(tmp_path: Path, alice: pwd.struct_passwd, bob: pwd.struct_passwd) -> Iterator[Path]:
    """``<data_root>/demo-u`` with alice's and bob's directories (bob's holds ``logs``),
    and a root-owned directory outside every user's tree."""
    tmp_path.chmod(0o755)
    inst = tmp_path / "data" / "demo-u"
    for account in (alice, bob):
        home = inst / account.pw_name
        (home / LOGS).mkdir(parents=True)
        for d in (home, home / ".scitex", home / LOGS):
            os.chown(d, account.pw_uid, account.pw_gid)
            d.chmod(0o750 if account is bob else 0o700)
    root_owned = tmp_path / "system"
    (root_owned / "logs").mkdir(parents=True)
    root_owned.chmod(0o755)
    yield inst


def snapshot(*paths: Path) -> dict[str, tuple[int, int, int, int]]:
    """Mode, owner, group and inode of each path and everything below it."""
    out = {}
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [".", *dirnames, *filenames]:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_ino)
    return out


def outside(site: Path) -> list[Path]:
    return [site / "bob", site.parent.parent / "system"]


def assert_private(path: Path, account: pwd.struct_passwd) -> None:
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode), path
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        account.pw_uid,
        account.pw_gid,
        0o700,
    ), path


# ---- the data directory at each start --------------------------------------------------


def test_a_new_user_gets_a_private_tree(site: Path, alice: pwd.struct_passwd) -> None:
    carol_dir = site / "carol"
    _make_user_dir(str(carol_dir), "alice", LOGS)
    for p in (carol_dir, carol_dir / ".scitex", carol_dir / LOGS):
        assert_private(p, alice)
    # Existing levels are repaired: owner and mode.
    (site / "alice" / ".scitex").chmod(0o777)
    os.chown(site / "alice" / LOGS, 0, 0)
    _make_user_dir(str(site / "alice"), "alice", LOGS)
    for p in (site / "alice", site / "alice" / ".scitex", site / "alice" / LOGS):
        assert_private(p, alice)


@pytest.mark.parametrize("level", [".scitex", LOGS])
@pytest.mark.parametrize("target", ["bob", "system"])
def test_a_symlink_at_any_level_is_refused_and_nothing_outside_changes(
    site: Path, alice: pwd.struct_passwd, level: str, target: str
) -> None:
    home = site / "alice"
    planted = home / level
    os.rename(planted, home / "moved-away")
    to = site / "bob" if target == "bob" else site.parent.parent / "system"
    planted.symlink_to(to / "logs" if level == LOGS and target == "system" else to)
    before = snapshot(*outside(site))
    with pytest.raises(SpawnFailed) as e:
        _make_user_dir(str(home), "alice", LOGS)
    assert snapshot(*outside(site)) == before
    message = e.value.reason
    assert message == (
        f"/data/{level} in your data directory ({planted} on the cluster) is a symbolic "
        f"link where the hub needs a directory; remove it (rm {planted}) and start again."
    )


def test_a_file_where_a_directory_belongs_is_refused(site: Path) -> None:
    home = site / "alice"
    (home / LOGS).rmdir()
    (home / LOGS).write_text("not a directory")
    with pytest.raises(SpawnFailed) as e:
        _make_user_dir(str(home), "alice", LOGS)
    assert f"is a file where the hub needs a directory; remove it (mv {home / LOGS} " in (
        e.value.reason
    )


def test_a_data_directory_that_is_a_link_is_the_admins_to_fix(site: Path) -> None:
    (site / "carol").symlink_to(site / "bob")
    before = snapshot(*outside(site))
    with pytest.raises(SpawnFailed) as e:
        _make_user_dir(str(site / "carol"), "alice", LOGS)
    assert e.value.reason == (
        f"Your data directory {site / 'carol'} is a symbolic link; ask your administrator."
    )
    assert snapshot(*outside(site)) == before


def swap_after(
    monkeypatch: pytest.MonkeyPatch, call: str, name: str, swap: Callable[[], None]
) -> list[str]:
    """Run ``swap`` right after the first ``os.<call>`` on ``name`` (the race, made certain)."""
    real = getattr(os, call)
    done: list[str] = []

    def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return real(path, *args, **kwargs)
        finally:
            if path == name and not done:
                done.append(name)
                swap()

    monkeypatch.setattr(os, call, wrapper)
    return done


@pytest.mark.parametrize("call", ["mkdir", "open"])
def test_a_directory_swapped_for_a_link_during_the_walk_changes_nothing_outside(
    site: Path, alice: pwd.struct_passwd, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    home = site / "alice"
    bob_dir = site / "bob"

    def swap() -> None:
        # alice renames the real directory away and plants a link to bob's in its place.
        os.rename(home / ".scitex", home / ".scitex-real")
        (home / ".scitex").symlink_to(bob_dir)

    before = snapshot(*outside(site))
    done = swap_after(monkeypatch, call, ".scitex", swap)
    if call == "mkdir":
        # Swapped between mkdir and open: the open refuses the link.
        with pytest.raises(SpawnFailed, match="is a symbolic link"):
            _make_user_dir(str(home), "alice", LOGS)
    else:
        # Swapped after the open: the work goes on through the descriptor, on the real
        # directory (now .scitex-real, still in her tree), never on the link's target.
        _make_user_dir(str(home), "alice", LOGS)
        assert_private(home / ".scitex-real" / "logs", alice)
    assert done == [".scitex"]
    monkeypatch.undo()
    assert snapshot(*outside(site)) == before


def test_relative_paths_with_dots_are_refused() -> None:
    for bad in ("../x", "a/../b", "/abs", "a//b", "./a", ""):
        with pytest.raises(ValueError):
            safefs.components(bad)


# ---- the service's job-log reader ------------------------------------------------------


def entry(job_id: str = "7", project: str = "p1") -> QueueEntry:
    return QueueEntry(
        job_id,
        "run.sh",
        "alice",
        "COMPLETED",
        "None",
        "localhost",
        "",
        "",
        "",
        f"x:project={project}",
    )


@pytest.fixture
def jobs(site: Path, alice: pwd.struct_passwd) -> ComputeJobs:
    logs = site / "alice" / "projects" / "p1" / ".scitex" / "jobs"
    logs.mkdir(parents=True)
    (logs / "7.log").write_text("alice's own log\n")
    os.chown(logs / "7.log", alice.pw_uid, alice.pw_gid)
    # bob's private log, the same relative path in his tree: what a link would reach.
    bob_logs = site / "bob" / "projects" / "p1" / ".scitex" / "jobs"
    bob_logs.mkdir(parents=True)
    (bob_logs / "7.log").write_text("bob's secret\n")
    os.chown(bob_logs / "7.log", alice.pw_uid, alice.pw_gid)  # even one that looks hers
    return ComputeJobs(hub_id="t", data_root=str(site.parent))


@pytest.mark.parametrize(
    "level", ["projects", "projects/p1", "projects/p1/.scitex", "projects/p1/.scitex/jobs"]
)
def test_the_log_reader_never_follows_a_link_at_any_level(
    site: Path, jobs: ComputeJobs, level: str
) -> None:
    home = site / "alice"
    assert jobs.read_log("demo-u", "alice", entry())["log"] == "alice's own log\n"
    os.rename(home / level, home / "moved")
    (home / level).symlink_to(site / "bob" / level)
    with pytest.raises(APIError) as e:
        jobs.read_log("demo-u", "alice", entry())
    assert e.value.status_code == 404
    assert f"{level} is a symbolic link" in str(e.value)
    assert "secret" not in str(e.value)


def test_the_log_reader_swapped_mid_walk_reads_nothing_outside(
    site: Path, jobs: ComputeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = site / "alice"
    p1 = home / "projects" / "p1"

    def swap() -> None:
        os.rename(p1 / ".scitex", p1 / ".scitex-real")
        (p1 / ".scitex").symlink_to(site / "bob" / "projects" / "p1" / ".scitex")

    # Right after p1 is opened, before .scitex is: the link is met, and refused.
    swap_after(monkeypatch, "open", "p1", swap)
    with pytest.raises(APIError) as e:
        jobs.read_log("demo-u", "alice", entry())
    assert e.value.status_code == 404


def test_the_log_reader_refuses_a_fifo_and_another_users_file(
    site: Path, jobs: ComputeJobs, bob: pwd.struct_passwd
) -> None:
    logs = site / "alice" / "projects" / "p1" / ".scitex" / "jobs"
    os.mkfifo(logs / "8.log")
    (logs / "9.log").write_text("bob's")
    os.chown(logs / "9.log", bob.pw_uid, bob.pw_gid)
    for job_id in ("8", "9"):
        with pytest.raises(APIError) as e:
            jobs.read_log("demo-u", "alice", entry(job_id))
        assert e.value.status_code == 404
    assert jobs.read_log("demo-u", "alice", entry("10"))["exists"] is False


# ---- the service's check of a compute job's script -------------------------------------


@pytest.fixture
def scripts(site: Path, jobs: ComputeJobs) -> ComputeJobs:
    for home in (site / "alice", site / "bob"):
        (home / "projects" / "p1" / "sub").mkdir(parents=True, exist_ok=True)
        (home / "projects" / "p1" / "sub" / "fit.py").write_text("print(1)\n")
    (site / "bob" / "projects" / "p1" / "only-bob.py").write_text("print(2)\n")
    return jobs


def locate(jobs: ComputeJobs, script: str) -> None:
    jobs.locate("demo-u", "alice", JobRequest("p1", script, {}))


@pytest.mark.parametrize(
    "level,words",
    [
        ("projects", "alice has no project 'p1' (projects is a symbolic link)"),
        ("projects/p1", "alice has no project 'p1' (projects/p1 is a symbolic link)"),
        ("projects/p1/sub", "leads through sub, a symbolic link"),
    ],
)
def test_the_script_check_never_looks_through_a_link(
    site: Path, scripts: ComputeJobs, level: str, words: str
) -> None:
    home = site / "alice"
    locate(scripts, "sub/fit.py")
    os.rename(home / level, home / "moved")
    (home / level).symlink_to(site / "bob" / level)
    with pytest.raises(JobRequestError) as e:
        locate(scripts, "sub/fit.py")
    assert words in str(e.value)


def test_the_script_check_swapped_mid_walk_sees_nothing_of_bobs(
    site: Path, scripts: ComputeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = site / "alice"

    def swap() -> None:
        os.rename(home / "projects" / "p1", home / "p1-real")
        (home / "projects" / "p1").symlink_to(site / "bob" / "projects" / "p1")

    # After "projects" is opened, before "p1" is: the link is met and refused, and
    # bob's only-bob.py is never found.
    swap_after(monkeypatch, "open", "projects", swap)
    with pytest.raises(JobRequestError, match="projects/p1 is a symbolic link"):
        locate(scripts, "only-bob.py")
