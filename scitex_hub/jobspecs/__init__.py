"""The two kinds of batch job the hub side submits, built by pure functions from
validated values: a user's notebook server (``notebook``) and a compute job from
JupyterLab (``compute``). Both render through ``scitex_hub.script`` and wrap their
command with ``scitex_hub.container``."""
