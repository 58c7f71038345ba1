"""The fake Gitea as a process (``python -m tests.fakes.gitea``), as the demo and e2e use it."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def test_fake_gitea_runs_as_a_process(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    token_file = tmp_path / "admin-token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.gitea", "--port", str(port),
         "--root", str(tmp_path / "repos"), "--admin-token-file", str(token_file)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the fake did not start"
                time.sleep(0.1)
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        token = token_file.read_text().strip()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/user", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            me = json.loads(resp.read())
        assert me["login"] == "gitea-admin" and me["is_admin"] is True
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    assert "listening on" in output
    assert token not in output  # the admin token is written to its file, never printed
