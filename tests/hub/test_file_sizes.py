"""No product file over 600 lines; one over 400 says at its top why it is one file."""

from __future__ import annotations

import ast
from pathlib import Path

from tools.import_graph import PACKAGES

ROOT = Path(__file__).resolve().parents[2]
# The packages we ship (tools/import_graph.py holds the one list).
PRODUCT = PACKAGES


def product_files() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))


def test_the_product_is_found() -> None:
    assert len(product_files()) > 80


def test_no_product_file_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in product_files()
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, long


def test_a_file_over_400_lines_says_why_it_is_one_file() -> None:
    silent = []
    for path in product_files():
        text = path.read_text()
        if len(text.splitlines()) > 400:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "one file" not in docstring.lower():
                silent.append(str(path.relative_to(ROOT)))
    assert not silent, silent
