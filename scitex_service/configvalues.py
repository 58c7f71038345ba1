"""Typed values in the service's configuration: institutions and profiles arrive as plain
JSON (``SCITEX_SERVICE_CONFIG``) and are validated back into their models here, with
errors that name the setting, the entry and the field
(``ComputeJobs.profiles.small.cpus.max: ...``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

__all__ = ["load_entries"]

T = TypeVar("T")


def load_entries(
    key: str, raw: Mapping[str, Any], load: Callable[[Mapping[str, Any]], dict[str, T]]
) -> dict[str, T]:
    """``{name: value}`` through ``load`` (``load_profiles``, ``load_institutions``), one
    entry at a time so an error names it; raises ValueError naming ``key``."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key} must be a mapping of names to values, got {type(raw).__name__}")
    loaded: dict[str, T] = {}
    for name, value in raw.items():
        try:
            loaded.update(load({name: value}))
        except ValidationError as e:
            lines = []
            for error in e.errors():
                where = ".".join(str(part) for part in (key, name, *error["loc"]))
                lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
            raise ValueError("\n".join(lines)) from None
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return loaded
