"""Gitea for both sides of SciTeX Hub: the async API client and name/origin validation.

Standard library plus tornado and traitlets only, so the hub venv and the notebook image can
both install it; ``scitex_spawner`` and ``scitex_server_ext`` never import each other, only this.
"""
