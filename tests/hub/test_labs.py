"""Labs inside institutions: the site file, the mapping at sign-in (JupyterHub groups
``<institution>:<lab>``), and that the institution is still found among a user's groups."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from traitlets.config import Config

from jupyterhub_config.apply import apply_auth
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_hub.institutions import InstitutionDirectory, lab_group, load_institutions
from scitex_spawner.auth import ldap_group_names, make_post_auth_hook
from tests.hub.test_config import DEMO

INSTITUTIONS = load_institutions(
    {
        "demo-u": {
            "name": "Demo University",
            "users": ["alice", "bob", "dave"],
            "ldap_groups": ["demo-researchers"],
            "labs": {
                "neuro": {"name": "Neuroscience Lab", "users": ["alice"]},
                "chem": {
                    "name": "Chemistry Lab",
                    "users": ["bob"],
                    "ldap_groups": ["chem-staff"],
                    "groups": ["chemists"],
                },
            },
        },
        # The same lab id in another institution is another lab.
        "other-u": {
            "name": "Other University",
            "users": ["carol"],
            "labs": {"neuro": {"name": "Other Neuro", "users": ["carol", "alice"]}},
        },
    }
)


def site(labs: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEMO)
    data["institutions"]["demo-u"]["labs"] = labs
    return data


@pytest.mark.parametrize(
    ("labs", "message"),
    [
        (
            {"neuro": {"name": "N", "users": ["Alice!"]}},
            r"institutions\.demo-u\.labs\.neuro\.users: 'Alice!' is not a valid username",
        ),
        ({"neuro": {"users": ["alice"]}}, r"institutions\.demo-u\.labs\.neuro\.name: Field req"),
        ({"neuro": {"name": ""}}, r"institutions\.demo-u\.labs\.neuro\.name: "),
        ({"neuro": {"name": "N", "domains": ["x.edu"]}}, r"labs\.neuro\.domains: Extra inputs"),
        ({"neuro": {"name": "N", "groups": "chemists"}}, r"labs\.neuro\.groups: "),
        ({"Neuro": {"name": "N"}}, r"institutions\.demo-u\.labs: lab id 'Neuro': use lowercase"),
        ({"ne:uro": {"name": "N"}}, r"institutions\.demo-u\.labs: lab id 'ne:uro'"),
        ({"neuro\n": {"name": "N"}}, r"institutions\.demo-u\.labs: lab id 'neuro\\n'"),
        ({"-neuro": {"name": "N"}}, r"institutions\.demo-u\.labs: lab id '-neuro'"),
        ({"n" * 64: {"name": "N"}}, r"institutions\.demo-u\.labs: lab id 'n{64}'"),
        (["neuro"], r"institutions\.demo-u\.labs: Input should be a valid dictionary"),
    ],
)
def test_site_file_lab_errors_name_the_key(labs: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings(site(labs))


def test_site_file_labs_load_and_the_demo_has_one() -> None:
    settings = parse_settings(site({"neuro": {"name": "Neuroscience Lab", "users": ["alice"]}}))
    lab = settings.institutions["demo-u"].labs["neuro"]
    assert (lab.name, lab.users, lab.ldap_groups, lab.groups) == (
        "Neuroscience Lab",
        ("alice",),
        (),
        (),
    )
    assert settings.institutions["other-u"].labs == {}
    demo = parse_settings(DEMO)
    assert {k: v.users for k, v in demo.institutions["demo-u"].labs.items()} == {
        "neuro": ("alice",)
    }


def test_labs_of_matches_users_directory_groups_and_oidc_groups() -> None:
    directory = InstitutionDirectory(INSTITUTIONS)
    assert directory.labs_of("demo-u", "alice") == ["neuro"]
    assert directory.labs_of("demo-u", "bob") == ["chem"]
    assert directory.labs_of("demo-u", "dave") == []
    # Directory group (LDAP, as the site file names it) and an OIDC groups claim.
    assert directory.labs_of("demo-u", "dave", groups=["chem-staff"]) == ["chem"]
    assert directory.labs_of("demo-u", "dave", groups=["chemists", "x"]) == ["chem"]
    # Several labs, in site-file order.
    assert directory.labs_of("demo-u", "alice", groups=["chemists"]) == ["neuro", "chem"]
    # Only the given institution's labs; an unknown institution has none.
    assert directory.labs_of("other-u", "alice") == ["neuro"]
    assert directory.labs_of("other-u", "bob", groups=["chemists"]) == []
    assert directory.labs_of("nope", "alice") == []


def test_lab_groups_never_name_an_institution() -> None:
    directory = InstitutionDirectory(INSTITUTIONS)
    groups = ["demo-u", lab_group("demo-u", "neuro"), lab_group("demo-u", "chem")]
    assert groups[1:] == ["demo-u:neuro", "demo-u:chem"]
    assert directory.of_groups(groups) == "demo-u"
    assert directory.of_groups(groups[1:]) is None  # a lab alone is no institution
    assert directory.labs_of_groups("demo-u", groups) == ["neuro", "chem"]
    # Another institution's lab of the same id, an unknown lab, or a bare id: not a lab here.
    assert directory.labs_of_groups("demo-u", ["other-u:neuro", "demo-u:gone", "neuro"]) == []
    assert directory.labs_of_groups("nope", groups) == []


def test_post_auth_hook_adds_lab_groups_after_the_institution() -> None:
    hook = make_post_auth_hook(INSTITUTIONS)
    assert hook(None, None, {"name": "alice", "auth_state": None})["groups"] == [
        "demo-u",
        "demo-u:neuro",
    ]
    assert hook(None, None, {"name": "dave", "auth_state": None})["groups"] == ["demo-u"]
    # OIDC groups claim: the lab comes from it, the institution from the user list.
    oidc = {"name": "dave", "auth_state": {"oauth_user": {"groups": ["chemists"]}}}
    assert hook(None, None, oidc)["groups"] == ["demo-u", "demo-u:chem"]
    # carol is in other-u's neuro only; alice's other-u lab does not make her other-u's.
    assert hook(None, None, {"name": "carol", "auth_state": None})["groups"] == [
        "other-u",
        "other-u:neuro",
    ]
    # Every resulting group list still names exactly one institution.
    directory = InstitutionDirectory(INSTITUTIONS)
    for name in ("alice", "bob", "carol", "dave"):
        groups = hook(None, None, {"name": name, "auth_state": None})["groups"]
        assert directory.of_groups(groups) == groups[0]


def test_ldap_lab_groups_are_asked_for_and_map_to_the_lab() -> None:
    base = "ou=groups,dc=scitex,dc=test"
    names = ldap_group_names(INSTITUTIONS, base)
    assert names[f"cn=chem-staff,{base}"] == "chem-staff"
    hook = make_post_auth_hook(INSTITUTIONS, ldap_group_names=names)
    model = {
        "name": "ldapann",
        "auth_state": {"ldap_groups": [f"cn=demo-researchers,{base}", f"CN=Chem-Staff, {base}"]},
    }
    assert hook(None, None, model)["groups"] == ["demo-u", "demo-u:chem"]
    # A lab's bare group name needs the base, and the error names the lab's key.
    bad = load_institutions(
        {"demo-u": {"name": "D", "labs": {"chem": {"name": "C", "ldap_groups": ["chem-staff"]}}}}
    )
    with pytest.raises(ValueError, match=r"institutions\.demo-u\.labs\.chem\.ldap_groups: "):
        ldap_group_names(bad, None)
    # ldapauthenticator reports only the groups it is told to check: labs' too.
    data = copy.deepcopy(DEMO)
    data["auth"] = {
        "kind": "ldap",
        "ldap": {
            "server_address": "127.0.0.1",
            "bind_dn_template": ["uid={username},ou=people,dc=scitex,dc=test"],
            "group_search_base": base,
        },
    }
    data["institutions"]["demo-u"]["ldap_groups"] = ["demo-researchers"]
    data["institutions"]["demo-u"]["labs"] = {"chem": {"name": "C", "ldap_groups": ["chem-staff"]}}
    c = Config()
    apply_auth(c, parse_settings(data))
    assert c.LDAPAuthenticator.allowed_groups == [
        f"cn=chem-staff,{base}",
        f"cn=demo-researchers,{base}",
    ]
