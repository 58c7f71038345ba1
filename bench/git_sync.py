"""Project sync: ``ProjectManager.sync`` vs the same git work run directly, same Gitea, same run.

A project of 1,000 files and 50 MB (incompressible) is synced to the fake Gitea (real HTTP, real
``git http-backend``). Each round writes new content into three identical working copies and
syncs them, in rotating order:

* ``ours``: ``ProjectManager.sync`` (status, commit, fetch, rebase if needed, push, final status);
* ``replay``: the exact argv our sync ran that round, replayed with ``subprocess.run`` (our
  orchestration overhead only);
* ``manual``: what a user would type: ``git add -A``, ``git commit``, ``git pull --rebase``,
  ``git push`` (same credential helper and ``-c`` options, so the transport is the same).

Two scenarios: ``full`` (all 1,000 files rewritten: 50 MB to push) and ``small`` (one file
changed). The goal is ``ours / manual <= 1.1`` on ``full``.

    python -m bench.git_sync [--rounds 3] [--files 1000] [--mb 50]

Writes ``bench/results/git_sync.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import print_table, write_result
from scitex_server_ext import git
from scitex_server_ext.gitea import NOTEBOOK_TOKEN_SCOPES, GiteaClient
from tests.fakes.world import make_manager

GOAL = 1.1
VARIANTS = ("ours", "replay", "manual")


def write_content(project: Path, files: int, block: bytes, seed: bytes) -> None:
    """``files`` files of random bytes (``len(block)`` each), under 10 directories."""
    size = len(block)
    for i in range(files):
        d = project / f"data{i % 10:02d}"
        d.mkdir(exist_ok=True)
        # Different per file and per round, so git can neither deduplicate nor delta them.
        (d / f"f{i:04d}.bin").write_bytes(seed + i.to_bytes(4, "big") + block[: size - 12])


def touch_one(project: Path, seed: bytes) -> None:
    (project / "data00" / "f0000.bin").write_bytes(seed * 100)


def start_fake_gitea(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """The fake as its own process (as Gitea would be: no GIL shared with the extension)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    (tmp / "admin-password").write_text("bench-admin-password\n")
    token_file = tmp / "admin-token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.gitea", "--port", str(port), "--root",
         str(tmp / "gitea"), "--admin-token-file", str(token_file),
         "--admin-password-file", str(tmp / "admin-password")],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("the fake Gitea did not start")
    return proc, f"http://127.0.0.1:{port}", token_file.read_text().strip()


async def provision(url: str, admin_token: str) -> str:
    """As the hub will: the user, the lab's organization and team, a scoped token."""
    admin = GiteaClient(url, admin_token)
    await admin.admin_create_user("alice", "alice@demo-u.edu", "alice-password")
    await admin.create_org("demo-u")
    team = await admin.create_team("demo-u", "members")
    await admin.add_team_member(team.id, "alice")
    token = await admin.create_access_token(
        "alice",
        "notebook",
        NOTEBOOK_TOKEN_SCOPES,
        basic_auth=("gitea-admin", "bench-admin-password"),
        sudo="alice",
    )
    return token.sha1


