"""Storage quota end to end: a real hub with the scitex service, SLURM, PAM, the proxy.

alice writes through the contents API; her server and the service both see it; bob (an
admin of her institution) lowers her quota through the service; her restarted server
refuses a save past it with 507 and keeps the old file; the usage view follows each
role; and once she is over the limit her server still starts (``quota.over_quota:
cleanup``, the default) so she can delete files: the spawn progress says why, saves that
add data get 507, a delete goes through, and once her usage is measured below the limit
she can save again. (``refuse`` mode needs another hub: it is covered by the spawner-path
unit tests in tests/hub/test_records.py.)
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scitex_quota import format_bytes
from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, job_ids_of, new_hub
from tests.services import demo_admin_password

pytestmark = pytest.mark.e2e

KiB, MiB, GiB = 1024, 1024**2, 1024**3
DATA_BYTES = 300 * KiB


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    hub = new_hub(service={"usage_scan_interval": 1})
    # Servers measure their user's tree every second (default 60 s), so a deletion is
    # seen at once.
    notebook = hub.settings["notebook"]
    notebook["args"] = [*notebook["args"], "--ScanQuotaBackend.interval=1"]
    institutions = hub.settings["institutions"]
    # bob administers demo-u; erin belongs to and administers other-u.
    institutions["demo-u"]["users"] = ["alice", "bob"]
    institutions["demo-u"]["admins"] = ["bob"]
    institutions["other-u"]["users"] = ["carol", "erin"]
    institutions["other-u"]["admins"] = ["erin"]
    hub.start()
    yield hub
    hub.close()


def wait_for(what: str, hub: Hub, check: Any, timeout: float = 60) -> Any:
    """Poll ``check()`` until it returns something truthy; fail with the hub's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout} s:\n{hub.log_tail(80)}")


def service_usage(user: HubUser) -> dict[str, Any] | None:
    r = user.api("GET", "/services/scitex/api/usage")
    return r.json() if r.status_code == 200 else None


def user_usage(report: dict[str, Any], institution: str, name: str) -> dict[str, Any]:
    [inst] = [i for i in report["institutions"] if i["id"] == institution]
    [row] = [u for u in inst["users"] if u["name"] == name]
    return dict(row)


def put_file(user: HubUser, path: str, data: bytes) -> Any:
    return user.api(
        "PUT",
        f"/user/{user.name}/api/contents/{path}",
        json={"type": "file", "format": "base64", "content": base64.b64encode(data).decode()},
    )


def server_quota(user: HubUser) -> dict[str, Any]:
    def answer() -> dict[str, Any] | None:
        r = user.api("GET", f"/user/{user.name}/scitex/api/quota")
        return r.json() if r.status_code == 200 else None  # 503 until the first scan

    return dict(wait_for(f"{user.name}'s quota", user.hub, answer, timeout=30))


