"""SciTeX Hub, hub-side core: what the spawner and the hub service share.

Profiles, institutions and units; the notebook and compute job specs with their batch
script and container builders; the one SLURM layer (client, framed ``squeue``, the
shared queue watcher, per-user queue reading, run-as-user); the database models and
migrations of our tables. Nothing here imports ``scitex_spawner``, ``scitex_service``
or ``jupyterhub_config``; the container side imports nothing from here.
"""
