"""One mapping from the extension's domain errors to what a handler answers."""

from __future__ import annotations

import pytest
from tornado import web

from scitex_server_ext.handlers.base import ErrorReply, error_reply
from scitex_server_ext.jobs import JobsError
from scitex_server_ext.projects import ProjectError
from scitex_server_ext.quota.base import UsageUnavailable


def test_a_project_error_keeps_its_reason_and_extra_fields() -> None:
    err = ProjectError(409, "Sync Conflict", "50% conflict", {"conflicts": ["a.txt"]})
    reply = error_reply(err)
    assert reply == ErrorReply(409, "50% conflict", "Sync Conflict", {"conflicts": ["a.txt"]})
    assert reply is not None and reply.reason_phrase == "Sync Conflict"


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(400, "Bad Request"), (429, "Too Many Requests"), (504, "Gateway Timeout")],
)
def test_a_jobs_error_has_the_statuss_standard_phrase(status: int, phrase: str) -> None:
    reply = error_reply(JobsError(status, "words"))
    assert reply == ErrorReply(status, "words")
    assert reply is not None and reply.reason_phrase == phrase


@pytest.mark.parametrize(("retry_after", "header"), [(0.2, "1"), (4.1, "5"), (30.0, "30")])
def test_usage_not_measured_yet_is_503_with_retry_after(retry_after: float, header: str) -> None:
    reply = error_reply(UsageUnavailable("still being measured", retry_after=retry_after))
    assert reply == ErrorReply(
        503, "still being measured", "Usage not measured yet", headers={"Retry-After": header}
    )


@pytest.mark.parametrize("exc", [None, web.HTTPError(403), ValueError("bug"), KeyError("x")])
def test_anything_else_is_left_to_jupyter_server(exc: BaseException | None) -> None:
    assert error_reply(exc) is None
