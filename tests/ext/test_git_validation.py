"""Names and URLs: what may reach git, and what is refused (injection attempts included)."""

from __future__ import annotations

import pytest

from scitex_server_ext.git import (
    GiteaOrigin,
    InvalidName,
    InvalidRemote,
    RemoteRepo,
    parse_remote_url,
    redact_url,
    validate_branch_name,
    validate_owner_name,
    validate_repo_name,
)

ORIGIN = GiteaOrigin.parse("https://gitea.example.edu")


@pytest.mark.parametrize(
    "name",
    ["paper", "Paper_2024", "a", "x.y", "my-project", "_private", "a" * 100, "v1.0-final", "a.b.c"],
)
def test_valid_repo_names(name: str) -> None:
    assert validate_repo_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "--upload-pack=touch pwned",
        "-x",
        ".hidden",
        "..",
        ".",
        "../x",
        "x/../y",
        "a/b",
        "ext::sh -c id",
        "file:///etc",
        "with space",
        "tab\tname",
        "new\nline",
        "nul\0",
        "a" * 101,
        "repo.git",
        "repo.GIT",
        "repo.wiki",
        "feed.rss",
        "feed.atom",
        "a..b",
        "é",
        "semi;colon",
        "$(id)",
        "`id`",
        "a|b",
        "~user",
        "back\\slash",
        None,
        42,
        ["paper"],
    ],
)
def test_invalid_repo_names(name: object) -> None:
    with pytest.raises(InvalidName):
        validate_repo_name(name)


@pytest.mark.parametrize("name", ["alice", "demo-u", "a.b", "A_1", "x" * 40])
def test_valid_owner_names(name: str) -> None:
    assert validate_owner_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-a", "a-", ".a", "a..b", "a--b", "a b", "x" * 41, "../x", "a/b", "_a"]
)
def test_invalid_owner_names(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_owner_name(name)


@pytest.mark.parametrize("name", ["main", "master", "feature/x", "release-1.0"])
def test_valid_branches(name: str) -> None:
    assert validate_branch_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-f", "a..b", "a//b", "a/", "a.lock", "a b", "a~1", "a^", "a:b", "/a", "x/.y"]
)
def test_invalid_branches(name: str) -> None:
    with pytest.raises(InvalidName):
        validate_branch_name(name)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gitea.example.edu/demo-u/paper.git", ("demo-u", "paper")),
        ("https://gitea.example.edu/demo-u/paper", ("demo-u", "paper")),
        ("https://GITEA.example.edu/alice/x.y.git", ("alice", "x.y")),
        ("https://gitea.example.edu:443/alice/p", ("alice", "p")),
        ("HTTPS://gitea.example.edu/alice/p", ("alice", "p")),
    ],
)
def test_valid_remote_urls(url: str, expected: tuple[str, str]) -> None:
    remote = parse_remote_url(url, ORIGIN)
    owner, name = expected
    assert remote == RemoteRepo(owner, name, f"https://gitea.example.edu/{owner}/{name}.git")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "--upload-pack=touch pwned",
        "-uhttps://gitea.example.edu/a/b",
        "ext::sh -c id",
        "ext::sh -c touch% /tmp/pwned",
        "file:///etc",
        "file:///etc/passwd/.git",
        "/etc/passwd",
        "../x",
        "./repo",
        "ssh://git@gitea.example.edu/alice/p.git",
        "git@gitea.example.edu:alice/p.git",
        "git://gitea.example.edu/alice/p.git",
        "http://gitea.example.edu/alice/p.git",  # http where https is configured
        "https://evil.example.com/alice/p.git",
        "https://gitea.example.edu.evil.com/alice/p.git",
        "https://gitea.example.edu:8443/alice/p.git",
        "https://alice:secret@gitea.example.edu/alice/p.git",
        "https://token@gitea.example.edu/alice/p.git",
        "https://evil.com@gitea.example.edu/alice/p.git",
        "https://gitea.example.edu@evil.com/alice/p.git",
        "https://gitea.example.edu/alice/p.git?x=1",
        "https://gitea.example.edu/alice/p.git#frag",
        "https://gitea.example.edu/alice/../bob/p.git",
        "https://gitea.example.edu/alice/%2e%2e",
        "https://gitea.example.edu/alice/p%20q",
        "https://gitea.example.edu/alice/p/extra",
        "https://gitea.example.edu/alice",
        "https://gitea.example.edu/alice/",
        "https://gitea.example.edu//alice/p",
        "https://gitea.example.edu/alice/-p",
        "https://gitea.example.edu/alice/.p",
        "https://gitea.example.edu/-alice/p",
        "https://gitea.example.edu/alice/p.git.git",
        "https://gitea.example.edu/alice/p .git",
        "https://gitea.example.edu/alice/p\n.git",
        "https://gitea.example.edu/alice\\p",
        "https://gitea.example.edu:notaport/alice/p",
        "https://[::1/alice/p",
        "https://gitea.example.edu/alice/p.git " + "x" * 3000,
        None,
        123,
    ],
)
def test_refused_remote_urls(url: object) -> None:
    with pytest.raises(InvalidRemote):
        parse_remote_url(url, ORIGIN)


def test_http_only_when_configured() -> None:
    origin = GiteaOrigin.parse("http://127.0.0.1:3000")
    assert parse_remote_url("http://127.0.0.1:3000/a/b", origin).url == (
        "http://127.0.0.1:3000/a/b.git"
    )
    with pytest.raises(InvalidRemote):
        parse_remote_url("https://127.0.0.1:3000/a/b", origin)
    with pytest.raises(InvalidRemote):
        parse_remote_url("http://127.0.0.1:3001/a/b", origin)
    with pytest.raises(InvalidRemote):
        parse_remote_url("http://localhost:3000/a/b", origin)


def test_gitea_under_a_sub_path() -> None:
    origin = GiteaOrigin.parse("https://example.edu/gitea/")
    assert origin.url == "https://example.edu/gitea"
    assert parse_remote_url("https://example.edu/gitea/a/b.git", origin).url == (
        "https://example.edu/gitea/a/b.git"
    )
    for url in ["https://example.edu/a/b.git", "https://example.edu/gitea2/a/b.git"]:
        with pytest.raises(InvalidRemote):
            parse_remote_url(url, origin)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://gitea.example.edu", "https://gitea.example.edu"),
        ("https://gitea.example.edu/", "https://gitea.example.edu"),
        ("https://gitea.example.edu:443", "https://gitea.example.edu"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("HTTPS://Gitea.Example.EDU/sub/", "https://gitea.example.edu/sub"),
    ],
)
def test_origin_parse(url: str, canonical: str) -> None:
    assert GiteaOrigin.parse(url).url == canonical


@pytest.mark.parametrize(
    "url",
    [
        "",
        "gitea.example.edu",
        "ftp://gitea.example.edu",
        "ext::sh",
        "https://user:pw@gitea.example.edu",
        "https://gitea.example.edu/?q",
        "https://gitea.example.edu/#f",
        "https://gitea.example.edu/../x",
        "https:///path",
        "https://gitea.example.edu/a b",
    ],
)
def test_origin_refused(url: str) -> None:
    with pytest.raises(InvalidRemote):
        GiteaOrigin.parse(url)


def test_redact_url() -> None:
    assert redact_url("https://u:p@h/x") == "https://h/x"
    assert redact_url("https://h/x") == "https://h/x"