def check_pushed(project: Path, bare: Path) -> None:
    def out(*argv: str, cwd: Path) -> str:
        return subprocess.run(
            ["git", *argv], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()

    if out("status", "--porcelain", cwd=project):
        raise RuntimeError(f"{project.name}: uncommitted changes left")
    if out("rev-parse", "HEAD", cwd=project) != out("rev-parse", "main", cwd=bare):
        raise RuntimeError(f"{project.name}: HEAD is not on the remote")


def run_argv(argvs: list[tuple[str, ...]], cwd: Path, env: dict[str, str]) -> None:
    for argv in argvs:
        subprocess.run(argv, cwd=cwd, env=env, check=False, capture_output=True)


def manual_argvs(settings: git.GitSettings, url: str, message: str) -> list[tuple[str, ...]]:
    g = git.global_args(settings)
    return [
        (*g, "add", "-A"),
        (*g, "-c", "user.name=bench", "-c", "user.email=bench@x", "commit", "-qm", message),
        (*g, "-c", "user.name=bench", "-c", "user.email=bench@x", "pull", "-q", "--rebase",
         "--", url, "main"),
        (*g, "push", "-q", "--", url, "HEAD:refs/heads/main"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--small-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    total_bytes = int(args.mb * 1024 * 1024)
    tmp = Path(tempfile.mkdtemp(prefix="scitex-bench-git-"))
    loop = asyncio.new_event_loop()
    try:
        fake, url, admin_token = start_fake_gitea(tmp)
        try:
            token = loop.run_until_complete(provision(url, admin_token))
            manager, runner = make_manager(tmp / "alice", url=url, token=token)
            projects = tmp / "alice" / "projects"
            names = {v: f"bench-{v}" for v in VARIANTS}
            for name in names.values():
                loop.run_until_complete(manager.create(name))
            env = dict(runner.env)
            urls = {v: f"{url}/demo-u/{n}.git" for v, n in names.items()}
            samples: dict[str, dict[str, list[float]]] = {
                s: {v: [] for v in VARIANTS} for s in ("full", "small")
            }
            ours_commands: list[int] = []
            for rnd in range(args.rounds):
                # The small scenario is short and noisy: several samples per round.
                for rep, scenario in enumerate(["full"] + ["small"] * args.small_repeats):
                    seed = f"{scenario[0]}{rnd:03d}{rep:03d}-".encode()[:8].ljust(8, b"-")
                    block = os.urandom(total_bytes // args.files)
                    for name in names.values():
                        if scenario == "full":
                            write_content(projects / name, args.files, block, seed)
                        else:
                            touch_one(projects / name, seed)
                    order = VARIANTS[(rnd + rep) % 3 :] + VARIANTS[: (rnd + rep) % 3]
                    replay: list[tuple[str, ...]] = []
                    if order[0] == "replay":  # replay needs our argv of this round: run ours first
                        order = ("ours", "replay", "manual")
                    for variant in order:
                        cwd = projects / names[variant]
                        start = time.perf_counter()
                        if variant == "ours":
                            runner.calls.clear()
                            loop.run_until_complete(manager.sync(names["ours"]))
                            replay = [
                                tuple(a.replace(urls["ours"], urls["replay"]) for a in c)
                                for c in runner.calls
                            ]
                            ours_commands.append(len(replay))
                        elif variant == "replay":
                            run_argv(replay, cwd, env)
                        else:
                            msg = f"bench {scenario} {rnd}"
                            run_argv(manual_argvs(manager.settings, urls["manual"], msg), cwd, env)
                        samples[scenario][variant].append(time.perf_counter() - start)
                    # Every variant really committed and pushed everything.
                    for name in names.values():
                        check_pushed(projects / name, tmp / "gitea" / "demo-u" / f"{name}.git")
        finally:
            fake.terminate()
            fake.wait(10)
    finally:
        loop.close()
        shutil.rmtree(tmp, ignore_errors=True)

    result: dict[str, Any] = {
        "files": args.files,
        "bytes": total_bytes,
        "rounds": args.rounds,
        "goal_ratio": GOAL,
        "git_commands_per_sync": {"ours": max(ours_commands), "manual": 4},
        "scenarios": {},
    }
    rows = []
    for scenario, by_variant in samples.items():
        med = {v: statistics.median(s) for v, s in by_variant.items()}
        entry: dict[str, Any] = {
            v: {"median_s": round(med[v], 4), "samples_s": [round(x, 4) for x in by_variant[v]]}
            for v in VARIANTS
        }
        entry["ratio_ours_vs_manual"] = round(med["ours"] / med["manual"], 3)
        entry["ratio_ours_vs_replay"] = round(med["ours"] / med["replay"], 3)
        result["scenarios"][scenario] = entry
        rows.append(
            [
                scenario,
                f"{med['ours']:.3f}",
                f"{med['replay']:.3f}",
                f"{med['manual']:.3f}",
                f"{entry['ratio_ours_vs_manual']:.2f}x",
                f"{entry['ratio_ours_vs_replay']:.2f}x",
            ]
        )
    full_ratio = result["scenarios"]["full"]["ratio_ours_vs_manual"]
    result["goal_met"] = full_ratio <= GOAL
    path = write_result("git_sync", result)
    print_table(
        f"git sync: {args.files} files, {args.mb:g} MB, median of {args.rounds} rounds (s)",
        ["scenario", "ours", "replay", "manual", "ours/manual", "ours/replay"],
        rows,
        f"goal ours/manual <= {GOAL} on full: {'met' if result['goal_met'] else 'NOT met'}"
        f" ({full_ratio:.2f}x); results in {path}",
    )


if __name__ == "__main__":
    main()
