"""The tracker: cached usage plus writes since, so bursts of saves cannot pass the limit."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scitex_quota import ProjectUsage, Usage, format_bytes
from scitex_server_ext.quota.base import QuotaBackend, UsageUnavailable
from scitex_server_ext.quota.tracker import QuotaExceeded, QuotaTracker

MiB = 1024**2


class FixedBackend(QuotaBackend):
    """A backend whose measurement is whatever the test says, taking ``delay`` seconds."""

    source = "fixed"

    def __init__(self, used: int, delay: float = 0.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.used = used
        self.delay = delay
        self.projects: tuple[ProjectUsage, ...] = ()

    async def measure(self) -> Usage:
        await asyncio.sleep(self.delay)
        return Usage(
            used_bytes=self.used,
            measured_at=datetime.now(timezone.utc),
            source=self.source,
            projects=self.projects,
        )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "projects" / "alpha").mkdir(parents=True)
    return tmp_path


def make(root: Path, used: int, limit: int | None, delay: float = 0.0) -> QuotaTracker:
    backend = FixedBackend(used, delay=delay, root=str(root))
    return QuotaTracker(backend, limit_bytes=limit, first_wait=1.0)


async def test_burst_of_saves_cannot_pass_the_limit_between_scans(root: Path) -> None:
    tracker = make(root, used=90 * MiB, limit=100 * MiB)
    await tracker.backend.refresh()
    written = 0
    refused = 0
    for _ in range(20):
        try:
            r = await tracker.reserve(root / "f.bin", 1 * MiB)
        except QuotaExceeded:
            refused += 1
            continue
        r.commit()
        written += MiB
    # No new measurement in between: the tracker alone stopped the burst at the limit.
    assert written == 10 * MiB
    assert refused == 10
    assert (await tracker.snapshot()).used_bytes == 100 * MiB


async def test_concurrent_reservations_are_checked_together(root: Path) -> None:
    tracker = make(root, used=95 * MiB, limit=100 * MiB)
    await tracker.backend.refresh()
    results = await asyncio.gather(
        *(tracker.reserve(root / f"f{i}", 2 * MiB) for i in range(5)), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(ok) == 2  # 95 + 2 + 2 <= 100 < 95 + 2 + 2 + 2
    assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, BaseException))


async def test_upload_replacing_a_file_is_checked_as_its_final_state(root: Path) -> None:
    tracker = make(root, used=90 * MiB, limit=100 * MiB)  # includes an 8 MiB old file
    await tracker.backend.refresh()
    old, staged = 8 * MiB, 0
    # Chunks of 3 MiB: the upload's own earlier chunks count, the old file comes off at
    # the end. 90 - 8 + 18 = 100 fits; a seventh chunk (21 MiB) would not.
    for _ in range(6):
        grow = 3 * MiB
        r = await tracker.reserve(root / "f", grow, check=grow - old, growth=staged + grow - old)
        r.commit()
        staged += grow
    with pytest.raises(QuotaExceeded) as e:
        await tracker.reserve(
            root / "f", 3 * MiB, check=3 * MiB - old, growth=staged + 3 * MiB - old
        )
    # Reported against the tree before the upload: 90 MiB used, the upload adds 13 MiB.
    assert (e.value.used, e.value.needed) == (90 * MiB, 13 * MiB)


async def test_cancelled_reservation_frees_its_room(root: Path) -> None:
    tracker = make(root, used=99 * MiB, limit=100 * MiB)
    await tracker.backend.refresh()
    r = await tracker.reserve(root / "f", MiB)
    with pytest.raises(QuotaExceeded):
        await tracker.reserve(root / "g", MiB)
    r.cancel()
    (await tracker.reserve(root / "g", MiB)).commit()


async def test_shrinking_is_always_allowed(root: Path) -> None:
    tracker = make(root, used=120 * MiB, limit=100 * MiB)  # already over (e.g. limit lowered)
    await tracker.backend.refresh()
    with pytest.raises(QuotaExceeded):
        await tracker.reserve(root / "f", 4096)
    (await tracker.reserve(root / "f", -10 * MiB)).commit()
    (await tracker.reserve(root / "f", 0)).commit()
    assert (await tracker.snapshot()).used_bytes == 110 * MiB


async def test_a_new_measurement_replaces_the_writes_it_saw(root: Path) -> None:
    backend = FixedBackend(10 * MiB, root=str(root))
    tracker = QuotaTracker(backend, limit_bytes=100 * MiB)
    await backend.refresh()
    (await tracker.reserve(root / "a", 5 * MiB)).commit()
    assert (await tracker.snapshot()).used_bytes == 15 * MiB
    backend.used = 15 * MiB  # the scan now sees the file
    await backend.refresh()
    assert (await tracker.snapshot()).used_bytes == 15 * MiB


async def test_writes_during_a_measurement_are_kept(root: Path) -> None:
    backend = FixedBackend(10 * MiB, delay=0.2, root=str(root))
    tracker = QuotaTracker(backend, limit_bytes=100 * MiB)
    await backend.refresh()
    scan = asyncio.ensure_future(backend.refresh())
    await asyncio.sleep(0.05)
    # Grows while the scan runs: maybe seen, maybe not; counted (errs towards refusing).
    (await tracker.reserve(root / "a", 5 * MiB)).commit()
    # Shrinks while the scan runs: maybe seen; not counted (same reason).
    (await tracker.reserve(root / "b", -3 * MiB)).commit()
    await scan
    assert (await tracker.snapshot()).used_bytes == 15 * MiB
    # Shrinks after the scan finished: surely missed by it; counted.
    (await tracker.reserve(root / "c", -2 * MiB)).commit()
    assert (await tracker.snapshot()).used_bytes == 13 * MiB


async def test_in_flight_growth_counts_shrink_does_not(root: Path) -> None:
    tracker = make(root, used=10 * MiB, limit=100 * MiB)
    await tracker.backend.refresh()
    grow = await tracker.reserve(root / "a", 7 * MiB)
    shrink = await tracker.reserve(root / "b", -4 * MiB)
    assert (await tracker.snapshot()).used_bytes == 17 * MiB
    grow.commit()
    shrink.commit()
    assert (await tracker.snapshot()).used_bytes == 13 * MiB


async def test_projects_get_their_writes(root: Path) -> None:
    backend = FixedBackend(10 * MiB, root=str(root))
    backend.projects = (ProjectUsage("alpha", 4 * MiB),)
    tracker = QuotaTracker(backend, limit_bytes=None)
    await backend.refresh()
    (await tracker.reserve(root / "projects" / "alpha" / "x.csv", MiB)).commit()
    (await tracker.reserve(root / "projects" / "fresh" / "y.csv", 2 * MiB)).commit()
    (await tracker.reserve(root / "loose.txt", 3 * MiB)).commit()
    snap = await tracker.snapshot()
    assert snap.used_bytes == 16 * MiB
    assert snap.limit_bytes is None
    assert [(p.name, p.used_bytes) for p in snap.projects] == [
        ("alpha", 5 * MiB),
        ("fresh", 2 * MiB),
    ]


async def test_no_limit_never_waits_for_a_measurement(root: Path) -> None:
    tracker = make(root, used=0, limit=None, delay=10.0)
    r = await asyncio.wait_for(tracker.reserve(root / "a", 50 * MiB), 0.5)
    r.commit()


async def test_first_measurement_too_slow_is_unavailable(root: Path) -> None:
    backend = FixedBackend(0, delay=0.5, root=str(root))
    tracker = QuotaTracker(backend, limit_bytes=100 * MiB, first_wait=0.05)
    try:
        with pytest.raises(UsageUnavailable, match="still being measured"):
            await tracker.snapshot()
        with pytest.raises(UsageUnavailable):
            await tracker.reserve(root / "a", MiB)
        # The measurement went on in the background and answers the next request.
        for _ in range(100):
            if backend.latest is not None:
                break
            await asyncio.sleep(0.05)
        assert (await tracker.snapshot()).used_bytes == 0
    finally:
        await tracker.stop()


async def test_filesystem_limit_is_used_when_none_is_configured(root: Path) -> None:
    class WithLimit(FixedBackend):
        async def measure(self) -> Usage:
            usage = await super().measure()
            return Usage(usage.used_bytes, usage.measured_at, self.source, limit_bytes=20 * MiB)

    backend = WithLimit(19 * MiB, root=str(root))
    tracker = QuotaTracker(backend, limit_bytes=None)
    # Unknown before the first measurement: the filesystem enforces it meanwhile.
    (await tracker.reserve(root / "a", 5 * MiB)).cancel()
    await backend.refresh()
    assert (await tracker.snapshot()).limit_bytes == 20 * MiB
    with pytest.raises(QuotaExceeded):
        await tracker.reserve(root / "a", 2 * MiB)


def test_allocation_rounds_to_blocks(root: Path) -> None:
    tracker = make(root, used=0, limit=None)
    block = tracker.allocated(1)
    assert block in (512, 1024, 2048, 4096, 8192, 65536)
    assert tracker.allocated(0) == 0
    assert tracker.allocated(block) == block
    assert tracker.allocated(block + 1) == 2 * block


def test_counts_only_inside_the_root(root: Path) -> None:
    tracker = make(root, used=0, limit=None)
    assert tracker.counts(root.resolve() / "a")
    assert not tracker.counts(str(root.resolve()) + "2/a")


def test_message_is_readable() -> None:
    e = QuotaExceeded(
        needed=3 * MiB, used=99 * MiB, limit=100 * MiB, measured_at=datetime(2026, 1, 2, 3, 4, 5)
    )
    assert "needs 3.0 MiB more" in str(e)
    assert "only 1.0 MiB of your 100.0 MiB quota is free" in str(e)
    assert "Nothing was written" in str(e)
    assert format_bytes(10) == "10 B"
    assert format_bytes(5 * 1024**4) == "5.0 TiB"
