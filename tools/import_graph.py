"""Which of our packages imports which: ``python tools/import_graph.py [ROOT]``.

Parses every module (no import runs), counting imports anywhere in a module: at the top,
inside functions and under ``TYPE_CHECKING``. Prints one line per edge,
``importer -> imported (modules)``. ``tests/hub/test_import_direction.py`` holds the
allowed edges.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGES = (
    "jupyterhub_config",
    "scitex_hub",
    "scitex_spawner",
    "scitex_service",
    "scitex_server_ext",
    "scitex_quota",
    "scitex_safefs",
    "scitex_gitea",
)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                # A package's own "." is itself; a module's "." is its package.
                keep = len(base) - node.level + (1 if is_package else 0)
                prefix = ".".join(base[:keep])
                names.add(f"{prefix}.{node.module}" if node.module else prefix)
            elif node.module:
                names.add(node.module)
    return names


def package_edges(root: Path) -> dict[tuple[str, str], set[str]]:
    """``{(importer package, imported package): {importing modules}}``, ours only."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue
            module = _module_name(root, path)
            tree = ast.parse(path.read_text(), str(path))
            for name in _imported(module, path.name == "__init__.py", tree):
                target = name.split(".")[0]
                if target in PACKAGES and target != package:
                    edges[(package, target)].add(module)
    return dict(edges)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    for (importer, imported), modules in sorted(package_edges(root).items()):
        print(f"{importer} -> {imported}  ({len(modules)}: {', '.join(sorted(modules))})")


if __name__ == "__main__":
    main()