def test_quota_from_writing_to_507_and_cleanup(hub: Hub, password: str) -> None:
    admin = signed_in(hub, "admin", demo_admin_password())
    alice = signed_in(hub, "alice", password)
    bob = signed_in(hub, "bob", password)
    carol = signed_in(hub, "carol", password)
    erin = signed_in(hub, "erin", password)
    # The hub started its service (a missing one fails here, in CI too).
    wait_for("the scitex service", hub, lambda: service_usage(admin), timeout=60)

    # alice's server, and files written through the contents API.
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    assert put_file(alice, "data.bin", os.urandom(DATA_BYTES)).status_code in (200, 201)
    old = b"the old file, which a refused save must leave intact\n"
    assert put_file(alice, "notes.txt", old).status_code in (200, 201)

    quota = server_quota(alice)
    assert quota["user"] == "alice"
    assert quota["institution"] == "demo-u"
    assert quota["used_bytes"] >= DATA_BYTES
    assert quota["limit_bytes"] == 10 * GiB

    # The service measures her directory too.
    def measured() -> dict[str, Any] | None:
        report = service_usage(admin)
        row = user_usage(report, "demo-u", "alice") if report else None
        return row if row and (row["used_bytes"] or 0) >= DATA_BYTES else None

    row = wait_for("the service's measurement of alice", hub, measured)
    assert row["source"] == "scan"
    assert row["limit_bytes"] == 10 * GiB

    # bob, admin of demo-u, gives alice a small quota: a little above what she uses.
    limit = row["used_bytes"] + 1 * MiB
    r = bob.api("PUT", "/services/scitex/api/users/alice/quota", json={"limit_bytes": limit})
    assert r.status_code == 200, r.text
    assert r.json()["limit_bytes"] == limit
    assert r.json()["override"]["set_by"] == "bob"
    # Only the admins of her institution (and hub admins) may.
    for other in (erin, carol):
        r = other.api("PUT", "/services/scitex/api/users/alice/quota", json={"limit_bytes": 1})
        assert r.status_code == 403, r.text
    r = bob.api("PUT", "/services/scitex/api/users/carol/quota", json={"limit_bytes": 1})
    assert r.status_code == 403
    assert r.json()["message"] == "bob administers demo-u; carol belongs to other-u"
    r = bob.api("PUT", "/services/scitex/api/users/alice/quota", json={"limit_bytes": -5})
    assert r.status_code == 400
    assert "cannot be negative" in r.json()["message"]

    # alice restarts her server: it gets the new limit.
    assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
    alice.wait_stopped()
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    assert server_quota(alice)["limit_bytes"] == limit

    # A save past the limit: 507, and the old file is intact.
    r = put_file(alice, "notes.txt", os.urandom(2 * MiB))
    assert r.status_code == 507, r.text
    assert "Storage quota exceeded" in r.json()["message"]
    r = alice.api("GET", "/user/alice/api/contents/notes.txt?content=1&format=base64")
    assert r.status_code == 200
    assert base64.b64decode(r.json()["content"]) == old

    # The usage view per role.
    report = service_usage(admin)
    assert report is not None
    assert [i["id"] for i in report["institutions"]] == ["demo-u", "other-u"]
    assert user_usage(report, "demo-u", "alice")["limit_bytes"] == limit
    report = service_usage(bob)
    assert report is not None and [i["id"] for i in report["institutions"]] == ["demo-u"]
    report = service_usage(erin)
    assert report is not None and [i["id"] for i in report["institutions"]] == ["other-u"]
    r = carol.api("GET", "/services/scitex/api/usage")
    assert r.status_code == 403, r.text

    # Each spawn was recorded with its recipe, job, node and times.
    r = admin.api("GET", "/services/scitex/api/spawns?user=alice")
    assert r.status_code == 200, r.text
    latest, first = r.json()["spawns"][:2]
    assert latest["job_id"] == job_ids_of(hub, "alice")[0]
    assert (latest["node"], latest["profile"], latest["institution"]) == (
        "localhost",
        "small",
        "demo-u",
    )
    assert latest["resources"]["cpus"] == 1
    assert latest["ready_at"] is not None and latest["ended_at"] is None
    assert (first["end_reason"], first["node"]) == ("stopped", "localhost")
    assert first["ended_at"] is not None and first["ready_at"] is not None

    # Over the limit: her server starts all the same (cleanup, the default), and she is
    # told why saves are refused and what to do.
    assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
    alice.wait_stopped()
    measured_now = user_usage(service_usage(admin) or {}, "demo-u", "alice")["used_bytes"]
    # Below her usage by half of data.bin: deleting data.bin takes her under the limit.
    limit = measured_now - DATA_BYTES // 2
    r = bob.api("PUT", "/services/scitex/api/users/alice/quota", json={"limit_bytes": limit})
    assert r.status_code == 200, r.text
    messages, _ = alice.start_watching_progress({"profile": "small"})
    [notice] = [m for m in messages if m.startswith("Storage quota exceeded: ")]
    assert notice.startswith("Storage quota exceeded: alice's data directory uses ")
    assert f" of a {format_bytes(limit)} limit (measured " in notice
    assert notice.endswith(
        "Your server starts so you can delete files or move them out of your data "
        "directory; saves that add data are refused until usage is below the limit. "
        "Ask your institution's administrators (bob) to raise your quota."
    )
    # Said before the job is submitted.
    submitted = [i for i, m in enumerate(messages) if m.startswith("Submitted SLURM job ")]
    assert submitted and messages.index(notice) < submitted[0], messages
    # The hub's log has it once (the spawner's progress line).
    assert hub.log_text().count("Storage quota exceeded: alice's data directory") == 1
    assert len(job_ids_of(hub, "alice")) == 1
    quota = server_quota(alice)
    assert quota["limit_bytes"] == limit
    assert quota["used_bytes"] >= limit

    # Already over: a save that adds data is 507, however small, and writes nothing.
    r = put_file(alice, "notes.txt", os.urandom(8 * KiB))
    assert r.status_code == 507, r.text
    assert r.json()["message"].startswith("Storage quota exceeded: this save needs ")
    r = alice.api("GET", "/user/alice/api/contents/notes.txt?content=1&format=base64")
    assert base64.b64decode(r.json()["content"]) == old
    assert put_file(alice, "new.txt", b"hi").status_code == 507
    assert alice.api("GET", "/user/alice/api/contents/new.txt").status_code == 404

    # Deleting works; once her server measures usage below the limit, saves work again.
    r = alice.api("DELETE", "/user/alice/api/contents/data.bin")
    assert r.status_code == 204, r.text
    assert alice.api("GET", "/user/alice/api/contents/data.bin").status_code == 404

    def below_the_limit() -> dict[str, Any] | None:
        r = alice.api("GET", "/user/alice/scitex/api/quota")
        return r.json() if r.status_code == 200 and r.json()["used_bytes"] < limit else None

    wait_for("alice's usage measured below the limit", hub, below_the_limit, timeout=30)
    new = os.urandom(8 * KiB)
    r = put_file(alice, "notes.txt", new)
    assert r.status_code == 200, r.text
    r = alice.api("GET", "/user/alice/api/contents/notes.txt?content=1&format=base64")
    assert base64.b64decode(r.json()["content"]) == new


def test_a_browser_signs_in_to_the_service_through_oauth(hub: Hub, password: str) -> None:
    bob = signed_in(hub, "bob", password)
    wait_for("the scitex service", hub, lambda: service_usage(bob), timeout=60)
    # The hub's cookie gets the browser through OAuth to the service's own cookie.
    r = bob.session.get(hub.url + "/services/scitex/", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "bob"
    assert r.json()["role"] == "institution-admin"
    r = bob.session.get(hub.url + "/services/scitex/api/usage", timeout=30)
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["institutions"]] == ["demo-u"]
    # A write with the cookie alone (no XSRF token) is refused.
    r = bob.session.put(
        hub.url + "/services/scitex/api/users/alice/quota", json={"limit_bytes": 1}, timeout=30
    )
    assert r.status_code == 403, r.text
