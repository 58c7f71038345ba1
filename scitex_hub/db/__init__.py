"""Our own tables (institutions, quota overrides, usage, spawn records) and their migrations.

They live in the hub's database (``hub.db_url``), each name prefixed ``scitex_``, with
their own Alembic version table. See :mod:`.models`, :mod:`.migrate` and :mod:`.store`.
"""

from .engine import get_engine, make_engine
from .migrate import current_revision, head_revision, upgrade
from .models import (
    Base,
    InstitutionRecord,
    QuotaOverride,
    SpawnRecord,
    UsageMeasurement,
    utcnow,
)

__all__ = [
    "Base",
    "InstitutionRecord",
    "QuotaOverride",
    "SpawnRecord",
    "UsageMeasurement",
    "current_revision",
    "get_engine",
    "head_revision",
    "make_engine",
    "upgrade",
    "utcnow",
]
