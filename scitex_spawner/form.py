"""The options form: the profiles a user's institution allows, with their ranges.

Every value is escaped; the form posts the same keys a REST ``user_options``
body uses, so both routes meet the same validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from scitex_hub.profiles import Profile, ResolvedResources
from scitex_hub.units import format_duration, format_size

# The spawn page of a user who matches no institution (no server can start for them).
NO_INSTITUTION_FORM = (
    '<div class="alert alert-danger" role="alert">'
    "Your account belongs to no institution on this hub, so no server can start. "
    "Ask your institution's administrator to add you.</div>"
)


def options_from_formdata(formdata: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Form fields arrive as lists of strings; give them the REST shape.

    Numbers are converted strictly, so both routes meet the same validation.
    """
    options: dict[str, Any] = {}
    for key, values in formdata.items():
        value = values[0] if values else ""
        # Tornado's XSRF field (a scripted form post may send it): the hub has
        # checked it before the form reaches us; it is no resource option.
        if value == "" or key == "_xsrf":
            continue
        if key in ("cpus", "gpus"):
            options[key] = int(value) if value.isdigit() else value
        else:
            options[key] = value
    return options


def _field(profile_key: str, name: str, label: str, control: str, hint: str) -> str:
    ident = f"scitex-{escape(profile_key)}-{name}"
    return (
        f'<div class="form-group">'
        f'<label for="{ident}">{escape(label)}</label>'
        f"{control.replace('{id}', ident)}"
        f'<small class="form-text text-muted" id="{ident}-hint">{escape(hint)}</small>'
        f"</div>"
    )


def _profile_fields(key: str, profile: Profile, previous: ResolvedResources | None) -> str:
    """The adjustable fields of one profile, holding ``previous`` values (the user's
    last valid choice of this profile) or else the profile's defaults."""
    chosen = previous if previous is not None and previous.profile == key else None
    partition = chosen.partition if chosen else profile.partitions[0]
    cpus = chosen.cpus if chosen else profile.cpus.default
    memory = chosen.memory_bytes if chosen else profile.memory.default
    runtime = chosen.runtime_seconds if chosen else profile.runtime.default
    gpus = chosen.gpus if chosen else profile.gpus.default
    parts = []
    if len(profile.partitions) > 1:
        options = "".join(
            f'<option value="{escape(p)}"{" selected" if p == partition else ""}>'
            f"{escape(p)}</option>"
            for p in profile.partitions
        )
        parts.append(
            _field(
                key,
                "partition",
                "Partition",
                f'<select class="form-control" id="{{id}}" name="partition" '
                f'aria-describedby="{{id}}-hint">{options}</select>',
                "The SLURM partition your server runs in.",
            )
        )
    if profile.cpus.adjustable:
        parts.append(
            _field(
                key,
                "cpus",
                "CPUs",
                f'<input class="form-control" type="number" id="{{id}}" name="cpus" '
                f'min="{profile.cpus.lowest}" max="{profile.cpus.highest}" '
                f'value="{cpus}" aria-describedby="{{id}}-hint">',
                f"From {profile.cpus.lowest} to {profile.cpus.highest}.",
            )
        )
    if profile.memory.adjustable:
        parts.append(
            _field(
                key,
                "memory",
                "Memory",
                f'<input class="form-control" type="text" id="{{id}}" name="memory" '
                f'value="{escape(format_size(memory))}" '
                f'pattern="[0-9]+ ?([KMGT]i?B?)?" aria-describedby="{{id}}-hint">',
                f"From {format_size(profile.memory.lowest)} to "
                f"{format_size(profile.memory.highest)}, e.g. 2GiB.",
            )
        )
    if profile.runtime.adjustable:
        parts.append(
            _field(
                key,
                "runtime",
                "Time limit",
                f'<input class="form-control" type="text" id="{{id}}" name="runtime" '
                f'value="{escape(format_duration(runtime))}" '
                f'pattern="([0-9]+-)?[0-9]+:[0-9]{{2}}:[0-9]{{2}}" aria-describedby="{{id}}-hint">',
                f"From {format_duration(profile.runtime.lowest)} to "
                f"{format_duration(profile.runtime.highest)} (HH:MM:SS).",
            )
        )
    if profile.gpus.adjustable:
        parts.append(
            _field(
                key,
                "gpus",
                "GPUs",
                f'<input class="form-control" type="number" id="{{id}}" name="gpus" '
                f'min="{profile.gpus.lowest}" max="{profile.gpus.highest}" '
                f'value="{gpus}" aria-describedby="{{id}}-hint">',
                f"From {profile.gpus.lowest} to {profile.gpus.highest}.",
            )
        )
    return "".join(parts)


def render_options_form(
    profiles: Mapping[str, Profile],
    allowed: Sequence[str],
    *,
    institution_name: str,
    notices: Sequence[str] = (),
    previous: ResolvedResources | None = None,
) -> str:
    """HTML for JupyterHub's spawn page. Adjustable fields belong to their profile's
    fieldset, which is disabled unless that profile is chosen, so only the chosen
    profile's values are posted. ``previous``: the user's last choice, already
    validated against today's profiles; it is preselected and its values filled in."""
    usable = [name for name in allowed if name in profiles]
    selected = previous.profile if previous is not None and previous.profile in usable else None
    if selected is None and usable:
        selected = usable[0]
    out = ['<div class="scitex-options">']
    out.extend(
        f'<div class="alert alert-warning" role="status">{escape(notice)}</div>'
        for notice in notices
    )
    out.append(
        f"<p>Resources offered to <strong>{escape(institution_name)}</strong>. "
        "Your server runs as a SLURM job on the cluster.</p>"
    )
    out.append("<fieldset><legend>Profile</legend>")
    for name in usable:
        profile = profiles[name]
        checked = " checked" if name == selected else ""
        ident = f"scitex-profile-{escape(name)}"
        out.append(
            f'<div class="form-check">'
            f'<input class="form-check-input" type="radio" name="profile" id="{ident}" '
            f'value="{escape(name)}"{checked} aria-describedby="{ident}-desc">'
            f'<label class="form-check-label" for="{ident}">{escape(profile.display_name)}</label>'
            f'<div id="{ident}-desc" class="form-text text-muted">'
            f"{escape(profile.description)}</div>"
            f'<fieldset class="scitex-profile-fields" data-profile="{escape(name)}"'
            f"{'' if name == selected else ' disabled'}>"
            f"{_profile_fields(name, profile, previous)}</fieldset>"
            f"</div>"
        )
    out.append("</fieldset>")
    # Enable only the chosen profile's fields; without JavaScript the first
    # profile's fields stay enabled and the defaults of others apply.
    out.append(
        "<script>(function(){var form=document.currentScript.closest('form');"
        "if(!form)return;function sync(){var chosen=form.querySelector("
        "'input[name=profile]:checked');form.querySelectorAll('.scitex-profile-fields')"
        ".forEach(function(f){f.disabled=!chosen||f.dataset.profile!==chosen.value;});}"
        "form.addEventListener('change',sync);sync();})();</script>"
    )
    out.append("</div>")
    return "".join(out)
