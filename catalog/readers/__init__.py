"""Per-provider readers: raw SkyPilot-format price files in, rows of the one ``Instance`` table out.

Used only by :mod:`infersave.catalog.curate` (by hand, never at run time). Each reader takes the
raw file's path and the GPU spec rows and returns ``(rows, tally)``: the curated rows as plain
dicts in the ``Instance`` schema's columns, sorted by (region, instance_type), and a
:class:`~infersave.catalog.readers.common.Tally` of what was read, kept and dropped and why.
The decisions each reader makes are listed in ``catalog/data/SOURCES.md``.

Modules: :mod:`.gcp`, :mod:`.azure`, :mod:`.lambda_cloud`; shared helpers in :mod:`.common`.
AWS is curated in :mod:`infersave.catalog.curate` itself.
"""
