"""The catalog's one error type, in its own module so that every catalog module can raise it
without importing :mod:`infersave.catalog.load` (which re-exports it)."""

from __future__ import annotations

__all__ = ["CatalogError"]


class CatalogError(ValueError):
    """Malformed or inconsistent catalog data, or a lookup that found nothing.

    Messages name the file, row and field (``aws_instances.csv row 17, field
    on_demand_per_hour: ...``) or, for lookups, suggest close matches.
    """
