"""The options form: escaped, institution-specific, posting the REST keys."""

from __future__ import annotations

from html.parser import HTMLParser

from scitex_hub.profiles import load_profiles
from scitex_spawner.form import render_options_form

PROFILES = load_profiles(
    {
        "small": {
            "display_name": "Small <b>fast</b>",
            "description": 'x" onmouseover="alert(1)',
            "partitions": ["debug", "batch"],
            "cpus": {"default": 1, "max": 4},
            "memory": {"default": "1GiB", "max": "4GiB"},
            "runtime": {"default": "01:00:00", "max": "08:00:00"},
        },
        "fixed": {
            "display_name": "Fixed",
            "partition": "debug",
            "cpus": 1,
            "memory": "1GiB",
            "runtime": 60,
        },
        "gpu": {
            "display_name": "GPU",
            "partition": "gpu",
            "cpus": 1,
            "memory": "1GiB",
            "runtime": 60,
        },
    }
)


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.labels_for: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select"):
            self.inputs.append(a)
        if tag == "label" and a.get("for"):
            self.labels_for.add(str(a["for"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Collect:
    c = Collect()
    c.feed(html)
    return c


def test_only_the_institutions_profiles_with_their_ranges() -> None:
    html = render_options_form(PROFILES, ["small", "fixed"], institution_name="Demo University")
    page = parse(html)
    profiles = [i["value"] for i in page.inputs if i.get("name") == "profile"]
    assert profiles == ["small", "fixed"]
    cpus = next(i for i in page.inputs if i.get("name") == "cpus")
    assert (cpus["min"], cpus["max"], cpus["value"]) == ("1", "4", "1")
    assert {i.get("name") for i in page.inputs} == {
        "profile",
        "partition",
        "cpus",
        "memory",
        "runtime",
    }
    # Every control has a label (screen readers, keyboard use).
    assert {str(i["id"]) for i in page.inputs} <= page.labels_for


def test_every_value_is_escaped() -> None:
    html = render_options_form(
        PROFILES,
        ["small"],
        institution_name="<img src=x onerror=alert(1)>",
        notices=["<script>x</script>"],
    )
    assert "<b>fast</b>" not in html and "&lt;b&gt;fast&lt;/b&gt;" in html
    assert "<img" not in html and "<script>x" not in html
    assert 'onmouseover="alert(1)"' not in html


def test_notices_are_shown() -> None:
    html = render_options_form(
        PROFILES, ["fixed"], institution_name="D", notices=["Your last server stopped: x."]
    )
    assert "Your last server stopped: x." in "".join(parse(html).text)


class Chosen(HTMLParser):
    """The checked profile, the enabled fieldset, and each field's value in it."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[str] = []
        self.enabled: list[str] = []
        self.values: dict[str, str] = {}
        self._fieldset: tuple[str, bool] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "fieldset" and a.get("data-profile"):
            self._fieldset = (str(a["data-profile"]), "disabled" not in a)
            if "disabled" not in a:
                self.enabled.append(str(a["data-profile"]))
        enabled = self._fieldset is not None and self._fieldset[1]
        if tag == "input" and a.get("name") == "profile":
            if "checked" in a:
                self.checked.append(str(a["value"]))
        elif tag == "input" and enabled:
            self.values[str(a["name"])] = str(a["value"])
        elif tag == "select" and enabled:
            self._select = str(a["name"])
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = str(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "fieldset":
            self._fieldset = None


def chosen(html: str) -> Chosen:
    c = Chosen()
    c.feed(html)
    return c


def test_the_last_choice_is_preselected_with_its_values() -> None:
    from scitex_hub.profiles import resolve_user_options

    previous = resolve_user_options(
        {
            "profile": "small",
            "partition": "batch",
            "cpus": 3,
            "memory": "2GiB",
            "runtime": "2:30:00",
        },
        PROFILES,
        ["fixed", "small"],
    )
    page = chosen(
        render_options_form(PROFILES, ["fixed", "small"], institution_name="D", previous=previous)
    )
    assert page.checked == ["small"]
    assert page.enabled == ["small"]
    assert page.values == {
        "partition": "batch",
        "cpus": "3",
        "memory": "2GiB",
        "runtime": "02:30:00",
    }


def test_without_a_last_choice_the_first_profile_and_defaults() -> None:
    page = chosen(render_options_form(PROFILES, ["small", "fixed"], institution_name="D"))
    assert page.checked == ["small"] and page.enabled == ["small"]
    assert page.values == {
        "partition": "debug",
        "cpus": "1",
        "memory": "1GiB",
        "runtime": "01:00:00",
    }


def test_a_last_choice_of_a_profile_no_longer_allowed_is_not_offered() -> None:
    from scitex_hub.profiles import resolve_user_options

    previous = resolve_user_options({"profile": "gpu"}, PROFILES, ["gpu"])
    page = chosen(render_options_form(PROFILES, ["fixed"], institution_name="D", previous=previous))
    assert page.checked == ["fixed"] and page.enabled == ["fixed"]
