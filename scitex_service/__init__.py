"""The scitex hub service (``/services/scitex/``): quota admin API, spawn records, usage scanner.

Run by the hub as a managed service (``python -m scitex_service``; registered by
``jupyterhub_config.apply.apply_services``). See ``docs/hub-service.md``.
"""
