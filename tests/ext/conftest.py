"""Notebook-server extension tests: pytest-jupyter's real jupyter-server fixtures."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
